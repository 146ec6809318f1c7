//! `devenv workspace ...`: a person's persistent development pod on the environment's
//! cluster (`spec.workspaces`, rendered by `kube::workspace`). The cluster holds what
//! a workspace is (its StatefulSet's replicas say running or stopped); this daemon
//! holds what it has seen of its use (`idle.rs`), and stops it after `idleTimeout`
//! without any.
//!
//! Nothing here starts a stopped workspace but [`Engine::workspace_start`] (and
//! `create` of one that does not exist): a shell, exec or forward into a stopped one is
//! refused, so a client reconnecting after an idle stop never brings it back; so is a
//! `workspace sync` (`sync.rs`).

mod idle;
mod sync;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::wait::await_condition;
use tokio::sync::mpsc;

pub(crate) use idle::Book;
pub use idle::{Activity, Signal};
pub use sync::WorkspaceSync;

use super::exec::{ExecError, ExecSession, ExecSpec, Io, INPUT_QUEUE, OUTPUT_QUEUE};
use super::{Engine, EngineError, ProjectRef};
use crate::config::{Environment, Workspace};
use crate::kube::forward::{ForwardError, ForwardSpec, Forwarder};
use crate::kube::rollout::PodSet;
use crate::kube::volstats::ClaimUsage;
use crate::kube::workspace as kws;
use crate::kube::{ClusterConn, KubeError};

/// How long create and start wait for the pod to be ready (an image pull included).
const READY_DEADLINE: Duration = Duration::from_secs(300);

/// Why a workspace command could not be done.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("unknown workspace `{name}`; workspaces are: {}", if .known.is_empty() { "none (add them under spec.workspaces)".to_owned() } else { .known.join(", ") })]
    Unknown { name: String, known: Vec<String> },
    #[error("workspace `{name}` is not created; create it with `devenv workspace create {name}`")]
    Absent { name: String },
    #[error("workspace `{name}` already exists ({state}); {}", if .state == "stopped" { format!("start it with `devenv workspace start {name}`") } else { "delete it first to create it anew".to_owned() })]
    Exists { name: String, state: String },
    #[error("workspace `{name}` is stopped{}; start it with `devenv workspace start {name}`", if *.idle { " (idle)" } else { "" })]
    Stopped { name: String, idle: bool },
    #[error("workspace `{name}` has no port {port}; its ports: {}", if .ports.is_empty() { "none".to_owned() } else { .ports.iter().map(u16::to_string).collect::<Vec<_>>().join(", ") })]
    NoSuchPort {
        name: String,
        port: u16,
        ports: Vec<u16>,
    },
    #[error("workspace `{name}`'s pod was not ready within {}s: {reason}", .after.as_secs())]
    NotReady {
        name: String,
        after: Duration,
        reason: String,
    },
    #[error("workspace `{name}`: the cluster refused its pod: {reason}")]
    Refused { name: String, reason: String },
    #[error("workspace `{name}` has no `sync` rules; add them to its entry in spec.workspaces, e.g. `sync: [{{ from: ./src, to: /workspace/src }}]`")]
    NoSync { name: String },
    #[error("workspace `{name}`: cannot watch the files to sync: {message}")]
    Watch { name: String, message: String },
    #[error("cannot read the secrets of workspace `{name}`: {message}")]
    Secrets { name: String, message: String },
    #[error(transparent)]
    Forward(#[from] ForwardError),
    #[error("workspace `{name}`: {source}")]
    Kube {
        name: String,
        #[source]
        source: KubeError,
    },
}

