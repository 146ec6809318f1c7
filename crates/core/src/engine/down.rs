//! `down` and `restart`: stops services in reverse dependency order, removes what
//! devenv created in the cluster, and restarts services in place.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::board::lock;
use super::error::{DownError, EngineError, UnknownService};
use super::graph;
use super::hooks::Site;
use super::runtime::LiveEnv;
use super::supervisor::{Ctl, Supervisor};
use super::up::satisfied;
use crate::config::{Environment, RuntimeKind, Service};
use crate::status::ServiceState;

/// What `devenv down` did.
#[derive(Debug, Clone, Default)]
pub struct DownReport {
    /// Services that were running and were stopped, in stop order.
    pub stopped: Vec<String>,
    /// Cluster objects deleted (`Kind/name`), and containers, networks and volumes
    /// removed from the local engine (`container/name`, ...).
    pub deleted: Vec<String>,
    /// Persistent volume claims kept (no `--volumes`).
    pub kept_volumes: Vec<String>,
    /// The namespace removed, when devenv had created it.
    pub namespace_removed: Option<String>,
    /// Workloads put back from an earlier dev mode (`kind/name`).
    pub restored: Vec<String>,
    /// Services whose local preset data `--volumes` removed.
    pub removed_data: Vec<String>,
}

impl LiveEnv {
    /// Ends any `up` in progress; the daemon is going away.
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// Stops every service (ending an `up` in progress and the file watcher first),
    /// and the supervisors of services no longer configured. Returns the names that
    /// were running, in stop order. The cluster's objects stay: see [`Self::down_all`].
    /// `hook_vars`: run the services' `preStop` hooks with these client variables
    /// (`devenv down`; not the daemon's shutdown, after which recovery brings the
    /// environment back).
    pub async fn down(
        self: Arc<Self>,
        hook_vars: Option<Arc<BTreeMap<String, String>>>,
    ) -> Vec<String> {
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
        if let Some(h) = self.health.lock().await.take() {
            h.stop().await;
        }
        let Some(env) = self.config() else {
            return self.stop_orphans().await;
        };
        let all: Vec<String> = env.services.iter().map(|s| s.name.clone()).collect();
        let mut stopped = self.stop_services(&env, &all, hook_vars).await;
        stopped.extend(self.stop_orphans().await);
        stopped
    }

    /// `devenv down`: runs `preDown` (its failure stops nothing), stops every
    /// service, deletes what devenv created in the cluster (when the environment has
    /// kubernetes services), then runs `postDown`. An unreachable cluster is an error
    /// after the local part is done; a later `down` retries the cluster.
    pub async fn down_all(
        self: Arc<Self>,
        volumes: bool,
        vars: Arc<BTreeMap<String, String>>,
    ) -> Result<DownReport, DownError> {
        let env = self.config();
        if let Some(env) = &env {
            let site = Site {
                env,
                vars: &vars,
                service: None,
                point: "preDown",
            };
            self.run_hooks(site, &env.hooks.pre_down)
                .await
                .map_err(DownError::Hook)?;
        }
        let report = self.clone().take_down(volumes, vars.clone()).await?;
        if let Some(env) = &env {
            let site = Site {
                env,
                vars: &vars,
                service: None,
                point: "postDown",
            };
            self.run_hooks(site, &env.hooks.post_down)
                .await
                .map_err(DownError::Hook)?;
        }
        Ok(report)
    }

