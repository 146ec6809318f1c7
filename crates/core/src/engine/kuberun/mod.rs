//! One task per running kubernetes service: applies its objects, gates readiness on
//! the rollout (watched), streams pod logs into the hub, runs its port forwards, and
//! marks it unhealthy when pods stop being ready. Stopping detaches (logs, forwards);
//! deleting what was applied is `down`'s job, so a config change re-applies in place.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::board::{lock, Shared};
mod deploy;

use super::dev::workload::{DevActive, DevTarget};
use super::supervisor::{Ctl, HookPoint, RunHooks, Supervisor};
use crate::config::{Environment, Service};
use crate::kube::apply::Kinds;
use crate::kube::forward::{ForwardSpec, Forwarder};
use crate::kube::rollout::{self, Health, Workload};
use crate::kube::{podlogs, render, scale, selector, ClusterConn};
use crate::logs::Stream;
use crate::status::{Replicas, ServiceState};

const FAILURE_LINES: i64 = 10;

pub(in crate::engine) struct KubeRun {
    pub shared: Arc<Shared>,
    pub svc: Service,
    pub env: Arc<Environment>,
    pub kenv: ClusterConn,
    pub kinds: Arc<Kinds>,
    pub vars: Arc<BTreeMap<String, String>>,
    pub ctl: mpsc::Receiver<Ctl>,
    /// Run the dev version of the workload (dev mode).
    pub dev: bool,
    pub active_dev: Option<DevActive>,
    /// The hooks of its restarts (see `supervisor::ServiceHooks`).
    pub hooks: RunHooks,
}

enum Waited {
    Ready,
    Failed(String, Vec<String>),
    Stop(tokio::sync::oneshot::Sender<()>),
    Restart,
    Gone,
}

