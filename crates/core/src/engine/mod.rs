//! The engine: environments the daemon runs, keyed by project directory and
//! environment name. A cheap shared handle; each environment's services are owned
//! by their supervisors. The rooms (board, runtime, up, down, dev, kube runner) are
//! mapped in docs/architecture.md.

mod board;
mod client_vars;
mod cluster;
mod containerrun;
pub mod dev;
mod down;
mod error;
mod exec;
mod graph;
mod health;
mod hold;
pub mod hooks;
mod ingress;
mod kuberun;
mod pluginrun;
mod portcheck;
mod recovery;
mod routes;
mod runtime;
mod scale;
pub mod snapshot;
mod snapshot_engine;
mod snapshot_pvc;
mod supervisor;
#[cfg(test)]
mod testing;
pub mod tfcmd;
mod tfrun;
mod up;
mod workspace;

pub use cluster::{ClusterError, ClusterInfo, ClusterReport};
pub use dev::DevSession;
pub use down::DownReport;
pub use error::{DeployError, DevError, DownError, EngineError, ScaleError, UnknownService};
pub use exec::{ExecError, ExecInput, ExecOutput, ExecSession, ExecSpec, TermSize, STDIN_MAX};
pub use hold::STOPPED_BY_USER;
pub use recovery::RECOVERED;
pub use routes::{local_port, Route};
pub use runtime::LiveEnv;
pub use up::{Started, UpEvent, UpOptions};
pub use workspace::{
    Signal as WorkspaceSignal, WorkspaceError, WorkspaceForward, WorkspaceInfo, WorkspaceState,
    WorkspaceSync,
};

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::{self, ConfigErrors, LoadRequest, Loaded};
use crate::logs::{LogHub, SegmentLimits};
use crate::process::{self, Guardian, Spawner};
use crate::scratch::Scratch;
use crate::state::{KnownEnv, StateError, StateStore};
use crate::status::ServiceState;

#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub state_dir: PathBuf,
    /// The devenvd binary, run as `__guardian`.
    pub guardian_exe: PathBuf,
    /// Service logs on disk, a directory per environment.
    pub log_dir: PathBuf,
    /// Private temp files (helm values, image tarballs): a 0700 directory the caller
    /// has made; swept on start.
    pub tmp_dir: PathBuf,
}

/// What a client asks about: where to find the project, and its environment.
#[derive(Debug, Clone, Default)]
pub struct ProjectRef {
    pub start_dir: PathBuf,
    pub config_file: Option<PathBuf>,
    pub env_name: Option<String>,
    /// The client's process environment.
    pub vars: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct EnvSummary {
    pub name: String,
    pub project_dir: PathBuf,
    pub env_name: Option<String>,
    pub services: usize,
    pub ready: usize,
    pub running: bool,
    /// The loaded config's `metadata.version`.
    pub version: Option<String>,
}

type ResolveKey = (PathBuf, Option<PathBuf>, Option<String>);

#[derive(Debug)]
pub struct Engine {
    state: StateStore,
    spawner: Arc<Spawner>,
    guardian: Arc<Guardian>,
    instance: String,
    log_dir: PathBuf,
    scratch: Scratch,
    envs: Mutex<HashMap<String, Arc<LiveEnv>>>,
    /// Where a request's start dir led last time, for when its config has since broken.
    resolved: Mutex<HashMap<ResolveKey, String>>,
    /// The last shell's variables per environment, for requests from the page.
    clients: client_vars::ClientContexts,
    /// Every task the engine spawns (ups, dev sessions, restores); joined on shutdown.
    tasks: TaskTracker,
    /// Cancelled when shutdown starts: background work gives way.
    closing: CancellationToken,
    flusher: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// One cluster create/delete at a time: two k3d runs on one cluster name race.
    cluster_ops: tokio::sync::Mutex<()>,
    /// What this daemon has seen of workspaces' use (idle stop).
    workspaces: workspace::Book,
}

impl Engine {
    /// Opens state, starts the spawner and guardian, and reconciles what an earlier
    /// daemon left: processes it started are killed, their services reported stopped,
    /// then environments that were up (and not taken down) are brought back up in the
    /// background (see `recovery`).
    pub fn start(opts: EngineOptions) -> Result<Arc<Self>, EngineError> {
        let state = StateStore::open(&opts.state_dir)?;
        // After the state store's lock: no other daemon uses this data dir now.
        let (scratch, swept) = Scratch::open_and_sweep(opts.tmp_dir.clone()).map_err(|source| {
            EngineError::Scratch {
                path: opts.tmp_dir.clone(),
                source,
            }
        })?;
        if swept > 0 {
            tracing::info!(swept, dir = %opts.tmp_dir.display(), "removed temp files left by an earlier devenvd");
        }
        let spawner = Arc::new(Spawner::start().map_err(EngineError::Guardian)?);
        let guardian =
            Arc::new(Guardian::start(&opts.guardian_exe).map_err(EngineError::Guardian)?);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let instance = format!("{}-{nanos:x}", std::process::id());
        let engine = Self {
            state,
            spawner,
            guardian,
            instance,
            log_dir: opts.log_dir,
            scratch,
            envs: Mutex::default(),
            resolved: Mutex::default(),
            clients: Default::default(),
            tasks: TaskTracker::new(),
            closing: CancellationToken::new(),
            flusher: Mutex::default(),
            cluster_ops: tokio::sync::Mutex::new(()),
            workspaces: Default::default(),
        };
        engine.recover()?;
        engine.restore_dev_workloads();
        let flusher = tokio::spawn(engine.state.clone().run_flusher());
        *engine.flusher.lock().unwrap_or_else(|p| p.into_inner()) = Some(flusher);
        let engine = Arc::new(engine);
        engine.resume_wanted();
        Ok(engine)
    }