    async fn take_down(
        self: Arc<Self>,
        volumes: bool,
        vars: Arc<BTreeMap<String, String>>,
    ) -> Result<DownReport, DownError> {
        let stopped = self.clone().down(Some(vars.clone())).await;
        // The next `up` starts everything, at the config's replicas.
        self.forget_user_choices();
        let mut report = DownReport {
            stopped,
            ..Default::default()
        };
        // Local presets' data, the local twin of their volume claims.
        let env_dir = self.shared.state.env_dir(&self.shared.id);
        if volumes {
            report.removed_data =
                crate::presets::remove_data(&env_dir)
                    .await
                    .map_err(|source| DownError::PresetData {
                        dir: env_dir.clone(),
                        source,
                    })?;
        } else {
            report.kept_volumes.extend(
                crate::presets::kept_data(&env_dir)
                    .into_iter()
                    .map(|s| format!("{s} (local data)")),
            );
        }
        // Local services' volumes: the transient ones always, the persistent ones with
        // `--volumes`.
        let local_volumes = |source| DownError::LocalVolumes {
            dir: env_dir.clone(),
            source,
        };
        crate::volumes::remove_transient(&env_dir)
            .await
            .map_err(local_volumes)?;
        if volumes {
            let removed = crate::volumes::remove_persistent(&env_dir)
                .await
                .map_err(local_volumes)?;
            report
                .removed_data
                .extend(removed.into_iter().map(|v| format!("volume {v}")));
        } else {
            report.kept_volumes.extend(
                crate::volumes::kept(&env_dir)
                    .into_iter()
                    .map(|v| format!("{v} (local volume)")),
            );
        }
        let Some(env) = self.config() else {
            return Ok(report);
        };
        self.terraform_down(&env, volumes, &vars, &mut report)
            .await?;
        if env
            .services
            .iter()
            .any(|s| s.runtime == RuntimeKind::Container)
        {
            let docker = crate::docker::connect(&vars)
                .await
                .map_err(DownError::Containers)?;
            let t = crate::docker::teardown(&docker, &self.shared.id, volumes)
                .await
                .map_err(DownError::Containers)?;
            report
                .deleted
                .extend(t.containers.into_iter().map(|c| format!("container/{c}")));
            report
                .deleted
                .extend(t.networks.into_iter().map(|n| format!("network/{n}")));
            report
                .deleted
                .extend(t.volumes.into_iter().map(|v| format!("volume/{v}")));
            report
                .kept_volumes
                .extend(t.kept_volumes.into_iter().map(|v| format!("volume/{v}")));
        }
        let kube_services: Vec<&Service> = env
            .services
            .iter()
            .filter(|s| s.runtime == RuntimeKind::Kubernetes)
            .collect();
        if kube_services.is_empty() {
            return Ok(report);
        }
        let _op = self.ops.lock().await;
        let kenv = self
            .kube_env(&env, &vars)
            .await
            .map_err(DownError::Unreachable)?;
        // Workloads an earlier dev mode left replaced (the daemon was killed, or the
        // cluster was unreachable when it ended): put them back before deleting, so a
        // workload devenv did not create is left as it was.
        for rec in self.shared.state.devs(&self.shared.id).unwrap_or_default() {
            super::dev::put_back(&kenv, &self.shared.state, &rec, None)
                .await
                .map_err(|source| DownError::DevRestore {
                    workload: rec.backup.display(),
                    source,
                })?;
            report.restored.push(rec.backup.display());
        }
        let r = crate::kube::teardown::down(&kenv, &env, &self.kinds, &vars, volumes)
            .await
            .map_err(DownError::Teardown)?;
        report.deleted.extend(r.deleted);
        report.kept_volumes.extend(r.kept_volumes);
        report.namespace_removed = r.namespace_removed.then(|| kenv.namespace.clone());
        if r.namespace_removed {
            // The next `up` creates it again.
            *self.kube.lock().await = None;
        }
        Ok(report)
    }

