//! One environment at run time: its services' statuses, supervisors, log hub and
//! event stream, and the up/down orchestration over its dependency graph.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use super::graph;
use super::supervisor::{Ctl, Supervisor};
use crate::config::{Cluster, ClusterProvider, Environment, RuntimeKind, Service};
use crate::kube::apply::Kinds;
use crate::kube::forward::{ForwardState, ForwardStatus, Forwarder};
use crate::kube::{KubeEnv, KubeError};
use crate::logs::LogHub;
use crate::process::{Guardian, Spawner};
use crate::state::{ServiceRecord, StateStore};
use crate::status::{ServiceState, ServiceStatus};

/// How long `up` waits for a service without a readiness probe (a oneshot, or one
/// restarting before it ever started) before it reports it as failed.
const NO_PROBE_LIMIT: Duration = Duration::from_secs(600);

/// Events buffered per watcher before it is told it lagged.
const EVENT_BUFFER: usize = 1024;

/// How long `up` waits for the file watcher to be set up before it reports.
const WATCH_SETUP_LIMIT: Duration = Duration::from_secs(10);

/// What supervisors of one environment share.
#[derive(Debug)]
pub struct Shared {
    pub id: String,
    pub name: String,
    pub logs: LogHub,
    pub spawner: Arc<Spawner>,
    pub guardian: Arc<Guardian>,
    pub state: StateStore,
    /// Identifies this daemon instance in service markers.
    pub instance: String,
    statuses: Mutex<HashMap<String, watch::Sender<ServiceStatus>>>,
    events: broadcast::Sender<ServiceStatus>,
    /// Port forwards of kubernetes services that are up, by service.
    forwards: Mutex<BTreeMap<String, Vec<Forwarder>>>,
    /// Services asked to run in dev mode, and by whom.
    dev_wanted: Mutex<BTreeMap<String, DevOwner>>,
    /// Services whose workload is in dev mode now.
    dev_active: Mutex<BTreeSet<String>>,
    /// Sync sessions of services in dev mode.
    syncs: Mutex<BTreeMap<String, Arc<crate::engine::devsync::SyncState>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Who asked for a service's dev mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevOwner {
    /// `up --dev`: until `down` or an `up` without `--dev`.
    Up,
    /// A `devenv dev SERVICE` session (its id): until the client goes away.
    Session(u64),
}

impl Shared {
    /// Scratch files of this environment (e.g. helm values) live under here.
    pub fn state_dir(&self) -> PathBuf {
        self.state.dir().to_path_buf()
    }

    pub fn add_forward(&self, service: &str, f: Forwarder) {
        self.forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(service.to_owned())
            .or_default()
            .push(f);
    }

    pub fn dev_wanted(&self, service: &str) -> bool {
        lock(&self.dev_wanted).contains_key(service)
    }

    pub fn set_dev_active(&self, service: &str, on: bool) {
        {
            let mut a = lock(&self.dev_active);
            if on {
                a.insert(service.to_owned());
            } else {
                a.remove(service);
            }
        }
        self.update(service, |s| s.dev = on);
    }

    pub fn dev_active(&self, service: &str) -> bool {
        lock(&self.dev_active).contains(service)
    }

    pub fn set_sync(&self, service: &str, s: Option<Arc<crate::engine::devsync::SyncState>>) {
        let mut m = lock(&self.syncs);
        match s {
            Some(s) => m.insert(service.to_owned(), s),
            None => m.remove(service),
        };
    }

    /// Sync states of the services in dev mode, by service.
    pub fn syncs(&self) -> Vec<(String, Arc<crate::engine::devsync::SyncState>)> {
        lock(&self.syncs)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn has_forwards(&self, service: &str) -> bool {
        self.forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(service)
            .is_some_and(|v| !v.is_empty())
    }

    pub fn take_forwards(&self, service: &str) -> Vec<Forwarder> {
        self.forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(service)
            .unwrap_or_default()
    }

    pub fn marker(&self, service: &str) -> String {
        format!("{}/{}/{}", self.instance, self.id, service)
    }

    pub fn status_of(&self, name: &str) -> Option<ServiceStatus> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map(|s| s.borrow().clone())
    }