/// What `workspace status` / `ls` show of one workspace.
#[derive(Debug, Clone)]
pub struct WorkspaceInfo {
    pub name: String,
    pub owner: String,
    pub namespace: String,
    pub state: WorkspaceState,
    pub pod: Option<String>,
    pub ready: bool,
    pub ports: Vec<u16>,
    pub idle_timeout: Option<Duration>,
    pub last_activity: Option<(Signal, SystemTime)>,
    pub stops_at: Option<SystemTime>,
    pub open_sessions: u32,
    pub idle: String,
    pub volumes: Vec<String>,
    pub cpu: String,
    /// `ls --all`: its claims' usage from the kubelet's stats, by claim name.
    pub volume_usage: Vec<(String, ClaimUsage)>,
    /// Why `volume_usage` is empty (not asked for: empty too).
    pub volume_usage_note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceState {
    Absent,
    Stopped,
    Starting,
    Running,
}

impl WorkspaceState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Absent => "absent",
            Self::Stopped => "stopped",
            Self::Starting => "starting",
            Self::Running => "running",
        }
    }

    fn of(sts: Option<&StatefulSet>) -> Self {
        let Some(sts) = sts else {
            return Self::Absent;
        };
        let desired = sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let ready = sts
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0);
        match (desired, ready) {
            (0, _) => Self::Stopped,
            (d, r) if r >= d => Self::Running,
            _ => Self::Starting,
        }
    }
}

/// One workspace of a loaded environment, with its cluster connection.
struct Target {
    env: Arc<Environment>,
    ws: Workspace,
    conn: ClusterConn,
}

impl Target {
    fn kube(&self) -> impl Fn(KubeError) -> WorkspaceError + '_ {
        |source| WorkspaceError::Kube {
            name: self.ws.name.clone(),
            source,
        }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.conn.namespace, self.ws.object_name())
    }
}

impl Engine {
    /// Loads the config and finds `name` among its workspaces, connected.
    async fn workspace_target(&self, req: &ProjectRef, name: &str) -> Result<Target, EngineError> {
        let rt = self.find_or_register(req)?;
        let env = self.load(req)?.environment;
        let Some(ws) = env.workspaces.iter().find(|w| w.name == name).cloned() else {
            return Err(WorkspaceError::Unknown {
                name: name.to_owned(),
                known: env.workspaces.iter().map(|w| w.name.clone()).collect(),
            }
            .into());
        };
        let conn = rt
            .kube_env(&env, &req.vars)
            .await
            .map_err(|source| WorkspaceError::Kube {
                name: name.to_owned(),
                source,
            })?;
        Ok(Target {
            env: Arc::new(env),
            ws,
            conn,
        })
    }

    /// [`Self::workspace_target`] of a workspace that was created (its StatefulSet
    /// exists, running or stopped); else [`WorkspaceError::Absent`].
    async fn existing_target(&self, req: &ProjectRef, name: &str) -> Result<Target, EngineError> {
        let t = self.workspace_target(req, name).await?;
        if kws::get(&t.conn, &t.ws).await.map_err(t.kube())?.is_none() {
            return Err(WorkspaceError::Absent {
                name: name.to_owned(),
            }
            .into());
        }
        Ok(t)
    }

    /// Creates the workspace and waits for its pod; an existing one is refused.
    pub async fn workspace_create(
        &self,
        req: &ProjectRef,
        name: &str,
    ) -> Result<WorkspaceInfo, EngineError> {
        let t = self.workspace_target(req, name).await?;
        let existing = kws::get(&t.conn, &t.ws).await.map_err(t.kube())?;
        if existing.is_some() {
            return Err(WorkspaceError::Exists {
                name: name.to_owned(),
                state: WorkspaceState::of(existing.as_ref()).as_str().to_owned(),
            }
            .into());
        }
        let env = self.workspace_secrets(&t, req).await?;
        let objs = kws::objects(&env, &t.ws, 1);
        crate::kube::apply::apply_all(&crate::kube::apply::Kinds::default(), &t.conn, &objs)
            .await
            .map_err(t.kube())?;
        self.workspace_wait_ready(&t).await?;
        self.idle_arm(&t, Signal::Created);
        self.workspace_info(&t).await
    }

    /// Starts a stopped workspace (1 replica) and waits for its pod.
    pub async fn workspace_start(
        &self,
        req: &ProjectRef,
        name: &str,
    ) -> Result<WorkspaceInfo, EngineError> {
        let t = self.existing_target(req, name).await?;
        kws::set_replicas(&t.conn, &t.ws, 1)
            .await
            .map_err(t.kube())?;
        self.workspace_wait_ready(&t).await?;
        self.idle_arm(&t, Signal::Started);
        self.workspace_info(&t).await
    }

