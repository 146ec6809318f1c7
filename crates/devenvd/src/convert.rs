//! Conversions between the API's types and the engine's.

use std::path::PathBuf;
use std::time::SystemTime;

use devenv_api::pb;
use devenv_core::config::{ConfigError, ConfigErrors, Environment};
use devenv_core::engine::{
    ClusterError, EngineError, ExecError, ProjectRef, ScaleError, WorkspaceError,
};
use devenv_core::kube::forward::{ForwardState, ForwardStatus};
use devenv_core::logs::{level, Level, LogLine, Missed, Stream};
use devenv_core::snapshot::SnapshotError;
use devenv_core::status::{ServiceState, ServiceStatus};
use tonic::Status;

/// The engine's request for `r`. Without `client_env` (the dashboard page has none
/// to send), the variables of the last request from a shell for that environment.
pub fn env_request(
    engine: &devenv_core::engine::Engine,
    r: Option<pb::EnvironmentRef>,
) -> Result<ProjectRef, Status> {
    let mut req = env_request_as_sent(r)?;
    engine.fill_client_env(&mut req);
    Ok(req)
}

fn env_request_as_sent(r: Option<pb::EnvironmentRef>) -> Result<ProjectRef, Status> {
    let r = r.ok_or_else(|| Status::invalid_argument("missing `environment`"))?;
    let start_dir = PathBuf::from(&r.project_dir);
    if !start_dir.is_absolute() {
        return Err(Status::invalid_argument(format!(
            "project_dir must be absolute, got {:?}",
            r.project_dir
        )));
    }
    let config_file = (!r.config_file.is_empty()).then(|| start_dir.join(&r.config_file));
    Ok(ProjectRef {
        start_dir,
        config_file,
        env_name: (!r.env.is_empty()).then_some(r.env),
        vars: r.client_env.into_iter().collect(),
    })
}

pub fn config_error(e: &ConfigError) -> pb::ConfigError {
    pb::ConfigError {
        file: e.file.display().to_string(),
        line: e.line,
        column: e.column,
        key: e.key.clone(),
        message: e.message.clone(),
        hint: e.hint.clone().unwrap_or_default(),
    }
}

pub fn invalid(errors: &ConfigErrors) -> pb::ValidateResponse {
    pb::ValidateResponse {
        valid: false,
        errors: errors.0.iter().map(config_error).collect(),
        ..Default::default()
    }
}

