//! `up`: starts the requested services and their dependencies over the graph, each
//! as soon as its dependencies are ready, and reports progress as events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinSet;

use super::containerrun::ContainerRun;
use super::error::UnknownService;
use super::graph;
use super::hooks::{hook_name, is_hook, Site};
use super::kuberun::KubeRun;
use super::runtime::LiveEnv;
use super::supervisor::{Ctl, Supervisor};
use crate::config::{Environment, RuntimeKind, Service};
use crate::status::{ServiceState, ServiceStatus};

/// How long `up` waits for the file watcher to be set up before it reports.
const WATCH_SETUP_LIMIT: Duration = Duration::from_secs(10);

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

/// An `up` under way: its progress, and the environment it brings up (whose config
/// gives each service's URL to the events' readers).
#[derive(Debug)]
pub struct Started {
    pub events: mpsc::Receiver<UpEvent>,
    pub env: Arc<LiveEnv>,
}

#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    pub services: Vec<String>,
    pub keep_going: bool,
    /// `up --dev`: the services of this up that have a `dev` section run in dev mode.
    pub dev: bool,
    /// A `devenv dev` session: these services run in dev mode while it lasts.
    pub dev_session: Option<(u64, Vec<String>)>,
    /// Active profiles (`up --profile`); see [`crate::config::select_profiles`].
    pub profiles: Vec<String>,
    /// Leave the services the user stopped stopped (a recovery); an `up` a user asks
    /// for starts them (see hold.rs).
    pub keep_stopped: bool,
    /// `devenv start`: the environment's `preUp` and `postUp` do not run (they belong
    /// to bringing the environment up); the services' own hooks do.
    pub skip_env_hooks: bool,
    /// A ready terraform service is kept, not planned again (the `up` after `devenv
    /// tf apply`, which just read its outputs).
    pub keep_terraform: bool,
}