    /// Stops the workspace (0 replicas), keeping its volumes.
    pub async fn workspace_stop(
        &self,
        req: &ProjectRef,
        name: &str,
    ) -> Result<WorkspaceInfo, EngineError> {
        let t = self.existing_target(req, name).await?;
        self.idle_book().disarm(&t.key(), false);
        kws::set_replicas(&t.conn, &t.ws, 0)
            .await
            .map_err(t.kube())?;
        self.workspace_info(&t).await
    }

    /// Deletes the workspace; its volumes too with `volumes`. Returns the claims kept.
    pub async fn workspace_delete(
        &self,
        req: &ProjectRef,
        name: &str,
        volumes: bool,
    ) -> Result<Vec<String>, EngineError> {
        let t = self.workspace_target(req, name).await?;
        self.idle_book().disarm(&t.key(), false);
        self.idle_book().forget(&t.key());
        Ok(kws::delete(&t.conn, &t.env.name, &t.ws, volumes)
            .await
            .map_err(t.kube())?)
    }

    pub async fn workspace_status(
        &self,
        req: &ProjectRef,
        name: &str,
    ) -> Result<WorkspaceInfo, EngineError> {
        let t = self.workspace_target(req, name).await?;
        self.workspace_info(&t).await
    }

    /// The user's configured workspaces; with `all`, every user's in the namespace.
    pub async fn workspace_list(
        &self,
        req: &ProjectRef,
        all: bool,
    ) -> Result<Vec<WorkspaceInfo>, EngineError> {
        let rt = self.find_or_register(req)?;
        let env = self.load(req)?.environment;
        let mut out = Vec::new();
        let Some(first) = env.workspaces.first().map(|w| w.name.clone()) else {
            return Ok(out);
        };
        let conn = rt
            .kube_env(&env, &req.vars)
            .await
            .map_err(|source| WorkspaceError::Kube {
                name: first.clone(),
                source,
            })?;
        let env = Arc::new(env);
        for ws in &env.workspaces {
            let t = Target {
                env: env.clone(),
                ws: ws.clone(),
                conn: conn.clone(),
            };
            out.push(self.workspace_info(&t).await?);
        }
        if all {
            let found =
                kws::list(&conn, &env.name, None)
                    .await
                    .map_err(|source| WorkspaceError::Kube {
                        name: first.clone(),
                        source,
                    })?;
            for sts in found {
                let labels = sts.metadata.labels.clone().unwrap_or_default();
                let (Some(name), Some(owner)) = (
                    labels.get(kws::WORKSPACE_LABEL),
                    labels.get(kws::OWNER_LABEL),
                ) else {
                    continue;
                };
                if out.iter().any(|i| &i.name == name && &i.owner == owner) {
                    continue;
                }
                out.push(WorkspaceInfo {
                    name: name.clone(),
                    owner: owner.clone(),
                    namespace: conn.namespace.clone(),
                    state: WorkspaceState::of(Some(&sts)),
                    pod: None,
                    ready: WorkspaceState::of(Some(&sts)) == WorkspaceState::Running,
                    ports: Vec::new(),
                    idle_timeout: None,
                    last_activity: None,
                    stops_at: None,
                    open_sessions: 0,
                    idle: "another user's: its owner's daemon watches its use".into(),
                    volumes: Vec::new(),
                    cpu: String::new(),
                    volume_usage: Vec::new(),
                    volume_usage_note: String::new(),
                });
            }
            let pods =
                kws::pods(&conn, &env.name)
                    .await
                    .map_err(|source| WorkspaceError::Kube {
                        name: first.clone(),
                        source,
                    })?;
            fill_usage(&conn, &mut out, &pods).await;
        }
        Ok(out)
    }