/// Engine errors as gRPC statuses with a message a person can act on: the one
/// table, decided by type. The CLI turns INVALID_ARGUMENT and FAILED_PRECONDITION
/// into exit 2 (the request or config is wrong), UNKNOWN into 1 (it failed).
pub fn status(e: EngineError) -> Status {
    let code = match &e {
        // One located error per line.
        EngineError::Config(_) | EngineError::UnknownService(_) => tonic::Code::InvalidArgument,
        EngineError::NotUp | EngineError::Dev(_) => tonic::Code::FailedPrecondition,
        EngineError::Down(_) => tonic::Code::Unknown,
        EngineError::StoppedByUser(_) => tonic::Code::FailedPrecondition,
        EngineError::Scale(e) => match e {
            ScaleError::Local(_) | ScaleError::NotRunning(_) | ScaleError::NotScalable { .. } => {
                tonic::Code::FailedPrecondition
            }
            ScaleError::OutOfRange { .. } => tonic::Code::InvalidArgument,
            ScaleError::Kube { .. } | ScaleError::NotReady { .. } => tonic::Code::Unknown,
        },
        EngineError::Cluster(c) => match c {
            ClusterError::NoCluster | ClusterError::NotK3d { .. } => {
                tonic::Code::FailedPrecondition
            }
            ClusterError::Invalid(_) => tonic::Code::InvalidArgument,
            // k3d or Docker failed (exit 1), as kube_status says.
            ClusterError::Tool(_) => tonic::Code::Unknown,
            ClusterError::Record(_) => tonic::Code::Internal,
        },
        EngineError::Exec(x) => match x {
            ExecError::NotRunning { .. }
            | ExecError::NoReadyPod { .. }
            | ExecError::PodNotFound { .. }
            | ExecError::ContainerNotFound { .. } => tonic::Code::FailedPrecondition,
            ExecError::OneContainer { .. } | ExecError::NoProcess { .. } => {
                tonic::Code::InvalidArgument
            }
            ExecError::Spawn { .. } | ExecError::Kube { .. } => tonic::Code::Unknown,
            ExecError::Docker {
                source: devenv_core::docker::DockerError::Unreachable { .. },
                ..
            } => tonic::Code::FailedPrecondition,
            ExecError::Docker { .. } => tonic::Code::Unknown,
            ExecError::Pty(_) => tonic::Code::Internal,
        },
        EngineError::Workspace(w) => match w {
            WorkspaceError::Unknown { .. }
            | WorkspaceError::NoSuchPort { .. }
            | WorkspaceError::NoSync { .. } => tonic::Code::InvalidArgument,
            WorkspaceError::Absent { .. } => tonic::Code::NotFound,
            WorkspaceError::Exists { .. } => tonic::Code::AlreadyExists,
            WorkspaceError::Stopped { .. } => tonic::Code::FailedPrecondition,
            WorkspaceError::Forward(_) => tonic::Code::FailedPrecondition,
            WorkspaceError::Refused { .. } => tonic::Code::FailedPrecondition,
            WorkspaceError::NotReady { .. }
            | WorkspaceError::Secrets { .. }
            | WorkspaceError::Watch { .. }
            | WorkspaceError::Kube { .. } => tonic::Code::Unknown,
        },
        EngineError::State(_) | EngineError::Guardian(_) | EngineError::Scratch { .. } => {
            tonic::Code::Internal
        }
        EngineError::Snapshot(x) => match x {
            SnapshotError::BadName(_) => tonic::Code::InvalidArgument,
            SnapshotError::NotFound { .. } => tonic::Code::NotFound,
            SnapshotError::Exists { .. } => tonic::Code::AlreadyExists,
            SnapshotError::MissingChunk { .. }
            | SnapshotError::CorruptChunk { .. }
            | SnapshotError::BadManifest(_) => tonic::Code::DataLoss,
            SnapshotError::Io { .. } => tonic::Code::Unknown,
        },
        EngineError::SnapshotUnsupported(_) => tonic::Code::Unimplemented,
        EngineError::SnapshotRedis(_) | EngineError::SnapshotUp(_) => tonic::Code::Unknown,
        EngineError::SnapshotCluster(k) if k.is_unreachable() => tonic::Code::Unavailable,
        EngineError::SnapshotCluster(_) => tonic::Code::Unknown,
        EngineError::NotTerraform(_) => tonic::Code::InvalidArgument,
        EngineError::SnapshotEngine(devenv_core::docker::DockerError::Unreachable { .. }) => {
            tonic::Code::Unavailable
        }
        EngineError::SnapshotEngine(_) => tonic::Code::Unknown,
        EngineError::SnapshotNoImage(_) => tonic::Code::FailedPrecondition,
    };
    Status::new(code, e.to_string())
}

pub fn forward(f: &ForwardStatus) -> pb::Forward {
    let state = match f.state {
        ForwardState::Active => pb::ForwardState::Active,
        ForwardState::Waiting => pb::ForwardState::Waiting,
        ForwardState::Error => pb::ForwardState::Error,
        ForwardState::Stopped => pb::ForwardState::Stopped,
    };
    pb::Forward {
        service: f.service.clone(),
        local_port: u32::from(f.local_port),
        remote_port: u32::from(f.remote_port),
        state: state as i32,
        pod: f.pod.clone().unwrap_or_default(),
        connections: f.connections,
        active_connections: f.active_connections,
        bytes_in: f.bytes_in,
        bytes_out: f.bytes_out,
        reconnects: f.reconnects,
        last_error: f.last_error.clone().unwrap_or_default(),
    }
}

pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    prost_types::Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
    }
}

pub fn system_time(t: &prost_types::Timestamp) -> SystemTime {
    let secs = t.seconds.max(0) as u64;
    SystemTime::UNIX_EPOCH + std::time::Duration::new(secs, t.nanos.max(0) as u32)
}

fn state(s: ServiceState) -> pb::ServiceState {
    match s {
        ServiceState::Pending => pb::ServiceState::Pending,
        ServiceState::Starting => pb::ServiceState::Starting,
        ServiceState::Ready => pb::ServiceState::Ready,
        ServiceState::Unhealthy => pb::ServiceState::Unhealthy,
        ServiceState::Failed => pb::ServiceState::Failed,
        ServiceState::Stopping => pb::ServiceState::Stopping,
        ServiceState::Stopped => pb::ServiceState::Stopped,
        ServiceState::Completed => pb::ServiceState::Completed,
    }
}

pub fn service_status(s: &ServiceStatus) -> pb::ServiceStatus {
    pb::ServiceStatus {
        name: s.name.clone(),
        runtime: s.runtime.clone(),
        state: state(s.state) as i32,
        ready: s.state == ServiceState::Ready,
        pid: s.pid.unwrap_or(0),
        ports: s.ports.iter().map(|&p| u32::from(p)).collect(),
        restarts: s.restarts,
        message: s.message.clone(),
        exit_code: s.exit_code,
        since: Some(timestamp(s.since)),
        last_lines: s.last_lines.clone(),
        dev: s.dev,
        dependencies: Vec::new(),
        crashes: s.crashes,
        degraded: s.degraded.clone().unwrap_or_default(),
        replicas: s.replicas.map(|r| pb::Replicas {
            desired: r.desired,
            ready: r.ready,
        }),
        url: String::new(),
    }
}