    fn watch_of(&self, name: &str) -> Option<watch::Receiver<ServiceStatus>> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map(|s| s.subscribe())
    }

    /// Changes a service's status, then publishes and persists it.
    pub fn update(&self, name: &str, f: impl FnOnce(&mut ServiceStatus)) {
        let snapshot = {
            let map = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
            let Some(tx) = map.get(name) else { return };
            let before = tx.borrow().state;
            tx.send_modify(|s| {
                f(s);
                if s.state != before {
                    s.since = std::time::SystemTime::now();
                }
                // Only a live process has a pid worth showing.
                if !s.state.is_active() {
                    s.pid = None;
                }
            });
            let snap = tx.borrow().clone();
            snap
        };
        let _ = self.events.send(snapshot.clone());
        self.persist(snapshot);
    }

    fn persist(&self, status: ServiceStatus) {
        if let Err(e) = self.state.put_service(&self.id, &ServiceRecord { status }) {
            tracing::error!(error = %e, "cannot persist service state");
        }
    }

    fn ensure_status(&self, svc: &Service) {
        let mut map = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&svc.name) {
            Some(tx) => tx.send_modify(|s| {
                s.ports = svc.ports.clone();
                s.runtime = svc.runtime.as_str().into();
            }),
            None => {
                let (tx, _) = watch::channel(ServiceStatus::new(
                    &svc.name,
                    svc.runtime.as_str(),
                    svc.ports.clone(),
                ));
                map.insert(svc.name.clone(), tx);
            }
        }
    }
}

/// A progress event of `up`.
#[derive(Debug, Clone)]
pub enum UpEvent {
    Service(ServiceStatus),
    Done {
        ok: bool,
        failed: Vec<String>,
        message: String,
    },
}

/// What `devenv down` did.
#[derive(Debug, Clone, Default)]
pub struct DownReport {
    /// Services that were running and were stopped, in stop order.
    pub stopped: Vec<String>,
    /// Cluster objects deleted (`Kind/name`).
    pub deleted: Vec<String>,
    /// Persistent volume claims kept (no `--volumes`).
    pub kept_volumes: Vec<String>,
    /// The namespace removed, when devenv had created it.
    pub namespace_removed: Option<String>,
    /// Workloads put back from an earlier dev mode (`kind/name`).
    pub restored: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub services: Vec<String>,
    pub keep_going: bool,
    /// `up --dev`: the services of this up that have a `dev` section run in dev mode.
    pub dev: bool,
    /// A `devenv dev` session: these services run in dev mode while it lasts.
    pub dev_session: Option<(u64, Vec<String>)>,
}

#[derive(Debug)]
pub struct EnvRuntime {
    pub shared: Arc<Shared>,
    pub project_dir: PathBuf,
    pub env_name: Option<String>,
    config: Mutex<Option<Arc<Environment>>>,
    supervisors: Mutex<HashMap<String, Supervisor>>,
    /// Serializes up/down/restart of this environment.
    ops: tokio::sync::Mutex<()>,
    /// Cancelled when the daemon shuts down: an `up` still waiting gives way to `down`.
    closing: tokio_util::sync::CancellationToken,
    /// Cancels the `up` in progress, if any: `down` must not wait out its probes.
    current_up: Mutex<Option<tokio_util::sync::CancellationToken>>,
    /// Started or stopped through `up`/`down` (not only looked at by `status`).
    pub registered: std::sync::atomic::AtomicBool,
    /// The cluster connection, made by the first kubernetes service of an `up`.
    kube: tokio::sync::Mutex<Option<KubeEnv>>,
    kinds: Arc<Kinds>,
    /// The file watcher of the services' `watch` rules, while they are up.
    watcher: tokio::sync::Mutex<Option<crate::watch::EnvWatcher>>,
}