    /// A shell or command in the workspace's pod, counted as activity while open.
    pub async fn workspace_exec(
        &self,
        req: &ProjectRef,
        name: &str,
        spec: ExecSpec,
    ) -> Result<ExecSession, EngineError> {
        let t = self.workspace_target(req, name).await?;
        self.running_or_refuse(&t).await?;
        let shell = spec
            .command
            .is_empty()
            .then(|| super::exec::shell_of(&req.vars));
        let mut spec = spec;
        spec.container = Some(kws::CONTAINER.to_owned());
        let pods = vec![PodSet {
            namespace: t.conn.namespace.clone(),
            selector: kws::selector(&t.env.name, &t.ws),
        }];
        let attached = super::exec::pod::open(&t.conn, pods, &t.ws.name, &spec, shell)
            .await
            .map_err(|e| match e {
                ExecError::NoReadyPod { .. } => EngineError::from(WorkspaceError::Stopped {
                    name: name.to_owned(),
                    idle: false,
                }),
                other => other.into(),
            })?;
        let (in_tx, in_rx) = mpsc::channel(INPUT_QUEUE);
        let (out_tx, out_rx) = mpsc::channel(OUTPUT_QUEUE);
        let io = Io {
            input: in_rx,
            output: out_tx,
            closing: self.closing.clone(),
        };
        let activity = self.idle_arm(&t, Signal::Shell);
        let session = activity.open_session();
        self.tasks.spawn(async move {
            attached.drive(io).await;
            drop(session);
        });
        Ok(ExecSession {
            input: in_tx,
            output: out_rx,
        })
    }

    /// Forwards a local port to the workspace's pod while the returned guard lives;
    /// its bytes are activity.
    pub async fn workspace_forward(
        &self,
        req: &ProjectRef,
        name: &str,
        local_port: u16,
        remote_port: u16,
    ) -> Result<WorkspaceForward, EngineError> {
        let t = self.workspace_target(req, name).await?;
        if !t.ws.ports.contains(&remote_port) {
            return Err(WorkspaceError::NoSuchPort {
                name: name.to_owned(),
                port: remote_port,
                ports: t.ws.ports.clone(),
            }
            .into());
        }
        self.running_or_refuse(&t).await?;
        let forwarder = Forwarder::start(
            t.conn.client.clone(),
            ForwardSpec {
                service: format!("workspace/{name}"),
                local_port,
                remote_port,
                namespace: t.conn.namespace.clone(),
                selector: kws::selector(&t.env.name, &t.ws),
            },
        )
        .await
        .map_err(WorkspaceError::from)?;
        let activity = self.idle_arm(&t, Signal::PortForward);
        Ok(WorkspaceForward {
            local_port: forwarder.status().local_port,
            pod: format!("{}-0", t.ws.object_name()),
            forwarder,
            activity,
        })
    }

    /// Refuses a stopped (or absent) workspace: nothing but `start` starts one.
    async fn running_or_refuse(&self, t: &Target) -> Result<(), EngineError> {
        let sts = kws::get(&t.conn, &t.ws).await.map_err(t.kube())?;
        match WorkspaceState::of(sts.as_ref()) {
            WorkspaceState::Absent => Err(WorkspaceError::Absent {
                name: t.ws.name.clone(),
            }
            .into()),
            WorkspaceState::Stopped => Err(WorkspaceError::Stopped {
                name: t.ws.name.clone(),
                idle: self.idle_book().stopped_idle(&t.key()),
            }
            .into()),
            WorkspaceState::Starting | WorkspaceState::Running => Ok(()),
        }
    }

    /// The environment with the secrets the workspace uses read.
    async fn workspace_secrets(
        &self,
        t: &Target,
        req: &ProjectRef,
    ) -> Result<Environment, EngineError> {
        if t.ws.secrets.is_empty() {
            return Ok((*t.env).clone());
        }
        let secrets_error = |message: String| WorkspaceError::Secrets {
            name: t.ws.name.clone(),
            message,
        };
        let key = crate::secrets::digest_key(self.state.dir())
            .map_err(|e| secrets_error(format!("cannot keep the key of secret revisions: {e}")))?;
        Ok(crate::secrets::resolve(&t.env, &req.vars, &key)
            .await
            .map_err(|e| secrets_error(e.to_string()))?)
    }