/// A status with the service's dependencies from `config` (the environment's loaded
/// config), for clients that draw the graph.
/// Its URL: through its Ingress when it has one (`networking.ingress`), else through
/// the local router when it has a local port.
pub fn service_status_in(
    s: &ServiceStatus,
    config: Option<&Environment>,
    router: &crate::router::RouterState,
) -> pb::ServiceStatus {
    let mut out = service_status(s);
    if let Some((env, svc)) = config.and_then(|c| Some((c, c.service(&s.name)?))) {
        out.dependencies = svc.dependencies.clone();
        if let Some(route) = &svc.ingress {
            out.url = route.url();
        } else if devenv_core::engine::local_port(svc).is_some() {
            out.url = router.url(&env.name, &svc.name).unwrap_or_default();
        }
    }
    out
}

pub fn log_entry(l: LogLine) -> pb::LogEntry {
    let level = log_level(level::detect(l.stream, &l.text)) as i32;
    pb::LogEntry {
        time: Some(timestamp(l.time)),
        service: l.service.to_string(),
        stream: log_stream(l.stream) as i32,
        line: l.text,
        missed: 0,
        level,
        position: l.seq,
    }
}

/// A marker: lines of a service this client will not see, and why.
pub fn missed_entry(m: &Missed) -> pb::LogEntry {
    pb::LogEntry {
        time: Some(timestamp(std::time::SystemTime::now())),
        service: m.service.to_string(),
        stream: pb::LogStream::System as i32,
        line: m.reason.to_string(),
        missed: m.lines,
        level: 0,
        position: 0,
    }
}

fn log_level(l: Option<Level>) -> pb::LogLevel {
    match l {
        None => pb::LogLevel::Unspecified,
        Some(Level::Trace) => pb::LogLevel::Trace,
        Some(Level::Debug) => pb::LogLevel::Debug,
        Some(Level::Info) => pb::LogLevel::Info,
        Some(Level::Warn) => pb::LogLevel::Warn,
        Some(Level::Error) => pb::LogLevel::Error,
        Some(Level::Fatal) => pb::LogLevel::Fatal,
    }
}

/// A request's minimum level; unspecified: none.
pub fn min_level(l: pb::LogLevel) -> Option<Level> {
    match l {
        pb::LogLevel::Unspecified => None,
        pb::LogLevel::Trace => Some(Level::Trace),
        pb::LogLevel::Debug => Some(Level::Debug),
        pb::LogLevel::Info => Some(Level::Info),
        pb::LogLevel::Warn => Some(Level::Warn),
        pb::LogLevel::Error => Some(Level::Error),
        pb::LogLevel::Fatal => Some(Level::Fatal),
    }
}

fn log_stream(s: Stream) -> pb::LogStream {
    match s {
        Stream::Stdout => pb::LogStream::Stdout,
        Stream::Stderr => pb::LogStream::Stderr,
        Stream::System => pb::LogStream::System,
    }
}

#[cfg(test)]
mod tests {
    use devenv_core::engine::{DevError, UnknownService};
    use tonic::Code;

    use super::*;
    use devenv_core::kube::KubeError;

    #[test]
    fn engine_errors_map_to_statuses_by_type() {
        let unknown = EngineError::UnknownService(UnknownService {
            unknown: vec!["nosuch".into()],
            known: vec!["api".into(), "web".into()],
        });
        let s = status(unknown);
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(
            s.message(),
            "unknown service `nosuch`; services are: api, web"
        );
        let cases = [
            (
                EngineError::Config(ConfigErrors(Vec::new())),
                Code::InvalidArgument,
            ),
            (EngineError::NotUp, Code::FailedPrecondition),
            (
                EngineError::Dev(DevError::NoDevSection("api".into())),
                Code::FailedPrecondition,
            ),
            (
                EngineError::Guardian(std::io::Error::other("gone")),
                Code::Internal,
            ),
            (ClusterError::NoCluster.into(), Code::FailedPrecondition),
            (
                ClusterError::NotK3d { verb: "delete" }.into(),
                Code::FailedPrecondition,
            ),
            (
                ClusterError::Invalid("spec.cluster.name".into()).into(),
                Code::InvalidArgument,
            ),
            (
                ClusterError::Tool(KubeError::new("k3d failed", "")).into(),
                Code::Unknown,
            ),
        ];
        for (e, code) in cases {
            let text = e.to_string();
            let s = status(e);
            assert_eq!(s.code(), code, "{text}");
            assert_eq!(s.message(), text);
        }
    }
}