    fn recover(&self) -> Result<(), StateError> {
        let records = self.state.envs()?;
        // One pass over /proc: anything carrying a marker of one of our environments
        // from another daemon instance is left over (the state may not have recorded
        // a service spawned just before a crash, so markers are matched by env).
        let ours: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        // An unreadable record must not keep the daemon from starting.
        let wanted_records = self.state.wanted().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read which environments were up");
            Vec::new()
        });
        let wanted: Vec<String> = wanted_records.iter().map(|w| w.env_id.clone()).collect();
        let killed = process::kill_stale_markers(&self.instance, &ours);
        if killed > 0 {
            tracing::warn!(killed, "killed processes left by an earlier devenvd");
        }
        for rec in records {
            let rt = self.new_runtime(
                &rec.id,
                &rec.name,
                rec.project_dir.clone(),
                rec.env_name.clone(),
            );
            let mut statuses = Vec::new();
            for mut svc in self.state.services(&rec.id)? {
                if svc.status.state.is_active() || svc.status.state == ServiceState::Pending {
                    svc.status.message = if wanted.contains(&rec.id) {
                        // Brought back up right after this (recovery.rs).
                        format!(
                            "stopped: devenvd restarted (was {:?}); bringing it back up",
                            svc.status.state
                        )
                    } else if svc.status.runtime == "kubernetes" {
                        // Its objects are still in the cluster; only the watch ended.
                        format!(
                            "stopped: devenvd restarted (was {:?}); its workload is still in the cluster, `devenv up` re-attaches",
                            svc.status.state
                        )
                    } else {
                        format!("stopped: devenvd restarted (was {:?})", svc.status.state)
                    }
                    .to_lowercase();
                    svc.status.state = ServiceState::Stopped;
                    svc.status.pid = None;
                    // Its dev mode ended with the daemon; the workload is restored below.
                    svc.status.dev = false;
                }
                self.state.put_service(&rec.id, &svc)?;
                statuses.push(svc.status);
            }
            rt.restore(statuses);
            if let Some(w) = wanted_records.iter().find(|w| w.env_id == rec.id) {
                // What the user stopped and scaled stays so (hold.rs, scale.rs).
                rt.restore_user_choices(&w.stopped, &w.replicas);
            }
            rt.registered
                .store(true, std::sync::atomic::Ordering::Relaxed);
            self.envs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(rec.id.clone(), Arc::new(rt));
        }
        self.state.flush()
    }

    fn new_runtime(
        &self,
        id: &str,
        name: &str,
        project_dir: PathBuf,
        env_name: Option<String>,
    ) -> LiveEnv {
        let logs = LogHub::open(&self.log_dir, id, SegmentLimits::default()).unwrap_or_else(|e| {
            tracing::warn!(environment = %id, error = %e, "keeping logs in memory only");
            LogHub::new()
        });
        self.runtime_with(id, name, project_dir, env_name, logs)
    }

    fn runtime_with(
        &self,
        id: &str,
        name: &str,
        project_dir: PathBuf,
        env_name: Option<String>,
        logs: LogHub,
    ) -> LiveEnv {
        LiveEnv::new(
            id.to_string(),
            name.to_string(),
            project_dir,
            env_name,
            self.spawner.clone(),
            self.guardian.clone(),
            self.state.clone(),
            self.instance.clone(),
            logs,
            self.scratch.clone(),
        )
    }

    /// The state store, for records that belong to no environment (clusters).
    /// The process guardian, as `devenv daemon status` shows it.
    pub fn guardian(&self) -> process::GuardianInfo {
        self.guardian.info()
    }

    pub fn state(&self) -> &StateStore {
        &self.state
    }

    /// Loads and checks the config a request points at.
    ///
    /// Reading and parsing is blocking work on input the daemon does not control, so it
    /// runs off the async workers: every RPC that loads a config comes through here, and
    /// `block_in_place` hands this worker's other tasks to a fresh thread for the
    /// duration (the effect of `spawn_blocking`, for callers that are not async), so a
    /// slow parse never stalls the other RPCs. Size and expansion are bounded by
    /// [`config::limits`].
    pub fn load(&self, req: &ProjectRef) -> Result<Loaded, ConfigErrors> {
        let user_config = req
            .vars
            .get("HOME")
            .map(|h| PathBuf::from(h).join(".devenv/config.yml"));
        let load = || {
            config::load(&LoadRequest {
                start_dir: req.start_dir.clone(),
                config_file: req.config_file.clone(),
                env_name: req.env_name.clone(),
                vars: req.vars.clone(),
                user_config,
            })
        };
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_thread {
            tokio::task::block_in_place(load)
        } else {
            // A current-thread runtime (unit tests) cannot hand its tasks off.
            load()
        }
    }

    fn env_id(loaded: &Loaded, env_name: &Option<String>) -> String {
        format!(
            "{}#{}",
            loaded.environment.project_dir.display(),
            env_name.as_deref().unwrap_or("")
        )
    }

    /// The runtime for a loaded config, registered (and persisted) if new.
    fn register(&self, loaded: &Loaded, req: &ProjectRef) -> Result<Arc<LiveEnv>, StateError> {
        let id = Self::env_id(loaded, &req.env_name);
        let env = &loaded.environment;
        self.state.put_env(&KnownEnv {
            id: id.clone(),
            name: env.name.clone(),
            project_dir: env.project_dir.clone(),
            env_name: req.env_name.clone(),
            config_file: loaded.config_file.clone(),
            services: env.services.iter().map(|s| s.name.clone()).collect(),
        })?;
        self.remember(req, &id);
        self.clients.remember(&env.project_dir, req);
        let rt = self
            .envs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.clone())
            .or_insert_with(|| {
                Arc::new(self.new_runtime(
                    &id,
                    &env.name,
                    env.project_dir.clone(),
                    req.env_name.clone(),
                ))
            })
            .clone();
        rt.set_config(Arc::new(env.clone()));
        rt.registered
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(rt)
    }

    fn remember(&self, req: &ProjectRef, id: &str) {
        let key = (
            req.start_dir.clone(),
            req.config_file.clone(),
            req.env_name.clone(),
        );
        self.resolved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, id.to_string());
    }

    /// The environment a request refers to, for reading (status, logs, watch).
    /// Known environments are found even when their config has since broken;
    /// unknown ones get a transient runtime with every service stopped.
    pub fn find_or_register(&self, req: &ProjectRef) -> Result<Arc<LiveEnv>, EngineError> {
        match self.load(req) {
            Ok(loaded) => {
                let id = Self::env_id(&loaded, &req.env_name);
                if let Some(rt) = self
                    .envs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&id)
                    .cloned()
                {
                    if rt.config().is_none() {
                        rt.set_config(Arc::new(loaded.environment));
                    }
                    return Ok(rt);
                }
                // Not started yet: kept (not persisted) so that a `logs -f` or a
                // Watch opened now sees the `up` that comes later.
                let env = &loaded.environment;
                let rt = Arc::new(self.new_runtime(
                    &id,
                    &env.name,
                    env.project_dir.clone(),
                    req.env_name.clone(),
                ));
                rt.set_config(Arc::new(loaded.environment));
                let rt = self
                    .envs
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .entry(id)
                    .or_insert(rt)
                    .clone();
                Ok(rt)
            }
            Err(errors) => {
                let key = (
                    req.start_dir.clone(),
                    req.config_file.clone(),
                    req.env_name.clone(),
                );
                let id = self
                    .resolved
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&key)
                    .cloned();
                id.and_then(|id| {
                    self.envs
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get(&id)
                        .cloned()
                })
                .ok_or(EngineError::Config(errors))
            }
        }
    }

    /// The logs of the environment `req` refers to, for reading `services` (all when
    /// empty); naming a service the config does not have is an error.
    pub fn logs(&self, req: &ProjectRef, services: &[String]) -> Result<LogHub, EngineError> {
        let rt = self.find_or_register(req)?;
        if let Some(cfg) = rt.config() {
            // A hook's output is read by its board name (`hook/preUp`) too.
            let services: Vec<String> = services
                .iter()
                .filter(|s| !s.starts_with("hook/"))
                .cloned()
                .collect();
            UnknownService::check(&cfg, &services)?;
        }
        Ok(rt.shared.logs.clone())
    }

    /// Starts services; progress arrives on the returned channel, ending with
    /// [`UpEvent::Done`]. Invalid config: an error, and nothing starts.
    pub fn up(&self, req: ProjectRef, opts: UpOptions) -> Result<Started, EngineError> {
        let loaded = self.load(&req)?;
        UnknownService::check(&loaded.environment, &opts.services)?;
        let services = config::select_profiles(&loaded, &opts.services, &opts.profiles)?;
        let opts = UpOptions { services, ..opts };
        let rt = self.register(&loaded, &req)?;
        let mut up_id = None;
        if opts.dev_session.is_none() {
            // Wanted up until `down`, across daemon restarts.
            up_id =
                Some(self.want_up(&rt.shared.id, &req, &loaded.referenced_vars, &opts.services)?);
        }
        let (tx, rx) = mpsc::channel(256);
        let env = Arc::new(loaded.environment);
        let vars = Arc::new(req.vars);
        // In the caller's span (the RPC's, naming the environment and services).
        self.tasks.spawn(
            rt.clone()
                .up(env, vars, opts, up_id, tx)
                .instrument(tracing::Span::current()),
        );
        Ok(Started {
            events: rx,
            env: rt,
        })
    }

    /// Stops everything of the environment. Works on a known environment even when
    /// its config has since broken.
    pub async fn down(&self, req: &ProjectRef, volumes: bool) -> Result<DownReport, EngineError> {
        let rt = match self.load(req) {
            Ok(loaded) => self.register(&loaded, req)?,
            Err(e) => self
                .find_or_register(req)
                .map_err(|_| EngineError::Config(e))?,
        };
        // First: a crash during the down must not bring the environment back.
        self.state.remove_wanted(&rt.shared.id)?;
        self.tasks
            .track_future(rt.down_all(volumes, Arc::new(req.vars.clone())))
            .await
            .map_err(EngineError::from)
    }

    pub async fn restart(
        &self,
        req: &ProjectRef,
        services: &[String],
    ) -> Result<Arc<LiveEnv>, EngineError> {
        let loaded = self.load(req)?;
        let rt = self.register(&loaded, req)?;
        rt.clone()
            .restart(services, Arc::new(req.vars.clone()))
            .await?;
        Ok(rt)
    }

    /// Every environment `list` shows, for readers of their services' states
    /// (the dashboard's /readyz).
    pub fn environments(&self) -> Vec<Arc<LiveEnv>> {
        let envs = self.envs.lock().unwrap_or_else(|p| p.into_inner());
        envs.values()
            .filter(|rt| rt.registered.load(std::sync::atomic::Ordering::Relaxed))
            .cloned()
            .collect()
    }

    pub fn list(&self) -> Vec<EnvSummary> {
        let envs = self.envs.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<EnvSummary> = envs
            .values()
            .filter(|rt| rt.registered.load(std::sync::atomic::Ordering::Relaxed))
            .map(|rt| {
                let st: Vec<_> = rt
                    .statuses()
                    .into_iter()
                    .filter(|s| !hooks::is_hook(s))
                    .collect();
                EnvSummary {
                    name: rt.shared.name.clone(),
                    project_dir: rt.project_dir.clone(),
                    env_name: rt.env_name.clone(),
                    services: st.len(),
                    ready: st.iter().filter(|s| s.state.satisfies_dependents()).count(),
                    running: st.iter().any(|s| s.state.is_active()),
                    version: rt.config().and_then(|c| c.version.clone()),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.name, &a.project_dir).cmp(&(&b.name, &b.project_dir)));
        out
    }

    /// Stops every environment (in parallel, each in reverse dependency order)
    /// within `deadline`, then flushes state and dismisses the guardian. What is
    /// still running after the deadline is left to the guardian, which kills it
    /// when this process exits.
    pub async fn shutdown(&self, deadline: Duration) {
        let envs: Vec<Arc<LiveEnv>> = self
            .envs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        self.closing.cancel();
        for rt in &envs {
            rt.close();
        }
        let all = futures::future::join_all(envs.into_iter().map(|rt| rt.down(None)));
        let clean = tokio::time::timeout(deadline, all).await.is_ok();
        self.tasks.close();
        // Ups still waiting on readiness end with the process; the final flush below
        // makes the state durable.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.tasks.wait()).await;
        for rt in self.envs.lock().unwrap_or_else(|p| p.into_inner()).values() {
            rt.shared.logs.flush();
        }
        let flusher = self
            .flusher
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(f) = flusher {
            f.abort();
            let _ = f.await;
        }
        if let Err(e) = self.state.flush() {
            tracing::error!(error = %e, "flushing state on shutdown");
        }
        if clean {
            self.guardian.dismiss();
        } else {
            tracing::warn!(
                "services did not stop within {deadline:?}; the guardian will kill them"
            );
        }
    }
}