    /// Waits until the StatefulSet counts its pod ready (what `status` reads), which
    /// comes after the pod's own Ready condition.
    async fn workspace_wait_ready(&self, t: &Target) -> Result<(), EngineError> {
        let sets: Api<StatefulSet> = Api::namespaced(t.conn.client.clone(), &t.conn.namespace);
        let ready = |s: Option<&StatefulSet>| {
            let Some(s) = s else { return false };
            let generation = s.metadata.generation.unwrap_or(0);
            s.status.as_ref().is_some_and(|st| {
                st.observed_generation.unwrap_or(0) >= generation
                    && st.ready_replicas.unwrap_or(0) >= 1
            })
        };
        // The StatefulSet's count can still include the pod a stop is deleting, so
        // wait for the pod itself too, as exec picks it: ready and not being deleted.
        let pods: Api<Pod> = Api::namespaced(t.conn.client.clone(), &t.conn.namespace);
        let pod_name = format!("{}-0", t.ws.object_name());
        let pod_ready = |p: Option<&Pod>| p.is_some_and(crate::kube::exec::is_ready);
        let since = k8s_openapi::jiff::Timestamp::now();
        let object = t.ws.object_name();
        let waited = match tokio::time::timeout(READY_DEADLINE, async {
            tokio::select! {
                r = async {
                    await_condition(sets, &object, ready).await?;
                    await_condition(pods, &pod_name, pod_ready).await
                } => Ok(r),
                // A pod the API server refuses is refused again on every retry.
                why = crate::kube::events::failed_create(&t.conn, "StatefulSet", &object, since) => {
                    Err(WorkspaceError::Refused {
                        name: t.ws.name.clone(),
                        reason: crate::kube::events::refusal(&why).to_owned(),
                    })
                }
            }
        })
        .await
        {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(refused)) => return Err(refused.into()),
            Err(elapsed) => Err(elapsed),
        };
        let reason = match waited {
            Ok(Ok(_)) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(_) => match kws::pod(&t.conn, &t.ws).await {
                Ok(Some(p)) => pod_reason(&p),
                Ok(None) => "no pod was created (see `kubectl describe statefulset`)".into(),
                Err(e) => e.to_string(),
            },
        };
        Err(WorkspaceError::NotReady {
            name: t.ws.name.clone(),
            after: READY_DEADLINE,
            reason,
        }
        .into())
    }

    async fn workspace_info(&self, t: &Target) -> Result<WorkspaceInfo, EngineError> {
        let sts = kws::get(&t.conn, &t.ws).await.map_err(t.kube())?;
        let state = WorkspaceState::of(sts.as_ref());
        let pod = match state {
            WorkspaceState::Absent | WorkspaceState::Stopped => None,
            _ => kws::pod(&t.conn, &t.ws).await.map_err(t.kube())?,
        };
        let volumes = kws::claims(&t.conn, &t.env.name, &t.ws)
            .await
            .map_err(t.kube())?
            .into_iter()
            .map(|(n, s)| format!("{n}={s}"))
            .collect();
        // A workspace running without a watcher (this daemon restarted): watch it now.
        if state == WorkspaceState::Running {
            self.idle_arm(t, Signal::Seen);
        }
        let idle = self.idle_book().report(&t.key(), state, t.ws.idle_timeout);
        Ok(WorkspaceInfo {
            name: t.ws.name.clone(),
            owner: t.ws.owner.clone(),
            namespace: t.conn.namespace.clone(),
            state,
            ready: state == WorkspaceState::Running,
            pod: pod.and_then(|p| p.metadata.name),
            ports: t.ws.ports.clone(),
            idle_timeout: t.ws.idle_timeout,
            last_activity: idle.last,
            stops_at: idle.stops_at,
            open_sessions: idle.open_sessions,
            idle: idle.note,
            volumes,
            cpu: idle.cpu,
            volume_usage: Vec::new(),
            volume_usage_note: String::new(),
        })
    }
}

