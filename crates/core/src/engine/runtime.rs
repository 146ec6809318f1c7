//! One environment at run time: its status board, supervisors, cluster connection
//! and file watcher. The rooms that act on it: `up` (up.rs), `down` and `restart`
//! (down.rs), dev mode (dev/).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, mpsc, watch};

use super::board::Shared;
use super::supervisor::{Ctl, Supervisor};
use crate::config::{Cluster, ClusterProvider, Environment, RuntimeKind};
use crate::kube::apply::Kinds;
use crate::kube::forward::{ForwardState, ForwardStatus, Forwarder};
use crate::kube::{ClusterConn, KubeError};
use crate::logs::LogHub;
use crate::process::{Guardian, Spawner};
use crate::state::StateStore;
use crate::status::{ServiceState, ServiceStatus};

/// Events buffered per watcher before it is told it lagged.
const EVENT_BUFFER: usize = 1024;

#[derive(Debug)]
pub struct LiveEnv {
    pub shared: Arc<Shared>,
    pub project_dir: PathBuf,
    pub env_name: Option<String>,
    pub(super) config: Mutex<Option<Arc<Environment>>>,
    pub(super) supervisors: Mutex<HashMap<String, Supervisor>>,
    /// Serializes up/down/restart of this environment.
    pub(super) ops: tokio::sync::Mutex<()>,
    /// Cancelled when the daemon shuts down: an `up` still waiting gives way to `down`.
    pub(super) closing: tokio_util::sync::CancellationToken,
    /// Cancels the `up` in progress, if any: `down` must not wait out its probes.
    pub(super) current_up: Mutex<Option<tokio_util::sync::CancellationToken>>,
    /// Started or stopped through `up`/`down` (not only looked at by `status`).
    pub registered: std::sync::atomic::AtomicBool,
    /// The cluster connection, made by the first kubernetes service of an `up`.
    pub(super) kube: tokio::sync::Mutex<Option<ClusterConn>>,
    /// The namespace policy last applied through `kube` (locked after `kube`).
    policy: tokio::sync::Mutex<Option<crate::config::NamespacePolicy>>,
    pub(super) kinds: Arc<Kinds>,
    /// The file watcher of the services' `watch` rules, while they are up.
    pub(super) watcher: tokio::sync::Mutex<Option<crate::watch::EnvWatcher>>,
    /// Makes dependents follow their dependencies' health, while it is up.
    pub(super) health: tokio::sync::Mutex<Option<Background>>,
}