impl EnvRuntime {
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
            statuses: Mutex::default(),
            events,
            forwards: Mutex::default(),
            dev_wanted: Mutex::default(),
            dev_active: Mutex::default(),
            syncs: Mutex::default(),
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
            kinds: Arc::default(),
            watcher: tokio::sync::Mutex::new(None),
        }
    }

    /// The environment's cluster connection: connects, checks the server and makes
    /// sure the namespace exists, once; later calls reuse it.
    async fn kube_env(
        &self,
        env: &Environment,
        vars: &BTreeMap<String, String>,
    ) -> Result<KubeEnv, KubeError> {
        let mut slot = self.kube.lock().await;
        if let Some(k) = slot.as_ref() {
            if k.namespace
                == env
                    .cluster
                    .as_ref()
                    .map(|c| c.namespace.as_str())
                    .unwrap_or("")
            {
                return Ok(k.clone());
            }
        }
        let cluster = env.cluster.clone().unwrap_or_else(|| Cluster {
            provider: ClusterProvider::Kubeconfig,
            name: None,
            context: None,
            namespace: format!("devenv-{}", env.name),
            k3d: Default::default(),
        });
        let k = KubeEnv::connect(&cluster, &env.name, vars).await?;
        k.check().await?;
        k.ensure_namespace().await?;
        *slot = Some(k.clone());
        Ok(k)
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
        let order: Vec<String> = match self.config() {
            Some(c) => c.services.iter().map(|s| s.name.clone()).collect(),
            None => Vec::new(),
        };
        let mut out: Vec<ServiceStatus> = order
            .iter()
            .filter_map(|n| map.get(n))
            .map(|t| t.borrow().clone())
            .collect();
        let mut rest: Vec<ServiceStatus> = map
            .iter()
            .filter(|(n, _)| !order.contains(n))
            .map(|(_, t)| t.borrow().clone())
            .collect();
        rest.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(rest);
        out
    }

    /// Snapshot plus subsequent changes.
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

    pub fn watch(&self) -> (Vec<ServiceStatus>, broadcast::Receiver<ServiceStatus>) {
        let rx = self.shared.events.subscribe();
        (self.statuses(), rx)
    }

    /// Starts the requested services and their dependencies; each starts as soon as
    /// all its dependencies are ready. Progress goes to `events`.
    pub async fn up(
        self: Arc<Self>,
        env: Arc<Environment>,
        vars: Arc<BTreeMap<String, String>>,
        opts: UpOptions,
        events: mpsc::Sender<UpEvent>,
    ) {
        let _op = self.ops.lock().await;
        if self.closing.is_cancelled() {
            let _ = events
                .send(UpEvent::Done {
                    ok: false,
                    failed: Vec::new(),
                    message: "devenvd is shutting down".into(),
                })
                .await;
            return;
        }
        let cancel = self.closing.child_token();
        *self.current_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(cancel.clone());
        self.set_config(env.clone());
        let set = match graph::closure(&env, &opts.services) {
            Ok(s) => s,
            Err(unknown) => {
                let known: Vec<&str> = env.services.iter().map(|s| s.name.as_str()).collect();
                let _ = events
                    .send(UpEvent::Done {
                        ok: false,
                        failed: unknown.clone(),
                        message: format!(
                            "unknown service(s): {}; known: {}",
                            unknown.join(", "),
                            known.join(", ")
                        ),
                    })
                    .await;
                return;
            }
        };
        if let Err(message) = self.want_dev(&env, &set, &opts) {
            let _ = events
                .send(UpEvent::Done {
                    ok: false,
                    failed: Vec::new(),
                    message,
                })
                .await;
            return;
        }
        self.ensure_watcher(&env, &set, &vars).await;

        // Forward status changes of the services in this request.
        let mut rx = self.shared.events.subscribe();
        let fwd_events = events.clone();
        let fwd_set = set.clone();
        let forwarder = tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(s) if fwd_set.contains(&s.name) => {
                        if fwd_events.send(UpEvent::Service(s)).await.is_err() {
                            // The client went away; the up itself goes on.
                            return;
                        }
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });

        // Each service's result in this `up`, which its dependents wait for (a
        // dependency's live state can pass through `stopped` while it is replaced).
        let outcomes: Arc<HashMap<String, watch::Sender<Option<bool>>>> = Arc::new(
            set.iter()
                .map(|n| (n.clone(), watch::channel(None).0))
                .collect(),
        );
        let mut started_now = Vec::new();
        let mut tasks = JoinSet::new();
        for name in &set {
            let Some(svc) = env.service(name).cloned() else {
                continue;
            };
            let plan = self.plan(&svc);
            if plan != Plan::Keep {
                started_now.push(name.clone());
            }
            let this = self.clone();
            let vars = vars.clone();
            let outcomes = outcomes.clone();
            tasks.spawn(async move {
                let res = this.start_when_ready(&svc, plan, vars, &outcomes).await;
                if let Some(tx) = outcomes.get(&svc.name) {
                    tx.send_replace(Some(res.is_ok()));
                }
                (svc.name.clone(), res)
            });
        }
        let mut failed = Vec::new();
        let mut reasons = Vec::new();
        loop {
            let joined = tokio::select! {
                j = tasks.join_next() => match j { Some(j) => j, None => break },
                _ = cancel.cancelled() => {
                    tasks.abort_all();
                    let why = if self.closing.is_cancelled() { "devenvd is shutting down" } else { "`devenv down` was requested" };
                    reasons.push(format!("cancelled: {why}"));
                    break;
                }
            };
            match joined {
                Ok((name, Err(StartError::Failed(msg)))) => {
                    reasons.push(format!("{name}: {msg}"));
                    failed.push(name);
                }
                Ok((_, Err(StartError::DependencyFailed))) | Ok((_, Ok(()))) => {}
                Err(e) => {
                    reasons.push(format!("internal error: {e}"));
                }
            }
        }

        let ok = failed.is_empty() && reasons.is_empty();
        if !ok && !opts.keep_going {
            // Nothing half-started stays behind: stop what this request started.
            let started: Vec<String> = started_now
                .iter()
                .filter(|n| !failed.contains(n))
                .cloned()
                .collect();
            self.stop_services(&env, &started).await;
        }
        // Let the forwarder drain what is already queued, then end it.
        tokio::task::yield_now().await;
        forwarder.abort();
        for name in &set {
            if let Some(s) = self.shared.status_of(name) {
                let _ = events.send(UpEvent::Service(s)).await;
            }
        }
        // Once `up` is done, a save is seen.
        if let Some(w) = self.watcher.lock().await.as_ref() {
            w.ready(WATCH_SETUP_LIMIT).await;
        }
        let message = if ok {
            format!("{} service(s) ready", set.len())
        } else {
            let mut m = reasons.join("\n");
            if !opts.keep_going && !started_now.is_empty() {
                m.push_str(
                    "\nstopped the services this `up` had started (use --keep-going to keep them)",
                );
            }
            m
        };
        let _ = events
            .send(UpEvent::Done {
                ok,
                failed,
                message,
            })
            .await;
    }

    /// Decides what `up` does with `svc`, and marks it pending unless kept.
    /// Records which services of this `up` run in dev mode.
    fn want_dev(&self, env: &Environment, set: &[String], opts: &UpOptions) -> Result<(), String> {
        let mut wanted = lock(&self.shared.dev_wanted);
        if let Some((id, names)) = &opts.dev_session {
            for n in names {
                let svc = env
                    .service(n)
                    .ok_or_else(|| format!("unknown service `{n}`"))?;
                if svc.runtime != RuntimeKind::Kubernetes {
                    return Err(format!(
                        "`{n}` is a local process: dev mode replaces kubernetes workloads (local services restart on change with `watch`)"
                    ));
                }
                if svc.dev.is_none() {
                    return Err(format!(
                        "service `{n}` has no `dev` section; add `dev: {{ sync: [...], command: ... }}`"
                    ));
                }
                if let Some(DevOwner::Session(other)) = wanted.get(n) {
                    if other != id {
                        return Err(format!(
                            "`{n}` is in dev mode in another `devenv dev` session"
                        ));
                    }
                }
            }
            for n in names {
                wanted.insert(n.clone(), DevOwner::Session(*id));
            }
            return Ok(());
        }
        for n in set {
            let Some(svc) = env.service(n) else { continue };
            let eligible = svc.runtime == RuntimeKind::Kubernetes && svc.dev.is_some();
            match wanted.get(n) {
                Some(DevOwner::Session(_)) => {}
                _ if opts.dev && eligible => {
                    wanted.insert(n.clone(), DevOwner::Up);
                }
                Some(DevOwner::Up) => {
                    wanted.remove(n);
                }
                None => {}
            }
        }
        Ok(())
    }

    /// Ends a `devenv dev` session's claim on its services; true when it held any.
    pub fn end_dev_session(&self, id: u64) -> Vec<String> {
        let mut wanted = lock(&self.shared.dev_wanted);
        let mine: Vec<String> = wanted
            .iter()
            .filter(|(_, o)| **o == DevOwner::Session(id))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &mine {
            wanted.remove(n);
        }
        mine
    }

    fn plan(&self, svc: &Service) -> Plan {
        let plan = {
            let sups = self.supervisors.lock().unwrap_or_else(|p| p.into_inner());
            let state = self.shared.status_of(&svc.name).map(|s| s.state);
            match sups.get(&svc.name).filter(|s| !s.task.is_finished()) {
                None => Plan::Start,
                Some(s) if s.service != *svc || s.dev != self.shared.dev_wanted(&svc.name) => {
                    Plan::Replace
                }
                Some(_) if state == Some(ServiceState::Failed) => Plan::Retry,
                Some(_) => Plan::Keep,
            }
        };
        if plan != Plan::Keep {
            self.shared.update(&svc.name, |s| {
                s.state = ServiceState::Pending;
                s.message = "waiting for dependencies".into();
                s.last_lines.clear();
            });
        }
        plan
    }

    async fn start_when_ready(
        &self,
        svc: &Service,
        plan: Plan,
        vars: Arc<BTreeMap<String, String>>,
        outcomes: &HashMap<String, watch::Sender<Option<bool>>>,
    ) -> Result<(), StartError> {
        // A running service with an unchanged config is left alone, whatever its
        // dependencies go through.
        let deps = if plan == Plan::Keep {
            &[][..]
        } else {
            &svc.dependencies[..]
        };
        for dep in deps {
            let Some(mut rx) = outcomes.get(dep).map(|tx| tx.subscribe()) else {
                continue;
            };
            let ok = rx
                .wait_for(Option::is_some)
                .await
                .map(|o| *o == Some(true))
                .unwrap_or(false);
            if !ok {
                self.shared.update(&svc.name, |s| {
                    s.state = ServiceState::Stopped;
                    s.message = format!("not started: dependency `{dep}` did not become ready");
                });
                return Err(StartError::DependencyFailed);
            }
        }
        let kube = if svc.runtime == RuntimeKind::Kubernetes && plan != Plan::Keep {
            let Some(env) = self.config() else {
                return Err(StartError::Failed("environment has no config".into()));
            };
            self.shared.update(&svc.name, |s| {
                s.state = ServiceState::Starting;
                s.message = "connecting to the cluster".into();
            });
            match self.kube_env(&env, &vars).await {
                Ok(k) => Some((env, k)),
                Err(e) => {
                    let msg = e.to_string();
                    self.shared.update(&svc.name, |s| {
                        s.state = ServiceState::Failed;
                        s.message = msg.clone();
                    });
                    return Err(StartError::Failed(msg));
                }
            }
        } else {
            None
        };
        match plan {
            Plan::Keep => {}
            Plan::Retry => {
                let ctl = self
                    .supervisors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&svc.name)
                    .map(|s| s.ctl.clone());
                if let Some(ctl) = ctl {
                    let _ = ctl.send(Ctl::Restart).await;
                }
            }
            Plan::Replace | Plan::Start => {
                let old = self
                    .supervisors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&svc.name);
                if let Some(old) = old {
                    old.stop().await;
                    let _ = old.task.await;
                    self.shared
                        .update(&svc.name, |s| s.state = ServiceState::Pending);
                }
                let sup = match kube {
                    Some((env, kenv)) => Supervisor::start_kube(
                        self.shared.clone(),
                        svc.clone(),
                        env,
                        kenv,
                        self.kinds.clone(),
                        vars,
                        self.shared.dev_wanted(&svc.name),
                    ),
                    None => Supervisor::start(self.shared.clone(), svc.clone(), vars),
                };
                self.supervisors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(svc.name.clone(), sup);
            }
        }
        let Some(mut rx) = self.shared.watch_of(&svc.name) else {
            return Err(StartError::Failed("service disappeared".into()));
        };
        // A crash-looping service gets a fresh probe deadline on every restart; `up`
        // gives up after one readiness timeout (plus the last backoff) all the same.
        let limit = svc
            .readiness
            .as_ref()
            .map(|r| r.initial_delay + r.timeout)
            .unwrap_or(NO_PROBE_LIMIT)
            + Duration::from_secs(1);
        let waited: Option<Result<ServiceStatus, StartError>> = match tokio::time::timeout(
            limit,
            rx.wait_for(|s| {
                satisfied(svc.oneshot, s.state)
                    || matches!(s.state, ServiceState::Failed | ServiceState::Stopped)
            }),
        )
        .await
        {
            Ok(r) => Some(
                r.map(|s| s.clone())
                    .map_err(|_| StartError::Failed("supervisor ended".into())),
            ),
            Err(_) => None,
        };
        let st = match waited {
            Some(r) => r?,
            None => {
                let why = self
                    .shared
                    .status_of(&svc.name)
                    .map(|s| s.message)
                    .unwrap_or_default();
                let sup = self
                    .supervisors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&svc.name);
                if let Some(sup) = sup {
                    sup.stop().await;
                    let _ = sup.task.await;
                }
                let msg = format!("not ready within {}s; last: {why}", limit.as_secs());
                let lines = self.shared.logs.last_lines(&svc.name, 10);
                self.shared.update(&svc.name, |s| {
                    s.state = ServiceState::Failed;
                    s.message = msg.clone();
                    s.last_lines = lines;
                });
                return Err(StartError::Failed(msg));
            }
        };
        if satisfied(svc.oneshot, st.state) {
            Ok(())
        } else {
            Err(StartError::Failed(st.message))
        }
    }

    /// Stops the named services (all when empty) in reverse dependency order, in
    /// parallel where the graph allows. Returns the names that were running.
    /// Ends any `up` in progress; the daemon is going away.
    pub fn close(&self) {
        self.closing.cancel();
    }

    pub async fn down(self: Arc<Self>) -> Vec<String> {
        let running_up = self
            .current_up
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(up) = running_up {
            up.cancel();
        }
        let _op = self.ops.lock().await;
        lock(&self.shared.dev_wanted).clear();
        // First, so that nothing restarts what is being stopped.
        if let Some(w) = self.watcher.lock().await.take() {
            w.stop().await;
        }
        let Some(env) = self.config() else {
            return self.stop_orphans().await;
        };
        let all: Vec<String> = env.services.iter().map(|s| s.name.clone()).collect();
        let mut stopped = self.stop_services(&env, &all).await;
        stopped.extend(self.stop_orphans().await);
        stopped
    }

    /// `devenv down`: stops every service, then deletes what devenv created in the
    /// cluster (when the environment has kubernetes services). An unreachable cluster
    /// is an error after the local part is done; a later `down` retries the cluster.
    pub async fn down_all(
        self: Arc<Self>,
        volumes: bool,
        vars: Arc<BTreeMap<String, String>>,
    ) -> Result<DownReport, String> {
        let stopped = self.clone().down().await;
        let mut report = DownReport {
            stopped,
            ..Default::default()
        };
        let Some(env) = self.config() else {
            return Ok(report);
        };
        let kube_services: Vec<&Service> = env
            .services
            .iter()
            .filter(|s| s.runtime == RuntimeKind::Kubernetes)
            .collect();
        if kube_services.is_empty() {
            return Ok(report);
        }
        let _op = self.ops.lock().await;
        let kenv = self.kube_env(&env, &vars).await.map_err(|e| {
            format!("{e}; the cluster's objects were left in place, run `devenv down` again once it is reachable")
        })?;
        // Workloads an earlier dev mode left replaced (the daemon was killed, or the
        // cluster was unreachable when it ended): put them back before deleting, so a
        // workload devenv did not create is left as it was.
        for rec in self.shared.state.devs(&self.shared.id).unwrap_or_default() {
            let w = crate::kube::devmode::workload_of(&rec.backup);
            crate::kube::devmode::restore(&kenv.client, &kenv.context, &w, Some(&rec.backup))
                .await
                .map_err(|e| {
                    format!(
                        "cannot restore {} after dev mode: {e}; nothing was deleted, run `devenv down` again",
                        rec.backup.display()
                    )
                })?;
            let _ = self.shared.state.remove_dev(&rec);
            report.restored.push(rec.backup.display());
        }
        // Helm releases first (their objects don't carry devenv's labels).
        for svc in kube_services.iter().filter(|s| s.chart.is_some()) {
            let bin = match crate::kube::helm::binary(&vars) {
                Ok(b) => b,
                // Without helm, down can still finish when there is no release to remove.
                Err(e) => match crate::kube::helm::has_release(
                    &kenv,
                    &crate::kube::helm::release(&svc.name),
                )
                .await
                {
                    Ok(false) => continue,
                    Ok(true) => return Err(e.to_string()),
                    Err(k) => return Err(k.to_string()),
                },
            };
            let mut args = vec![
                "uninstall".to_owned(),
                crate::kube::helm::release(&svc.name),
                "--namespace".to_owned(),
                kenv.namespace.clone(),
                "--ignore-not-found".to_owned(),
                "--wait".to_owned(),
            ];
            if let Some(ctx) = env.cluster.as_ref().and_then(crate::kube::context_name) {
                args.push("--kube-context".into());
                args.push(ctx);
            }
            crate::kube::helm::run(&bin, &args, &vars, &env.project_dir)
                .await
                .map_err(|e| e.to_string())?;
            report.deleted.push(format!("helm release {}", svc.name));
        }
        // Kinds named by manifests, so custom resources are found too.
        let mut extra = Vec::new();
        for svc in &kube_services {
            if let Some(dir) = &svc.manifests {
                if let Ok(docs) = crate::kube::manifests::load(dir, &env.project_dir) {
                    for d in docs {
                        if let Some(t) = crate::kube::apply::type_of(&d.object) {
                            if !extra.contains(&t) {
                                extra.push(t);
                            }
                        }
                    }
                }
            }
        }
        let r = crate::kube::teardown::teardown(&kenv, &self.kinds, &extra, volumes)
            .await
            .map_err(|e| {
                format!("{e}; run `devenv down` again to finish removing the cluster's objects")
            })?;
        report.deleted.extend(r.deleted);
        report.kept_volumes = r.kept_volumes;
        report.namespace_removed = r.namespace_removed.then(|| kenv.namespace.clone());
        if r.namespace_removed {
            // The next `up` creates it again.
            *self.kube.lock().await = None;
        }
        Ok(report)
    }

    /// Supervisors of services no longer in the config.
    async fn stop_orphans(&self) -> Vec<String> {
        let sups: Vec<(String, Supervisor)> = self
            .supervisors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        let mut names = Vec::new();
        for (name, sup) in sups {
            sup.stop().await;
            let _ = sup.task.await;
            names.push(name);
        }
        names
    }

    async fn stop_services(&self, env: &Environment, names: &[String]) -> Vec<String> {
        let dependents = graph::dependents(env);
        let mut tasks = JoinSet::new();
        let mut was_running = Vec::new();
        let stop_order = Arc::new(Mutex::new(Vec::new()));
        for name in names {
            let sup = self
                .supervisors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            let waits: Vec<watch::Receiver<ServiceStatus>> = dependents
                .get(name)
                .into_iter()
                .flatten()
                .filter(|d| names.contains(d))
                .filter_map(|d| self.shared.watch_of(d))
                .collect();
            let shared = self.shared.clone();
            let name = name.clone();
            if sup.as_ref().is_some_and(|s| !s.task.is_finished()) {
                was_running.push(name.clone());
            }
            let stop_order = stop_order.clone();
            tasks.spawn(async move {
                for mut w in waits {
                    let _ = w
                        .wait_for(|s| !s.state.is_active() && s.state != ServiceState::Pending)
                        .await;
                }
                match sup {
                    Some(sup) if !sup.task.is_finished() => {
                        sup.stop().await;
                        let _ = sup.task.await;
                        stop_order
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(name.clone());
                    }
                    _ => shared.update(&name, |s| {
                        if s.state != ServiceState::Stopped {
                            s.state = ServiceState::Stopped;
                            s.pid = None;
                            s.message = "stopped".into();
                        }
                    }),
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        let mut order = std::mem::take(&mut *stop_order.lock().unwrap_or_else(|p| p.into_inner()));
        // Services whose supervisor had already ended (failed, completed) come last.
        order.extend(
            was_running
                .into_iter()
                .filter(|n| !order.contains(n))
                .collect::<Vec<_>>(),
        );
        order
    }

    /// Restarts the named services (they must be configured) and waits until each
    /// is ready again, or failed.
    pub async fn restart(
        self: Arc<Self>,
        names: &[String],
        vars: Arc<BTreeMap<String, String>>,
    ) -> Result<(), String> {
        let _op = self.ops.lock().await;
        let env = self.config().ok_or("environment is not up")?;
        if let Some(unknown) = names.iter().find(|n| env.service(n).is_none()) {
            let known: Vec<&str> = env.services.iter().map(|s| s.name.as_str()).collect();
            return Err(format!(
                "unknown service `{unknown}`; services are: {}",
                known.join(", ")
            ));
        }
        let mut waits = Vec::new();
        for name in names {
            let Some(svc) = env.service(name).cloned() else {
                continue;
            };
            let before = self
                .shared
                .status_of(name)
                .map(|s| (s.restarts, s.pid, s.since));
            let limit = svc
                .readiness
                .as_ref()
                .map(|r| r.initial_delay + r.timeout)
                .unwrap_or(NO_PROBE_LIMIT);
            if let Some(rx) = self.shared.watch_of(name) {
                waits.push((svc.oneshot, before, rx, limit));
            }
            let live = {
                let sups = self.supervisors.lock().unwrap_or_else(|p| p.into_inner());
                sups.get(name)
                    .filter(|s| !s.task.is_finished())
                    .map(|s| s.ctl.clone())
            };
            match live {
                Some(ctl) => {
                    let _ = ctl.send(Ctl::Restart).await;
                }
                None => {
                    let sup = Supervisor::start(self.shared.clone(), svc, vars.clone());
                    self.supervisors
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.clone(), sup);
                }
            }
        }
        for (oneshot, before, mut rx, limit) in waits {
            let done = rx.wait_for(|s| {
                // Any state change since the request counts as movement: a restart
                // that fails before it has a pid still passes through `starting`.
                let moved = before.is_none_or(|(r, pid, since)| {
                    s.restarts > r || s.pid != pid || s.since != since
                });
                let ended = matches!(s.state, ServiceState::Failed | ServiceState::Stopped);
                moved && (ended || satisfied(oneshot, s.state))
            });
            tokio::select! {
                _ = tokio::time::timeout(limit, done) => {}
                _ = self.closing.cancelled() => break,
            }
        }
        Ok(())
    }
}

impl EnvRuntime {
    /// Starts the file watcher for the `watch` rules of local services in `names` or
    /// running already, replacing one that watches something else.
    async fn ensure_watcher(
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
            .filter(|s| s.runtime == RuntimeKind::Local)
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
struct WatchedServices(std::sync::Weak<EnvRuntime>);

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

    fn running(&self, service: &str) -> bool {
        self.ctl(service).is_some()
    }

    fn status(&self, service: &str) -> Option<ServiceStatus> {
        self.0.upgrade()?.shared.status_of(service)
    }
}

/// Whether a dependency in `state` lets its dependents start: a oneshot must have
/// finished, anything else must be ready.
fn satisfied(oneshot: bool, state: ServiceState) -> bool {
    match state {
        ServiceState::Completed => true,
        ServiceState::Ready => !oneshot,
        _ => false,
    }
}

#[derive(Debug)]
enum StartError {
    Failed(String),
    DependencyFailed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Running with the same config: leave it.
    Keep,
    Start,
    /// Running with an older config: stop it, start the new one.
    Replace,
    /// Its supervisor is idle after a failure: run it again.
    Retry,
}