impl KubeRun {
    /// Starts the runner of a kubernetes service; its handle is a [`Supervisor`] like
    /// a local service's.
    #[allow(
        clippy::too_many_arguments,
        reason = "the runner's parts, each given once by `up`; a struct of them would be this one"
    )]
    pub(in crate::engine) fn start(
        shared: Arc<Shared>,
        service: Service,
        env: Arc<Environment>,
        kenv: ClusterConn,
        kinds: Arc<Kinds>,
        vars: Arc<BTreeMap<String, String>>,
        dev: bool,
        hooks: RunHooks,
    ) -> Supervisor {
        let (tx, rx) = mpsc::channel(8);
        let svc = service.clone();
        let task = tokio::spawn(async move {
            KubeRun {
                dev,
                active_dev: None,
                shared,
                svc,
                env,
                kenv,
                kinds,
                vars,
                ctl: rx,
                hooks,
            }
            .main()
            .await
        });
        Supervisor {
            ctl: tx,
            task,
            service,
            dev,
            secrets_revision: String::new(),
            tf_values: String::new(),
            context: Default::default(),
        }
    }

    /// What the dev-mode steps (`dev/workload.rs`) need of this runner.
    fn dev_target(&self) -> DevTarget<'_> {
        DevTarget {
            shared: &self.shared,
            svc: &self.svc,
            env: &self.env,
            conn: &self.kenv,
            vars: &self.vars,
        }
    }

    pub(in crate::engine) fn system(&self, msg: &str) {
        let name: Arc<str> = Arc::from(self.svc.name.as_str());
        self.shared.logs.push(&name, Stream::System, msg);
    }

    pub async fn main(mut self) {
        let name = self.svc.name.clone();
        let detach = CancellationToken::new();
        let mut log_tasks: Vec<tokio::task::JoinHandle<()>> = Vec::new();
        let mut restarts = self
            .shared
            .status_of(&name)
            .map(|s| s.restarts)
            .unwrap_or(0);
        let mut redeploy = true;
        let mut workloads: Vec<Workload> = Vec::new();
        let mut first = true;
        // Restart the pods of the deployed workloads (a restart asked for).
        let mut roll = false;
        loop {
            let this_first = std::mem::replace(&mut first, false);
            if self.hooks.owns(this_first) && !self.svc.hooks.pre_start.is_empty() {
                self.shared.update(&name, |s| {
                    s.state = ServiceState::Starting;
                    s.message = "running its preStart hook".into();
                });
                if let Err(f) = self.hooks.run(HookPoint::PreStart, this_first).await {
                    if self.hook_failed("preStart", f).await {
                        restarts += 1;
                        continue;
                    }
                    break;
                }
            }
            if std::mem::take(&mut roll) {
                self.rollout_restart(&workloads).await;
                self.shared.update(&name, |s| {
                    s.state = ServiceState::Starting;
                    s.restarts = restarts;
                    s.message = "restarting pods".into();
                });
            }
            if redeploy {
                self.shared.update(&name, |s| {
                    s.state = ServiceState::Starting;
                    s.message = "applying".into();
                    s.last_lines.clear();
                    s.restarts = restarts;
                });
                let deployed = match self.deploy().await {
                    Ok(w) if self.dev => match self.dev_target().enter(&w).await {
                        Ok(active) => {
                            self.active_dev = Some(active);
                            Ok(w)
                        }
                        Err(e) => Err(e),
                    },
                    other => other,
                };
                match deployed {
                    Ok(w) => {
                        self.put_replicas(&w).await;
                        workloads = w;
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        self.system(&msg);
                        self.shared.update(&name, |s| {
                            s.state = ServiceState::Failed;
                            s.message = msg;
                        });
                        match self.idle_until_told().await {
                            Some(true) => {
                                restarts += 1;
                                continue;
                            }
                            _ => break,
                        }
                    }
                }
                if log_tasks.is_empty() {
                    for sel in pod_selectors(&self.env, &self.svc, &workloads) {
                        log_tasks.push(tokio::spawn(podlogs::follow(
                            self.kenv.clone(),
                            self.kenv.namespace.clone(),
                            sel,
                            self.shared.logs.clone(),
                            Arc::from(name.as_str()),
                            detach.child_token(),
                        )));
                    }
                }
            }
            let watches: Vec<_> = workloads
                .iter()
                .map(|w| rollout::spawn(&self.kenv, w.clone()))
                .collect();
            let mut rxs: Vec<watch::Receiver<Health>> =
                watches.iter().map(|(rx, _)| rx.clone()).collect();
            let deadline = Instant::now() + self.svc.start_deadline();
            let waited = self.wait_ready(&mut rxs, deadline).await;
            match waited {
                Waited::Ready => {
                    self.system("ready");
                    if self.hooks.owns(this_first) && !self.svc.hooks.post_ready.is_empty() {
                        // Ready once its `postReady` is done, as on a first start.
                        self.shared.update(&name, |s| {
                            s.message = "running its postReady hook".into();
                        });
                        if let Err(f) = self.hooks.run(HookPoint::PostReady, this_first).await {
                            for (_, task) in &watches {
                                task.abort();
                            }
                            if self.hook_failed("postReady", f).await {
                                restarts += 1;
                                redeploy = true;
                                continue;
                            }
                            break;
                        }
                    }
                    self.shared.update(&name, |s| {
                        s.state = ServiceState::Ready;
                        s.message = ready_message(&workloads);
                        if let Some(r) = &mut s.replicas {
                            r.ready = r.desired;
                        }
                    });
                    self.start_forwards(&workloads).await;
                    if let Some(mut active) = self.active_dev.take() {
                        active.start_sync(&self.dev_target()).await;
                        self.active_dev = Some(active);
                    }
                    // Watch health until told otherwise.
                    let next = self.monitor(&mut rxs, &workloads).await;
                    for (_, task) in &watches {
                        task.abort();
                    }
                    match next {
                        Waited::Restart => {
                            restarts += 1;
                            if let Err(f) = self.hooks.run(HookPoint::PreStop, false).await {
                                tracing::warn!(service = %name, error = %f, "preStop hook failed; restarting it anyway");
                            }
                            // After its `preStart` (at the top of the loop).
                            roll = true;
                            redeploy = false;
                            continue;
                        }
                        Waited::Stop(reply) => {
                            self.finish(&detach, log_tasks).await;
                            let _ = reply.send(());
                            return;
                        }
                        _ => break,
                    }
                }
                Waited::Failed(msg, lines) => {
                    for (_, task) in &watches {
                        task.abort();
                    }
                    self.system(&msg);
                    self.shared.update(&name, |s| {
                        s.state = ServiceState::Failed;
                        s.message = msg;
                        s.last_lines = lines;
                    });
                    match self.idle_until_told().await {
                        Some(true) => {
                            restarts += 1;
                            redeploy = true;
                            continue;
                        }
                        _ => break,
                    }
                }
                Waited::Restart => {
                    for (_, task) in &watches {
                        task.abort();
                    }
                    restarts += 1;
                    redeploy = true;
                    continue;
                }
                Waited::Stop(reply) => {
                    for (_, task) in &watches {
                        task.abort();
                    }
                    self.finish(&detach, log_tasks).await;
                    let _ = reply.send(());
                    return;
                }
                Waited::Gone => break,
            }
        }
        self.finish(&detach, log_tasks).await;
    }

    /// Publishes the deployed workloads (for `scale` and `stop`) and sets their
    /// replicas to what the user asked: the count of `devenv scale`, else the one a
    /// `devenv stop` took to 0.
    async fn put_replicas(&self, workloads: &[Workload]) {
        let name = &self.svc.name;
        lock(&self.shared.workloads).insert(name.clone(), workloads.to_vec());
        let scaled = lock(&self.shared.scaled).get(name).copied();
        let before = lock(&self.shared.stopped_replicas)
            .remove(name)
            .unwrap_or_default();
        for w in workloads.iter().filter(|w| scale::scalable(w)) {
            let key = format!("{}/{}", w.kind, w.name);
            let Some(n) = scaled.or_else(|| before.get(&key).copied()) else {
                continue;
            };
            match scale::set_replicas(&self.kenv, w, n).await {
                Ok(()) => self.system(&format!("{key}: {n} replica(s)")),
                Err(e) => self.system(&format!("cannot set the replicas of {key}: {e}")),
            }
        }
        self.shared.update(name, |s| {
            s.replicas = scaled.map(|desired| Replicas { desired, ready: 0 });
        });
    }

    /// Stops logs and forwards; the service is `stopped` (its objects stay until `down`).
    async fn finish(&mut self, detach: &CancellationToken, logs: Vec<tokio::task::JoinHandle<()>>) {
        if let Some(active) = self.active_dev.take() {
            active.leave(&self.dev_target()).await;
        }
        detach.cancel();
        for t in logs {
            let _ = t.await;
        }
        let forwards = self.shared.take_forwards(&self.svc.name);
        for f in forwards {
            f.stop().await;
        }
        self.shared.update(&self.svc.name, |s| {
            if s.state != ServiceState::Failed {
                s.state = ServiceState::Stopped;
                s.message = "stopped".into();
            }
        });
    }

    /// A restart's `point` hook failed (`onError: fail`): the service failed; waits
    /// to be told, true to run again.
    async fn hook_failed(&mut self, point: &str, f: super::error::HookFailed) -> bool {
        let msg = format!("{point} hook failed: {}", f.reason);
        self.system(&msg);
        self.shared.update(&self.svc.name, |s| {
            s.state = ServiceState::Failed;
            s.message = msg;
            s.last_lines = f.last_lines;
        });
        self.idle_until_told().await == Some(true)
    }

    /// After a failure: wait for a restart (`Some(true)`) or stop.
    async fn idle_until_told(&mut self) -> Option<bool> {
        match self.ctl.recv().await {
            Some(Ctl::Restart | Ctl::Rebuild) => Some(true),
            Some(Ctl::Stop(reply)) => {
                self.shared.update(&self.svc.name, |s| {
                    s.state = ServiceState::Stopped;
                    s.message = "stopped".into();
                });
                let _ = reply.send(());
                Some(false)
            }
            None => None,
        }
    }

    async fn wait_ready(
        &mut self,
        rxs: &mut [watch::Receiver<Health>],
        deadline: Instant,
    ) -> Waited {
        if rxs.is_empty() {
            return Waited::Ready;
        }
        let mut last_progress = String::new();
        loop {
            let healths: Vec<Health> = rxs.iter().map(|r| r.borrow().clone()).collect();
            match rollout::combine(&healths) {
                Health::Ready => return Waited::Ready,
                Health::Failed(f) => {
                    let lines =
                        rollout::last_lines(&self.kenv, &self.kenv.namespace, &f, FAILURE_LINES)
                            .await;
                    return Waited::Failed(f.reason, lines);
                }
                Health::Progressing(p) => {
                    if p != last_progress {
                        self.shared
                            .update(&self.svc.name, |s| s.message = p.clone());
                        last_progress = p;
                    }
                }
            }
            let changed =
                futures::future::select_all(rxs.iter_mut().map(|r| Box::pin(r.changed())));
            tokio::select! {
                _ = changed => {}
                _ = tokio::time::sleep_until(deadline.into()) => {
                    return Waited::Failed(
                        format!("not ready after {}s: {last_progress}", (deadline - Instant::now()).as_secs().max(1)),
                        self.shared.logs.last_lines(&self.svc.name, FAILURE_LINES as usize),
                    );
                }
                c = self.ctl.recv() => return match c {
                    Some(Ctl::Stop(reply)) => Waited::Stop(reply),
                    Some(Ctl::Restart | Ctl::Rebuild) => Waited::Restart,
                    None => Waited::Gone,
                },
            }
        }
    }

    /// While ready: pods that stop being ready make the service `unhealthy`.
    async fn monitor(
        &mut self,
        rxs: &mut [watch::Receiver<Health>],
        workloads: &[Workload],
    ) -> Waited {
        loop {
            let changed = async {
                if rxs.is_empty() {
                    std::future::pending::<()>().await;
                }
                let _ = futures::future::select_all(rxs.iter_mut().map(|r| Box::pin(r.changed())))
                    .await;
            };
            tokio::select! {
                _ = changed => {
                    let healths: Vec<Health> = rxs.iter().map(|r| r.borrow().clone()).collect();
                    let (state, msg) = match rollout::combine(&healths) {
                        Health::Ready => (ServiceState::Ready, ready_message(workloads)),
                        Health::Progressing(p) => (ServiceState::Unhealthy, p),
                        Health::Failed(f) => (ServiceState::Unhealthy, f.reason),
                    };
                    self.shared.update(&self.svc.name, |s| {
                        if s.state != state || s.message != msg {
                            s.state = state;
                            s.message = msg;
                        }
                    });
                }
                c = self.ctl.recv() => return match c {
                    Some(Ctl::Stop(reply)) => Waited::Stop(reply),
                    Some(Ctl::Restart | Ctl::Rebuild) => Waited::Restart,
                    None => Waited::Gone,
                },
            }
        }
    }

    async fn start_forwards(&self, workloads: &[Workload]) {
        if self.svc.forward.is_empty() || self.shared.has_forwards(&self.svc.name) {
            return;
        }
        let sel = pod_selectors(&self.env, &self.svc, workloads)
            .into_iter()
            .next()
            .unwrap_or_else(|| selector(&self.env.name, Some(&self.svc.name)));
        for (local, remote) in &self.svc.forward {
            let spec = ForwardSpec {
                service: self.svc.name.clone(),
                local_port: *local,
                remote_port: *remote,
                namespace: self.kenv.namespace.clone(),
                selector: sel.clone(),
            };
            match Forwarder::start(self.kenv.client.clone(), spec).await {
                Ok(f) => {
                    self.system(&format!("forwarding localhost:{local} -> {remote}"));
                    self.shared.add_forward(&self.svc.name, f);
                }
                Err(e) => self.system(&format!("cannot forward localhost:{local}: {e}")),
            }
        }
    }

    /// A `workload:` service: the existing workload, never created or changed here.
    /// `kubectl rollout restart`: a new pod template annotation.
    async fn rollout_restart(&self, workloads: &[Workload]) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for w in workloads {
            let api: kube::Api<kube::api::DynamicObject> =
                kube::Api::namespaced_with(self.kenv.client.clone(), &w.namespace, &w.resource);
            let patch = json!({ "spec": { "template": { "metadata": { "annotations": {
                render::RESTARTED_AT: now.to_string()
            } } } } });
            if let Err(e) = api
                .patch(
                    &w.name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
            {
                self.system(&format!("cannot restart {} {}: {e}", w.kind, w.name));
            }
        }
    }
}

/// Label selectors of the service's pods: each workload's, else devenv's labels.
/// The label selectors of the service's pods ([`rollout::pod_sets`]).
fn pod_selectors(env: &Environment, svc: &Service, workloads: &[Workload]) -> Vec<String> {
    let fallback = || rollout::PodSet {
        namespace: String::new(),
        selector: selector(&env.name, Some(&svc.name)),
    };
    rollout::pod_sets(workloads, fallback)
        .into_iter()
        .map(|p| p.selector)
        .collect()
}

fn ready_message(workloads: &[Workload]) -> String {
    match workloads {
        [] => "applied".into(),
        [w] => format!("{} {} rolled out", w.kind.to_lowercase(), w.name),
        many => format!("{} workloads rolled out", many.len()),
    }
}