impl LiveEnv {
    #[allow(
        clippy::too_many_arguments,
        reason = "plain constructor of the shared parts"
    )]
    pub fn new(
        id: String,
        name: String,
        project_dir: PathBuf,
        env_name: Option<String>,
        spawner: Arc<Spawner>,
        guardian: Arc<Guardian>,
        state: StateStore,
        instance: String,
        logs: LogHub,
        scratch: crate::scratch::Scratch,
    ) -> Self {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let shared = Shared {
            id,
            name,
            logs,
            spawner,
            guardian,
            state,
            instance,
            scratch,
            statuses: Mutex::default(),
            events,
            forwards: Mutex::default(),
            dev_wanted: Mutex::default(),
            dev_active: Mutex::default(),
            syncs: Mutex::default(),
            held: Mutex::default(),
            parked: Mutex::default(),
            scaled: Mutex::default(),
            stopped_replicas: Mutex::default(),
            tf_outputs: Mutex::default(),
            workloads: Mutex::default(),
        };
        Self {
            shared: Arc::new(shared),
            project_dir,
            env_name,
            config: Mutex::default(),
            supervisors: Mutex::default(),
            ops: tokio::sync::Mutex::new(()),
            closing: Default::default(),
            current_up: Mutex::default(),
            registered: Default::default(),
            kube: tokio::sync::Mutex::new(None),
            policy: tokio::sync::Mutex::new(None),
            kinds: Arc::default(),
            watcher: tokio::sync::Mutex::new(None),
            health: tokio::sync::Mutex::new(None),
        }
    }

    /// The environment's cluster connection: connects, checks the server and makes
    /// sure the namespace exists, once; later calls reuse it.
    pub(super) async fn kube_env(
        &self,
        env: &Environment,
        vars: &BTreeMap<String, String>,
    ) -> Result<ClusterConn, KubeError> {
        let mut slot = self.kube.lock().await;
        let policy = env
            .cluster
            .as_ref()
            .map(|c| c.policy.clone())
            .unwrap_or_default();
        let mut applied = self.policy.lock().await;
        if let Some(k) = slot.as_ref() {
            if k.namespace
                == env
                    .cluster
                    .as_ref()
                    .map(|c| c.namespace.as_str())
                    .unwrap_or("")
            {
                // The namespace's quota and limits follow the config of each `up`.
                if applied.as_ref() != Some(&policy) {
                    crate::kube::quota::apply(k, &policy).await?;
                    *applied = Some(policy);
                }
                return Ok(k.clone());
            }
        }
        let cluster = env.cluster.clone().unwrap_or_else(|| Cluster {
            provider: ClusterProvider::Kubeconfig,
            name: None,
            context: None,
            namespace: format!("devenv-{}", env.name),
            k3d: Default::default(),
            shared: false,
            policy: Default::default(),
            snapshot_image: None,
            registry: None,
        });
        let k = ClusterConn::connect(&cluster, &env.name, vars).await?;
        k.check().await?;
        k.ensure_namespace().await?;
        // Before anything that makes pods, so the LimitRange's defaults apply to them.
        crate::kube::quota::apply(&k, &policy).await?;
        *applied = Some(policy);
        *slot = Some(k.clone());
        Ok(k)
    }

    /// Applies the config's namespace policy over an existing connection when it
    /// changed (an `up` that keeps every kubernetes service connects no further);
    /// without a connection, the first service that needs one applies it.
    pub(super) async fn refresh_policy(&self, env: &Environment) -> Result<(), KubeError> {
        let Some(cluster) = env.cluster.as_ref() else {
            return Ok(());
        };
        let slot = self.kube.lock().await;
        let Some(k) = slot.as_ref().filter(|k| k.namespace == cluster.namespace) else {
            return Ok(());
        };
        let mut applied = self.policy.lock().await;
        if applied.as_ref() != Some(&cluster.policy) {
            crate::kube::quota::apply(k, &cluster.policy).await?;
            *applied = Some(cluster.policy.clone());
        }
        Ok(())
    }

    /// The environment's name (its config's `metadata.name`).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Restores statuses recorded by an earlier daemon (already reconciled).
    pub fn restore(&self, statuses: Vec<ServiceStatus>) {
        let mut map = self
            .shared
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for s in statuses {
            map.insert(s.name.clone(), watch::channel(s).0);
        }
    }

    /// Adopts a freshly loaded config: new services appear as stopped.
    pub fn set_config(&self, env: Arc<Environment>) {
        for s in &env.services {
            self.shared.ensure_status(s);
        }
        *self.config.lock().unwrap_or_else(|p| p.into_inner()) = Some(env);
    }

    pub fn config(&self) -> Option<Arc<Environment>> {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Statuses in config order (services no longer configured but still known last).
    pub fn statuses(&self) -> Vec<ServiceStatus> {
        let map = self
            .shared
            .statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let config = self.config();
        let order: Vec<String> = match &config {
            Some(c) => c.services.iter().map(|s| s.name.clone()).collect(),
            None => Vec::new(),
        };
        // A service of an inactive profile is not shown unless it runs (or failed).
        let in_profile = |n: &str| {
            config
                .as_ref()
                .and_then(|c| c.service(n))
                .is_some_and(|s| !s.profiles.is_empty())
        };
        let mut out: Vec<ServiceStatus> = order
            .iter()
            .filter_map(|n| map.get(n))
            .map(|t| t.borrow().clone())
            .filter(|s| !(s.state == ServiceState::Stopped && in_profile(&s.name)))
            .collect();
        // A hook's last run shows while the config has it.
        let hooks = config
            .as_deref()
            .map(super::board::configured_hooks)
            .unwrap_or_default();
        let mut rest: Vec<ServiceStatus> = map
            .iter()
            .filter(|(n, _)| !order.contains(n))
            .filter(|(n, t)| !super::board::is_hook(&t.borrow()) || hooks.contains(n))
            .map(|(_, t)| t.borrow().clone())
            .collect();
        rest.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(rest);
        out
    }

    /// Port forwards of this environment's kubernetes services, with their health;
    /// configured forwards of services that are not up show as stopped.
    pub fn forwards(&self) -> Vec<ForwardStatus> {
        let live = self
            .shared
            .forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .flatten()
            .map(Forwarder::status)
            .collect::<Vec<_>>();
        let mut out = Vec::new();
        if let Some(env) = self.config() {
            for svc in env
                .services
                .iter()
                .filter(|s| s.runtime == RuntimeKind::Kubernetes)
            {
                for (local, remote) in &svc.forward {
                    match live
                        .iter()
                        .find(|f| f.service == svc.name && f.local_port == *local)
                    {
                        Some(f) => out.push(f.clone()),
                        None => out.push(ForwardStatus {
                            service: svc.name.clone(),
                            local_port: *local,
                            remote_port: *remote,
                            state: ForwardState::Stopped,
                            pod: None,
                            connections: 0,
                            active_connections: 0,
                            bytes_in: 0,
                            bytes_out: 0,
                            reconnects: 0,
                            last_error: None,
                            since: std::time::SystemTime::now(),
                        }),
                    }
                }
            }
        }
        out
    }

    /// Snapshot plus subsequent changes.
    pub fn watch(&self) -> (Vec<ServiceStatus>, broadcast::Receiver<ServiceStatus>) {
        let rx = self.shared.events.subscribe();
        (self.statuses(), rx)
    }
}

