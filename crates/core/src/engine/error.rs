//! The engine's errors, by type: what a caller decides on (the daemon maps each
//! variant to a gRPC status in one table, `devenvd::convert::status`), never by the
//! text. Messages are one line, with what to do next where there is something.

use crate::config::ConfigErrors;
use crate::kube::teardown::TeardownError;
use crate::kube::KubeError;
use crate::state::StateError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The config does not load or check; nothing was started.
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot clear the temp dir {path}: {source}")]
    Scratch {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the process guardian: {0}")]
    Guardian(#[source] std::io::Error),
    /// A request named services the config does not have.
    #[error(transparent)]
    UnknownService(#[from] UnknownService),
    /// `restart` of an environment whose config was never loaded.
    #[error("environment is not up")]
    NotUp,
    #[error(transparent)]
    Dev(#[from] DevError),
    /// `down` stopped the local services but not all of the rest (one line, with
    /// what to do).
    #[error(transparent)]
    Down(#[from] DownError),
    /// `restart` of services the user stopped: `start` runs them (with the services
    /// waiting for them).
    #[error("{} stopped by user (`devenv stop`); start with `devenv start {}`", .0.join(", "), .0.join(" "))]
    StoppedByUser(Vec<String>),
    #[error(transparent)]
    Scale(#[from] ScaleError),
    /// A `cluster` command could not be done.
    #[error(transparent)]
    Cluster(#[from] super::cluster::ClusterError),
    /// `exec` could not start the command in the service.
    #[error(transparent)]
    Exec(#[from] super::exec::ExecError),
    /// A `workspace` command could not be done.
    #[error(transparent)]
    Workspace(#[from] super::workspace::WorkspaceError),
    /// A snapshot could not be saved, found, read or restored.
    #[error(transparent)]
    Snapshot(#[from] crate::snapshot::SnapshotError),
    /// The environment has data a snapshot cannot hold yet (a preset in a container engine).
    #[error(transparent)]
    SnapshotUnsupported(#[from] crate::snapshot::SnapshotUnsupported),
    /// A Redis preset's BGSAVE failed: nothing was saved.
    #[error("cannot save the redis data consistently: {0}")]
    SnapshotRedis(String),
    /// The data was restored but the environment did not come up.
    #[error("the snapshot's data was restored, but the environment did not come up: {0}")]
    SnapshotUp(String),
    /// Copying a claim on the cluster failed (helper pod, exec, the claim).
    #[error("snapshot of a claim on the cluster: {0}")]
    SnapshotCluster(#[from] KubeError),
    /// Copying a container engine volume failed (engine unreachable, a helper
    /// container, the copy).
    #[error("snapshot of a container engine volume: {0}")]
    SnapshotEngine(#[source] crate::docker::DockerError),
    /// No image of a volume's users is in the engine to mount it with.
    #[error("snapshot of a container engine volume: no image of {0} is in the engine to mount the volume with; run `devenv up` once first")]
    SnapshotNoImage(String),
    /// `devenv tf` of a service that is not a terraform service.
    #[error("`{0}` is not a terraform service (`devenv tf` plans and applies the services with a `terraform:` key)")]
    NotTerraform(String),
}

/// Services a request named that the config does not have; lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown service `{}`; services are: {}", .unknown.join("`, `"), .known.join(", "))]
pub struct UnknownService {
    pub unknown: Vec<String>,
    pub known: Vec<String>,
}

impl UnknownService {
    /// `Err` naming those of `requested` that `env` lacks.
    pub fn check(env: &crate::config::Environment, requested: &[String]) -> Result<(), Self> {
        let unknown: Vec<String> = requested
            .iter()
            .filter(|n| env.service(n).is_none())
            .cloned()
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        Err(Self {
            unknown,
            known: env.services.iter().map(|s| s.name.clone()).collect(),
        })
    }
}

/// Why a service cannot run in dev mode (or sync) as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DevError {
    #[error("`{0}` is a local process: dev mode replaces kubernetes workloads (local services restart on change with `watch`)")]
    LocalProcess(String),
    #[error("service `{0}` has no `dev` section; add `dev: {{ sync: [...], command: ... }}`")]
    NoDevSection(String),
    #[error("`{0}` is in dev mode in another `devenv dev` session")]
    OtherSession(String),
    #[error("`{0}` is not syncing: it is not in dev mode (`devenv dev {0}` or `devenv up --dev`), or has no `dev.sync` rules")]
    NotSyncing(String),
}

/// Why a kubernetes service's runner could not start it (deploy its objects, or put
/// its workload in dev mode). The text is the service's status message and log line.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Kube(#[from] KubeError),
    /// The manifests do not read or parse; located, one error per line.
    #[error("{0}")]
    Manifests(String),
    #[error("reading the manifests failed: {0}")]
    ManifestsTask(#[source] tokio::task::JoinError),
    /// The cluster refused documents in a dry run; each located.
    #[error("invalid manifests, nothing applied: {}", .0.join("; "))]
    InvalidManifests(Vec<String>),
    #[error("service has no image")]
    NoImage,
    /// A `configmap` volume's files can't become a ConfigMap.
    #[error("volume `{volume}`: {source}")]
    ConfigFiles {
        volume: String,
        #[source]
        source: crate::kube::configmap::ConfigFilesError,
    },
    #[error("reading the configmap volumes' files failed: {0}")]
    ConfigFilesTask(#[source] tokio::task::JoinError),
    /// A `host` volume on a cluster of several nodes: each pod would see the host
    /// path of whichever node it lands on.
    #[error("volume `{volume}` of type `host` is a path on one node, and the cluster has {nodes} nodes (hint: set `force: true` on the volume to mount it anyway, each pod seeing its own node's directory)")]
    HostVolumeOnManyNodes { volume: String, nodes: usize },
    #[error("no cluster is configured")]
    NoCluster,
    #[error("{what} not found in namespace {namespace}: devenv does not create a `workload:` service's workload")]
    WorkloadMissing { what: String, namespace: String },
    #[error("{what}: {source}")]
    WorkloadUnreadable {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0} has no pod selector")]
    NoSelector(String),
    #[error("service `{0}` has no `dev` section")]
    NoDevSection(String),
    #[error("dev mode needs a workload, and this service has none")]
    DevNoWorkload,
    #[error("dev mode replaces one workload; this service has {} ({}): give it its own service", .0.len(), .0.join(", "))]
    DevManyWorkloads(Vec<String>),
    #[error("cannot restore {what} after dev mode: {source}")]
    DevRestore {
        what: String,
        #[source]
        source: KubeError,
    },
}

/// What `down` could not finish; the local services are stopped already.
#[derive(Debug, thiserror::Error)]
pub enum DownError {
    #[error("cannot remove the local volumes under {}: {source}", .dir.display())]
    LocalVolumes {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove the presets' data under {}: {source}", .dir.display())]
    PresetData {
        dir: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}; the cluster's objects were left in place, run `devenv down` again once it is reachable")]
    Unreachable(#[source] KubeError),
    #[error("cannot restore {workload} after dev mode: {source}; nothing was deleted, run `devenv down` again")]
    DevRestore {
        workload: String,
        #[source]
        source: KubeError,
    },
    #[error(transparent)]
    Teardown(#[from] TeardownError),
    /// The container engine could not be reached or refused a removal.
    #[error("{0}; the remaining containers were left in place, run `devenv down` again once the engine is reachable")]
    Containers(#[source] crate::docker::DockerError),
    /// A `preDown` (nothing was stopped) or `postDown` (everything was) hook failed.
    #[error(transparent)]
    Hook(#[from] HookFailed),
    /// `terraform destroy` of an `allowDestroy` service failed (`down --volumes`).
    #[error("{source}; `{service}`'s resources may remain, run `devenv down --volumes` again")]
    Terraform {
        service: String,
        #[source]
        source: crate::terraform::TfError,
    },
}

/// A hook with `onError: fail` failed: the step it belongs to fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("hook {name} failed: {reason}{}", lines_suffix(.last_lines))]
pub struct HookFailed {
    /// `preUp`, `api.postReady`.
    pub name: String,
    /// "`./migrate.sh` exited with code 3", "... did not finish within 5s: killed".
    pub reason: String,
    pub exit_code: Option<i32>,
    pub last_lines: Vec<String>,
}

impl HookFailed {
    /// `hook/preUp: <reason>`, the line `up` reports it by (like `api: <why>` for a
    /// service); the last lines are in the hook's status.
    pub fn summary(&self) -> String {
        format!("hook/{}: {}", self.name, self.reason)
    }
}

fn lines_suffix(lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut s = String::from("; last output:");
    for l in lines {
        s.push_str("\n  ");
        s.push_str(l);
    }
    s
}

/// Why `devenv scale` was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error(
        "`{0}` is a local process: it runs one instance; `scale` applies to kubernetes workloads"
    )]
    Local(String),
    #[error("cannot scale `{service}` to {replicas}: replicas must be from 1 to {max} (`devenv stop {service}` stops it)")]
    OutOfRange {
        service: String,
        replicas: u32,
        max: u32,
    },
    #[error("`{0}` is not running; start it first (`devenv start {0}`)")]
    NotRunning(String),
    #[error("`{service}` has no workload with replicas (its workloads: {kinds}); a DaemonSet runs one pod per node")]
    NotScalable { service: String, kinds: String },
    #[error("cannot scale `{service}`: {source}")]
    Kube {
        service: String,
        #[source]
        source: KubeError,
    },
    #[error("`{service}` did not reach {replicas} ready replica(s) within {secs}s: {ready} ready")]
    NotReady {
        service: String,
        replicas: u32,
        ready: u32,
        secs: u64,
    },
}