    /// Terraform services on `down`: their resources stay, unless `--volumes` and
    /// `allowDestroy` (then `terraform destroy`, dependents first, as everything is
    /// already stopped).
    async fn terraform_down(
        &self,
        env: &Environment,
        volumes: bool,
        vars: &BTreeMap<String, String>,
        report: &mut DownReport,
    ) -> Result<(), DownError> {
        // Deepest first: a terraform service built on another one's outputs goes first.
        fn depth(env: &Environment, name: &str, seen: &mut HashMap<String, usize>) -> usize {
            if let Some(d) = seen.get(name) {
                return *d;
            }
            let d = env.service(name).map_or(0, |s| {
                s.dependencies
                    .iter()
                    .map(|dep| depth(env, dep, seen) + 1)
                    .max()
                    .unwrap_or(0)
            });
            seen.insert(name.to_owned(), d);
            d
        }
        let mut seen = HashMap::new();
        let mut tf_services: Vec<(usize, &Service)> = env
            .services
            .iter()
            .filter(|s| s.runtime == RuntimeKind::Terraform)
            .map(|s| (depth(env, &s.name, &mut seen), s))
            .collect();
        tf_services.sort_by_key(|(depth, _)| std::cmp::Reverse(*depth));
        let tf_services = tf_services.into_iter().map(|(_, s)| s);
        for svc in tf_services {
            let destroy = volumes && svc.terraform.as_ref().is_some_and(|t| t.allow_destroy);
            if !destroy {
                let why = if volumes {
                    "allowDestroy is off"
                } else {
                    "destroyed only by down --volumes with allowDestroy"
                };
                report
                    .kept_volumes
                    .push(format!("terraform {} ({why})", svc.name));
                continue;
            }
            let Some(tf) =
                super::tfrun::Tf::new(self.shared.clone(), svc, vars, env.secret_vars(svc))
            else {
                continue;
            };
            tf.destroy().await.map_err(|source| DownError::Terraform {
                service: svc.name.clone(),
                source,
            })?;
            report
                .removed_data
                .push(format!("terraform {} (destroyed)", svc.name));
        }
        Ok(())
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

    /// Stops the named services in reverse dependency order (each waits until its
    /// dependents among `names` are stopped: through a completed oneshot too, whose own
    /// state says nothing of what depends on it), in parallel where the graph allows.
    /// Returns the names that were running, in stop order.
    /// `hook_vars`: run each running service's `preStop` hooks first, with these
    /// client variables (a failure with `onError: fail` is logged and the stop goes
    /// on: a `down` does not leave a service running because of a hook).
    pub(super) async fn stop_services(
        self: &Arc<Self>,
        env: &Environment,
        names: &[String],
        hook_vars: Option<Arc<BTreeMap<String, String>>>,
    ) -> Vec<String> {
        let dependents = graph::dependents(env);
        // Each service's stop, done or not, which its dependencies wait for.
        let mut done: HashMap<String, watch::Sender<bool>> = names
            .iter()
            .map(|n| (n.clone(), watch::channel(false).0))
            .collect();
        let mut waits_of: HashMap<String, Vec<watch::Receiver<bool>>> = names
            .iter()
            .map(|n| {
                let waits = dependents
                    .get(n)
                    .into_iter()
                    .flatten()
                    .filter_map(|d| done.get(d).map(watch::Sender::subscribe))
                    .collect();
                (n.clone(), waits)
            })
            .collect();
        let mut tasks = JoinSet::new();
        let mut was_running = Vec::new();
        let stop_order = Arc::new(Mutex::new(Vec::new()));
        for name in names {
            let sup = self
                .supervisors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
            let waits = waits_of.remove(name).unwrap_or_default();
            let finished = done.remove(name);
            let shared = self.shared.clone();
            let name = name.clone();
            if sup.as_ref().is_some_and(|s| !s.task.is_finished()) {
                was_running.push(name.clone());
            }
            let stop_order = stop_order.clone();
            let pre_stop = hook_vars.clone().and_then(|vars| {
                let svc = env.service(&name)?.clone();
                (!svc.hooks.pre_stop.is_empty())
                    .then(|| (self.clone(), Arc::new(env.clone()), svc, vars))
            });
            tasks.spawn(async move {
                for mut w in waits {
                    let _ = w.wait_for(|stopped| *stopped).await;
                }
                match sup {
                    Some(sup) if !sup.task.is_finished() => {
                        if let Some((this, env, svc, vars)) = pre_stop {
                            let site = Site {
                                env: &env,
                                vars: &vars,
                                service: Some(&svc),
                                point: "preStop",
                            };
                            if let Err(f) = this.run_hooks(site, &svc.hooks.pre_stop).await {
                                tracing::warn!(service = %svc.name, error = %f, "preStop hook failed; stopping it anyway");
                            }
                        }
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
                if let Some(tx) = finished {
                    tx.send_replace(true);
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
    ) -> Result<(), EngineError> {
        let _op = self.ops.lock().await;
        let env = self.config().ok_or(EngineError::NotUp)?;
        UnknownService::check(&env, names)?;
        let held: Vec<String> = names
            .iter()
            .filter(|n| self.shared.held(n))
            .cloned()
            .collect();
        if !held.is_empty() {
            return Err(EngineError::StoppedByUser(held));
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
            let limit = svc.start_deadline();
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
                    let revision = env.secrets_revision(&svc);
                    let configured = svc.clone();
                    let svc = match super::tfrun::substitute(&self.shared, &svc) {
                        Ok(s) => s,
                        Err(msg) => {
                            self.shared.update(name, |s| {
                                s.state = ServiceState::Failed;
                                s.message = msg;
                            });
                            continue;
                        }
                    };
                    let tf = (svc.runtime == RuntimeKind::Terraform)
                        .then(|| {
                            super::tfrun::Tf::new(
                                self.shared.clone(),
                                &svc,
                                &vars,
                                env.secret_vars(&svc),
                            )
                        })
                        .flatten();
                    let plugin = (svc.runtime == RuntimeKind::Plugin)
                        .then(|| {
                            let mut env_vars = env.secret_vars(&svc);
                            env_vars.extend(svc.env.clone());
                            super::pluginrun::start(
                                self.shared.clone(),
                                &svc,
                                vars.clone(),
                                env_vars,
                            )
                        })
                        .flatten();
                    let mut sup = if let Some(tf) = tf {
                        super::tfrun::start(tf)
                    } else if let Some(p) = plugin {
                        p
                    } else if svc.runtime == RuntimeKind::Container {
                        // No `up` runs this start's hooks: the runner does.
                        let hooks = self.runner_hooks(&env, &svc, &vars, true);
                        super::containerrun::ContainerRun::start(
                            self.shared.clone(),
                            svc,
                            env.clone(),
                            vars.clone(),
                            hooks,
                        )
                    } else {
                        let secrets = env.secret_vars(&svc);
                        // No `up` runs this start's hooks: the supervisor does.
                        let hooks = self.runner_hooks(&env, &svc, &vars, true);
                        let volumes = crate::volumes::mounted(&env, &svc);
                        Supervisor::start(
                            self.shared.clone(),
                            svc,
                            vars.clone(),
                            secrets,
                            hooks,
                            volumes,
                        )
                    };
                    sup.secrets_revision = revision;
                    sup.tf_values = super::tfrun::values_digest(&self.shared, &configured);
                    sup.service = configured;
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