impl LiveEnv {
    /// Starts the file watcher for the `watch` rules of local (and built container) services in `names` or
    /// running already, replacing one that watches something else.
    pub(super) async fn ensure_watcher(
        self: &Arc<Self>,
        env: &Environment,
        names: &[String],
        vars: &BTreeMap<String, String>,
    ) {
        let running: Vec<String> = {
            let sups = self.supervisors.lock().unwrap_or_else(|p| p.into_inner());
            sups.iter()
                .filter(|(_, s)| !s.task.is_finished())
                .map(|(n, _)| n.clone())
                .collect()
        };
        let targets: Vec<crate::watch::Target> = env
            .services
            .iter()
            // Containers only with `build:` (the config refuses `watch` otherwise).
            .filter(|s| {
                s.runtime == RuntimeKind::Local
                    || (s.runtime == RuntimeKind::Container && s.build.is_some())
            })
            .filter(|s| names.contains(&s.name) || running.contains(&s.name))
            .filter_map(|s| crate::watch::Target::of(s, &self.shared.name, vars))
            .collect();
        let mut slot = self.watcher.lock().await;
        if let Some(w) = slot.as_ref() {
            if w.watches_same(&targets) {
                w.set_targets(targets);
                return;
            }
        }
        if let Some(old) = slot.take() {
            old.stop().await;
        }
        if targets.is_empty() {
            return;
        }
        let ctx = crate::watch::Context {
            logs: self.shared.logs.clone(),
            guardian: Some(self.shared.guardian.clone()),
            services: Arc::new(WatchedServices(Arc::downgrade(self))),
            options: crate::watch::Options::from_env(),
        };
        match crate::watch::EnvWatcher::start(&env.project_dir, targets, ctx) {
            Ok(w) => *slot = Some(w),
            Err(e) => tracing::error!(error = %e, env = %self.shared.name, "no file watching"),
        }
    }
}

/// The watcher's view of the environment's services: it restarts them through
/// their supervisors, like `devenv restart`.
struct WatchedServices(std::sync::Weak<LiveEnv>);

impl WatchedServices {
    fn ctl(&self, service: &str) -> Option<mpsc::Sender<Ctl>> {
        let rt = self.0.upgrade()?;
        let sups = rt.supervisors.lock().unwrap_or_else(|p| p.into_inner());
        sups.get(service)
            .filter(|s| !s.task.is_finished())
            .map(|s| s.ctl.clone())
    }
}

impl crate::watch::Services for WatchedServices {
    fn restart(&self, service: &str) -> bool {
        self.ctl(service)
            .is_some_and(|c| c.try_send(Ctl::Restart).is_ok())
    }

    fn rebuild(&self, service: &str) -> bool {
        self.ctl(service)
            .is_some_and(|c| c.try_send(Ctl::Rebuild).is_ok())
    }

    fn running(&self, service: &str) -> bool {
        self.ctl(service).is_some()
    }

    fn status(&self, service: &str) -> Option<ServiceStatus> {
        self.0.upgrade()?.shared.status_of(service)
    }
}

/// A background task of one environment (the dependency health follower, started by
/// `health.rs`): cancelled and joined when it ends.
#[derive(Debug)]
pub(super) struct Background {
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Background {
    pub(super) fn spawn<F>(run: impl FnOnce(tokio_util::sync::CancellationToken) -> F) -> Self
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(run(stop.clone()));
        Self { stop, task }
    }

    pub(super) fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    /// Ends the task and waits for it.
    pub(super) async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