impl LiveEnv {
    /// Starts the requested services and their dependencies; each starts as soon as
    /// all its dependencies are ready. Progress goes to `events`.
    pub async fn up(
        self: Arc<Self>,
        env: Arc<Environment>,
        vars: Arc<BTreeMap<String, String>>,
        opts: UpOptions,
        up_id: Option<u64>,
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
        // External secrets are read now, on every `up` (a rotation is picked up here);
        // one that cannot be read starts nothing.
        let env = match self.resolve_secrets(&env, &vars).await {
            Ok(env) => env,
            Err(message) => {
                let _ = events
                    .send(UpEvent::Done {
                        ok: false,
                        failed: Vec::new(),
                        message: format!("{message}\nnothing was started"),
                    })
                    .await;
                return;
            }
        };
        let cancel = self.closing.child_token();
        *self.current_up.lock().unwrap_or_else(|p| p.into_inner()) = Some(cancel.clone());
        self.set_config(env.clone());
        let set = match graph::closure(&env, &opts.services) {
            Ok(s) => s,
            // `Engine::up` checked the names already; kept for other callers.
            Err(unknown) => {
                let message = UnknownService {
                    unknown: unknown.clone(),
                    known: env.services.iter().map(|s| s.name.clone()).collect(),
                }
                .to_string();
                let _ = events
                    .send(UpEvent::Done {
                        ok: false,
                        failed: unknown,
                        message,
                    })
                    .await;
                return;
            }
        };
        let set = self.settle_holds(&env, set, opts.keep_stopped);
        if let Err(e) = self.want_dev(&env, &set, &opts) {
            let _ = events
                .send(UpEvent::Done {
                    ok: false,
                    failed: Vec::new(),
                    message: e.to_string(),
                })
                .await;
            return;
        }
        // Forward status changes of the services in this request, and of hooks.
        let mut rx = self.shared.events.subscribe();
        let fwd_events = events.clone();
        let fwd_set = set.clone();
        let forwarder = tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(s) if fwd_set.contains(&s.name) || is_hook(&s) => {
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

        // `preUp`: before anything starts; a failure starts nothing.
        let no_hooks = Vec::new();
        let env_hooks = |hooks| {
            if opts.skip_env_hooks {
                &no_hooks
            } else {
                hooks
            }
        };
        let pre_up = self
            .env_hooks(&env, &vars, "preUp", env_hooks(&env.hooks.pre_up), &cancel)
            .await;
        if let Err(message) = pre_up {
            end_forwarder(forwarder).await;
            // Its final state for sure (with its last lines), whatever the forwarder
            // passed on.
            if let Some(s) = self.shared.status_of(&hook_name(None, "preUp")) {
                let _ = events.send(UpEvent::Service(s)).await;
            }
            let _ = events
                .send(UpEvent::Done {
                    ok: false,
                    failed: vec![hook_name(None, "preUp")],
                    message: format!("{message}\nnothing was started"),
                })
                .await;
            return;
        }
        if let Err(e) = self.refresh_policy(&env).await {
            end_forwarder(forwarder).await;
            let _ = events
                .send(UpEvent::Done {
                    ok: false,
                    failed: Vec::new(),
                    message: format!("{e}\nnothing was started"),
                })
                .await;
            return;
        }
        self.ensure_watcher(&env, &set, &vars).await;
        self.ensure_health().await;

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
            let mut plan = self.plan(&svc, opts.keep_terraform);
            // A running build's context may have changed while its config did not.
            if plan == Plan::Keep
                && svc.runtime == RuntimeKind::Container
                && super::containerrun::stale_build(&self.shared, &svc, &vars).await
            {
                plan = Plan::Replace;
                self.mark_pending(&svc);
            }
            if plan != Plan::Keep {
                started_now.push(name.clone());
            }
            let this = self.clone();
            let vars = vars.clone();
            let outcomes = outcomes.clone();
            let env = env.clone();
            tasks.spawn(async move {
                let res = this
                    .start_when_ready(&env, &svc, plan, vars, up_id, &outcomes)
                    .await;
                if let Some(tx) = outcomes.get(&svc.name) {
                    tx.send_replace(Some(res.is_ok()));
                }
                (svc.name.clone(), res)
            });
        }
        let mut failed = Vec::new();
        let mut reasons = Vec::new();
        let mut cancelled = false;
        loop {
            let joined = tokio::select! {
                j = tasks.join_next() => match j { Some(j) => j, None => break },
                _ = cancel.cancelled() => {
                    tasks.abort_all();
                    cancelled = true;
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

        // Ingresses of services the config no longer gives one (each runner applied
        // its own), after an `up` that brought everything up: a failed one says why
        // once, not again for the prune (a Role without rights fails both).
        if !cancelled && failed.is_empty() && reasons.is_empty() {
            match self.prune_ingresses(&env, &vars).await {
                Ok(deleted) if !deleted.is_empty() => {
                    tracing::info!(?deleted, "removed Ingresses no service wants");
                }
                Ok(_) => {}
                Err(message) => reasons.push(message),
            }
        }
        let mut ok = failed.is_empty() && reasons.is_empty();
        // Cancelled by `down` (or the daemon's shutdown, which downs everything): that
        // stops what this up started, in reverse dependency order, and reports it.
        if !ok && !opts.keep_going && !cancelled {
            // Nothing half-started stays behind: stop what this request started.
            let started: Vec<String> = started_now
                .iter()
                .filter(|n| !failed.contains(n))
                .cloned()
                .collect();
            self.stop_services(&env, &started, None).await;
        }
        // `postUp`: everything asked for is ready. Its failure fails the `up`; the
        // services stay up.
        if ok && !opts.skip_env_hooks && self.may_run_post(up_id, "postUp") {
            let post_up = self
                .env_hooks(&env, &vars, "postUp", &env.hooks.post_up, &cancel)
                .await;
            if let Err(message) = post_up {
                ok = false;
                failed.push(hook_name(None, "postUp"));
                reasons.push(message);
            }
        }
        end_forwarder(forwarder).await;
        for name in set
            .iter()
            .cloned()
            .chain(hooks_of(&env, &set, !opts.skip_env_hooks))
        {
            if let Some(s) = self.shared.status_of(&name) {
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
            if !opts.keep_going && !cancelled && !started_now.is_empty() {
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

    /// The config with its external secrets read (`crate::secrets::resolve`), or why
    /// not.
    pub(super) async fn resolve_secrets(
        &self,
        env: &Arc<Environment>,
        vars: &BTreeMap<String, String>,
    ) -> Result<Arc<Environment>, String> {
        if !env.services.iter().any(|s| !s.secrets.is_empty()) {
            return Ok(env.clone());
        }
        let key = crate::secrets::digest_key(self.shared.state.dir())
            .map_err(|e| format!("cannot keep the key of secret revisions: {e}"))?;
        crate::secrets::resolve(env, vars, &key)
            .await
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }

    /// Decides what `up` does with `svc`, and marks it pending unless kept.
    fn plan(&self, svc: &Service, keep_terraform: bool) -> Plan {
        let plan = {
            let sups = self.supervisors.lock().unwrap_or_else(|p| p.into_inner());
            let state = self.shared.status_of(&svc.name).map(|s| s.state);
            let running = sups.get(&svc.name).filter(|s| !s.task.is_finished());
            // A secret it uses changed (a rotation): restart it with the new values.
            let rotated = running.is_some_and(|s| {
                self.config()
                    .is_some_and(|env| env.secrets_revision(svc) != s.secrets_revision)
            });
            let running = running.map(|s| (&s.service, s.dev));
            match decide(svc, self.shared.dev_wanted(&svc.name), running, state) {
                Plan::Keep if rotated => Plan::Replace,
                Plan::Retry
                    if keep_terraform
                        && svc.runtime == RuntimeKind::Terraform
                        && state == Some(ServiceState::Ready) =>
                {
                    Plan::Keep
                }
                plan => plan,
            }
        };
        if plan != Plan::Keep {
            self.mark_pending(svc);
        }
        plan
    }

    fn mark_pending(&self, svc: &Service) {
        self.shared.update(&svc.name, |s| {
            s.state = ServiceState::Pending;
            s.message = "waiting for dependencies".into();
            s.last_lines.clear();
        });
    }

    /// Whether a `post*` hook of the `up` `up_id` may run (see `hooks.rs`): no
    /// record of it having started for this `up`. Recorded before it runs.
    fn may_run_post(&self, up_id: Option<u64>, hook: &str) -> bool {
        let Some(up_id) = up_id else {
            return true;
        };
        match self
            .shared
            .state
            .start_post_hook(&self.shared.id, up_id, hook)
        {
            Ok(true) => true,
            Ok(false) => {
                self.shared.logs.push(
                    &Arc::from(format!("hook/{hook}").as_str()),
                    crate::logs::Stream::System,
                    "not run again: it already started for this `up` before devenvd restarted",
                );
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, hook, "cannot record a post hook's run; running it anyway");
                true
            }
        }
    }

    async fn start_when_ready(
        self: &Arc<Self>,
        env: &Arc<Environment>,
        svc: &Service,
        plan: Plan,
        vars: Arc<BTreeMap<String, String>>,
        up_id: Option<u64>,
        outcomes: &HashMap<String, watch::Sender<Option<bool>>>,
    ) -> Result<(), StartError> {
        // A running service that uses terraform outputs: once the terraform services
        // of this `up` ran, a changed value it uses replaces it (and only it).
        let plan = if plan == Plan::Keep {
            self.outputs_changed(svc, outcomes).await
        } else {
            plan
        };
        // A running service with an unchanged config is left alone, whatever its
        // dependencies go through.
        let deps = if plan == Plan::Keep {
            &[][..]
        } else {
            &svc.dependencies[..]
        };
        for dep in deps {
            let Some(ok) = dependency_outcome(outcomes, dep).await else {
                continue;
            };
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
        let up_runs_hooks = up_runs_hooks(plan);
        if up_runs_hooks && !svc.hooks.pre_start.is_empty() {
            self.shared.update(&svc.name, |s| {
                s.state = ServiceState::Starting;
                s.message = "running its preStart hook".into();
            });
            let site = Site {
                env,
                vars: &vars,
                service: Some(svc),
                point: "preStart",
            };
            if let Err(f) = self.run_hooks(site, &svc.hooks.pre_start).await {
                let msg = format!("preStart hook failed: {}", f.reason);
                self.shared.update(&svc.name, |s| {
                    s.state = ServiceState::Failed;
                    s.message = msg.clone();
                    s.last_lines = f.last_lines.clone();
                });
                return Err(StartError::Failed(msg));
            }
        }
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
                    if svc.runtime == RuntimeKind::Terraform {
                        // Not ready until this `up`'s plan has run (its node is idle
                        // until told, so nothing overwrites this first).
                        self.shared.update(&svc.name, |s| {
                            s.state = ServiceState::Starting;
                            s.message = "terraform plan".into();
                        });
                    }
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
                // `${tf.SERVICE.OUTPUT}`: its terraform dependencies are ready now.
                let run_svc = match super::tfrun::substitute(&self.shared, svc) {
                    Ok(s) => s,
                    Err(msg) => {
                        self.shared.update(&svc.name, |s| {
                            s.state = ServiceState::Failed;
                            s.message = msg.clone();
                        });
                        return Err(StartError::Failed(msg));
                    }
                };
                let svc_ref = svc;
                let svc = &run_svc;
                // Its restarts' hooks; those of this first start are this `up`'s.
                let hooks = self.runner_hooks(env, svc, &vars, false);
                let mut sup = match kube {
                    Some((env, kenv)) => KubeRun::start(
                        self.shared.clone(),
                        svc.clone(),
                        env,
                        kenv,
                        self.kinds.clone(),
                        vars.clone(),
                        self.shared.dev_wanted(&svc.name),
                        hooks,
                    ),
                    None if svc.runtime == RuntimeKind::Container => {
                        let Some(env) = self.config() else {
                            return Err(StartError::Failed("environment has no config".into()));
                        };
                        ContainerRun::start(
                            self.shared.clone(),
                            svc.clone(),
                            env,
                            vars.clone(),
                            hooks,
                        )
                    }
                    None if svc.runtime == RuntimeKind::Plugin => {
                        let mut env_vars = env.secret_vars(svc);
                        env_vars.extend(svc.env.clone());
                        match super::pluginrun::start(
                            self.shared.clone(),
                            svc,
                            vars.clone(),
                            env_vars,
                        ) {
                            Some(sup) => sup,
                            None => {
                                return Err(StartError::Failed(
                                    "plugin service without a plugin".into(),
                                ))
                            }
                        }
                    }
                    None if svc.runtime == RuntimeKind::Terraform => {
                        match super::tfrun::Tf::new(
                            self.shared.clone(),
                            svc,
                            &vars,
                            env.secret_vars(svc),
                        ) {
                            Some(tf) => super::tfrun::start(tf),
                            None => {
                                return Err(StartError::Failed(
                                    "terraform service without `terraform`".into(),
                                ))
                            }
                        }
                    }
                    None => Supervisor::start(
                        self.shared.clone(),
                        svc.clone(),
                        vars.clone(),
                        env.secret_vars(svc),
                        hooks,
                        crate::volumes::mounted(env, svc),
                    ),
                };
                // What it was configured with (not the outputs put in), to compare
                // with the next `up`'s config.
                sup.service = svc_ref.clone();
                sup.secrets_revision = env.secrets_revision(svc);
                sup.tf_values = super::tfrun::values_digest(&self.shared, svc_ref);
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
        let limit = svc.start_deadline() + Duration::from_secs(1);
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
        if !satisfied(svc.oneshot, st.state) {
            return Err(StartError::Failed(st.message));
        }
        let post_ready = format!("{}.postReady", svc.name);
        if up_runs_hooks
            && !svc.hooks.post_ready.is_empty()
            && self.may_run_post(up_id, &post_ready)
        {
            let site = Site {
                env,
                vars: &vars,
                service: Some(svc),
                point: "postReady",
            };
            if let Err(f) = self.run_hooks(site, &svc.hooks.post_ready).await {
                // With `onError: fail` the service failed: it does not stay up.
                let sup = self
                    .supervisors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&svc.name);
                if let Some(sup) = sup {
                    sup.stop().await;
                    let _ = sup.task.await;
                }
                let msg = format!("postReady hook failed: {}", f.reason);
                self.shared.update(&svc.name, |s| {
                    s.state = ServiceState::Failed;
                    s.message = msg.clone();
                    s.last_lines = f.last_lines.clone();
                });
                return Err(StartError::Failed(msg));
            }
        }
        Ok(())
    }
}

impl LiveEnv {
    /// [`Plan::Replace`] when `svc` runs with terraform outputs whose values changed
    /// since it started (its terraform dependencies in this `up` ran successfully
    /// first), else [`Plan::Keep`].
    async fn outputs_changed(
        &self,
        svc: &Service,
        outcomes: &HashMap<String, watch::Sender<Option<bool>>>,
    ) -> Plan {
        let tf_deps = super::tfrun::referenced_services(svc);
        if tf_deps.is_empty() {
            return Plan::Keep;
        }
        for dep in &tf_deps {
            let Some(ok) = dependency_outcome(outcomes, dep).await else {
                continue;
            };
            if !ok {
                // No new values: it keeps running with the ones it has.
                return Plan::Keep;
            }
        }
        let now = super::tfrun::values_digest(&self.shared, svc);
        let changed = self
            .supervisors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&svc.name)
            .is_some_and(|s| s.tf_values != now);
        if !changed {
            return Plan::Keep;
        }
        self.shared.logs.push(
            &Arc::from(svc.name.as_str()),
            crate::logs::Stream::System,
            &format!(
                "a terraform output it uses changed ({}): restarting it",
                tf_deps.join(", ")
            ),
        );
        self.mark_pending(svc);
        Plan::Replace
    }
}

/// The board names of the hooks an `up` of `set` runs.
fn hooks_of<'a>(
    env: &'a Environment,
    set: &'a [String],
    with_env_hooks: bool,
) -> impl Iterator<Item = String> + 'a {
    let env_hooks = [("preUp", &env.hooks.pre_up), ("postUp", &env.hooks.post_up)]
        .into_iter()
        .filter(move |(_, h)| with_env_hooks && !h.is_empty())
        .map(|(point, _)| hook_name(None, point));
    let service_hooks = set.iter().filter_map(|n| env.service(n)).flat_map(|s| {
        [
            ("preStart", &s.hooks.pre_start),
            ("postReady", &s.hooks.post_ready),
        ]
        .into_iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(point, _)| hook_name(Some(&s.name), point))
    });
    env_hooks.chain(service_hooks)
}

/// Lets the forwarder pass on what is already queued, then ends it.
async fn end_forwarder(forwarder: tokio::task::JoinHandle<()>) {
    tokio::task::yield_now().await;
    forwarder.abort();
    let _ = forwarder.await;
}

/// Whether `up` runs a service's `preStart` and `postReady` itself for `plan`: on a
/// start (or replacement), yes; a kept service, no; a retry is a restart of the
/// runner, which runs its restarts' hooks itself (`supervisor::ServiceHooks`).
fn up_runs_hooks(plan: Plan) -> bool {
    matches!(plan, Plan::Start | Plan::Replace)
}

/// Whether a dependency in `state` lets its dependents start: a oneshot must have
/// finished, anything else must be ready.
pub(super) fn satisfied(oneshot: bool, state: ServiceState) -> bool {
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

/// What `up` does with `svc` (wanted in dev mode or not), given the config and mode
/// of the live supervisor or runner, if any, and the service's state on the board.
fn decide(
    svc: &Service,
    dev_wanted: bool,
    running: Option<(&Service, bool)>,
    state: Option<ServiceState>,
) -> Plan {
    match running {
        None => Plan::Start,
        Some((config, dev)) if config != svc || dev != dev_wanted => Plan::Replace,
        Some(_) if state == Some(ServiceState::Failed) => Plan::Retry,
        // Terraform plans on every `up` (the world may have drifted from its state).
        Some(_) if svc.runtime == RuntimeKind::Terraform => Plan::Retry,
        Some(_) => Plan::Keep,
    }
}

/// Waits until `dep`'s start in this `up` has an outcome: `Some(true)` when it came up,
/// `Some(false)` when it failed (or the `up` ended first), `None` when it is not part
/// of this `up`.
async fn dependency_outcome(
    outcomes: &HashMap<String, watch::Sender<Option<bool>>>,
    dep: &str,
) -> Option<bool> {
    let mut rx = outcomes.get(dep)?.subscribe();
    Some(
        rx.wait_for(Option::is_some)
            .await
            .map(|o| *o == Some(true))
            .unwrap_or(false),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_keeps_starts_replaces_and_retries() {
        let env = crate::engine::testing::env(
            "    - name: api\n      command: run\n    - name: web\n      command: serve\n",
        );
        let (api, web) = (&env.services[0], &env.services[1]);
        let ready = Some(ServiceState::Ready);
        assert_eq!(decide(api, false, None, None), Plan::Start);
        assert_eq!(
            decide(api, false, None, ready),
            Plan::Start,
            "its task ended"
        );
        assert_eq!(decide(api, false, Some((api, false)), ready), Plan::Keep);
        let mut changed = api.clone();
        changed.env.insert("X".into(), "1".into());
        assert_eq!(
            decide(&changed, false, Some((api, false)), ready),
            Plan::Replace,
            "the config changed"
        );
        assert_eq!(decide(web, false, Some((api, false)), ready), Plan::Replace);
        assert_eq!(
            decide(api, true, Some((api, false)), ready),
            Plan::Replace,
            "wanted in dev mode now"
        );
        assert_eq!(
            decide(api, false, Some((api, false)), Some(ServiceState::Failed)),
            Plan::Retry
        );
        assert_eq!(
            decide(
                &changed,
                false,
                Some((api, false)),
                Some(ServiceState::Failed)
            ),
            Plan::Replace,
            "a failed service with a new config starts over"
        );
    }
}