/// Fills each workspace's volume usage from the kubelet's stats of the nodes its
/// pods run on (one request per node), or says why it is unknown.
async fn fill_usage(conn: &ClusterConn, out: &mut [WorkspaceInfo], pods: &[Pod]) {
    let of = |p: &Pod, label: &str| {
        p.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(label))
            .cloned()
            .unwrap_or_default()
    };
    let nodes: std::collections::BTreeSet<String> = pods
        .iter()
        .filter_map(|p| p.spec.as_ref()?.node_name.clone())
        .collect();
    let usage = if nodes.is_empty() {
        Ok(Default::default())
    } else {
        crate::kube::volstats::claim_usage(conn, &nodes).await
    };
    for w in out.iter_mut() {
        let pod = pods.iter().find(|p| {
            p.metadata.deletion_timestamp.is_none()
                && of(p, kws::WORKSPACE_LABEL) == w.name
                && of(p, kws::OWNER_LABEL) == w.owner
        });
        let Some(pod) = pod else {
            w.volume_usage_note = "unknown: no running pod to measure".into();
            continue;
        };
        let usage = match &usage {
            Ok(u) => u,
            Err(why) => {
                w.volume_usage_note = why.clone();
                continue;
            }
        };
        let claims: Vec<String> = pod
            .spec
            .iter()
            .flat_map(|s| s.volumes.iter().flatten())
            .filter_map(|v| v.persistent_volume_claim.as_ref())
            .map(|c| c.claim_name.clone())
            .collect();
        let unmeasured: Vec<String> = claims
            .iter()
            .filter(|c| !usage.contains_key(*c))
            .cloned()
            .collect();
        let by_du = if unmeasured.is_empty() {
            Ok(Default::default())
        } else {
            crate::kube::volstats::du_in_pod(conn, pod, kws::CONTAINER, &unmeasured).await
        };
        let by_du = match by_du {
            Ok(d) => d,
            Err(why) => {
                w.volume_usage_note = why;
                Default::default()
            }
        };
        w.volume_usage = claims
            .into_iter()
            .filter_map(|c| usage.get(&c).or_else(|| by_du.get(&c)).map(|u| (c, *u)))
            .collect();
        if w.volume_usage.is_empty() && w.volume_usage_note.is_empty() {
            w.volume_usage_note =
                "unknown: not measured by the kubelet yet (it refreshes every minute or so)".into();
        }
    }
}

/// Why a pod is not ready, in a line: a waiting container's reason, else its phase.
fn pod_reason(p: &Pod) -> String {
    let status = p.status.as_ref();
    let waiting = status
        .into_iter()
        .flat_map(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
        })
        .find_map(|c| {
            let w = c.state.as_ref()?.waiting.as_ref()?;
            Some(format!(
                "container {} is waiting: {}{}",
                c.name,
                w.reason.clone().unwrap_or_default(),
                w.message
                    .as_ref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ))
        });
    waiting.unwrap_or_else(|| {
        format!(
            "pod is {}",
            status
                .and_then(|s| s.phase.clone())
                .unwrap_or_else(|| "pending".into())
        )
    })
}

/// A running forward into a workspace; ends when dropped (or [`Self::stop`]).
pub struct WorkspaceForward {
    pub local_port: u16,
    pub pod: String,
    forwarder: Forwarder,
    activity: Arc<Activity>,
}

impl std::fmt::Debug for WorkspaceForward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceForward")
            .field("local_port", &self.local_port)
            .finish_non_exhaustive()
    }
}

/// How often a forward's byte counters are read for activity.
const FORWARD_SAMPLE: Duration = Duration::from_secs(5);

impl WorkspaceForward {
    /// Serves until `until` resolves (the client went away), counting its traffic as
    /// activity; then closes the listener.
    pub async fn serve(self, until: impl std::future::Future<Output = ()>) {
        let WorkspaceForward {
            forwarder,
            activity,
            ..
        } = self;
        tokio::pin!(until);
        let mut seen = (0u64, 0u64);
        let mut tick = tokio::time::interval(FORWARD_SAMPLE);
        loop {
            tokio::select! {
                () = &mut until => break,
                _ = tick.tick() => {
                    let s = forwarder.status();
                    let now = (s.bytes_in, s.bytes_out);
                    if now != seen || s.active_connections > 0 {
                        seen = now;
                        activity.touch(Signal::PortForward);
                    }
                }
            }
        }
        forwarder.stop().await;
    }
}
