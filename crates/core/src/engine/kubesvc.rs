//! One task per running kubernetes service: applies its objects, gates readiness on
//! the rollout (watched), streams pod logs into the hub, runs its port forwards, and
//! marks it unhealthy when pods stop being ready. Stopping detaches (logs, forwards);
//! deleting what was applied is `down`'s job, so a config change re-applies in place.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::devsync::DevSync;
use super::env::Shared;
use super::supervisor::Ctl;
use crate::config::{Environment, Service};
use crate::kube::apply::{self, Kinds};
use crate::kube::devmode::{self, DevSpec, Restored};
use crate::kube::forward::{ForwardSpec, Forwarder};
use crate::kube::rollout::{self, Health, Workload};
use crate::kube::{helm, manifests, podlogs, render, selector, KubeEnv};
use crate::logs::Stream;
use crate::state::DevRecord;
use crate::status::ServiceState;

/// Readiness deadline when the service sets none: image pulls can be slow.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);
const FAILURE_LINES: i64 = 10;
/// Restoring a workload after dev mode gives up after this (and is retried later).
const RESTORE_LIMIT: Duration = Duration::from_secs(20);

pub(super) struct KubeRun {
    pub shared: Arc<Shared>,
    pub svc: Service,
    pub env: Arc<Environment>,
    pub kenv: KubeEnv,
    pub kinds: Arc<Kinds>,
    pub vars: Arc<BTreeMap<String, String>>,
    pub ctl: mpsc::Receiver<Ctl>,
    /// Run the dev version of the workload (dev mode).
    pub dev: bool,
    pub active_dev: Option<DevActive>,
}

/// A workload this run put in dev mode.
pub(super) struct DevActive {
    workload: Workload,
    record: DevRecord,
    sync: Option<DevSync>,
}

enum Waited {
    Ready,
    Failed(String, Vec<String>),
    Stop(tokio::sync::oneshot::Sender<()>),
    Restart,
    Gone,
}

impl KubeRun {
    fn system(&self, msg: &str) {
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
        loop {
            if redeploy {
                self.shared.update(&name, |s| {
                    s.state = ServiceState::Starting;
                    s.message = "applying".into();
                    s.last_lines.clear();
                    s.restarts = restarts;
                });
                let deployed = match self.deploy().await {
                    Ok(w) if self.dev => self.enter_dev(&w).await.map(|()| w),
                    other => other,
                };
                match deployed {
                    Ok(w) => workloads = w,
                    Err(msg) => {
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
            let deadline = Instant::now()
                + self
                    .svc
                    .readiness
                    .as_ref()
                    .map(|r| r.initial_delay + r.timeout)
                    .unwrap_or(DEFAULT_TIMEOUT);
            let waited = self.wait_ready(&mut rxs, deadline).await;
            match waited {
                Waited::Ready => {
                    self.system("ready");
                    self.shared.update(&name, |s| {
                        s.state = ServiceState::Ready;
                        s.message = ready_message(&workloads);
                    });
                    self.start_forwards(&workloads).await;
                    self.start_sync().await;
                    // Watch health until told otherwise.
                    let next = self.monitor(&mut rxs, &workloads).await;
                    for (_, task) in &watches {
                        task.abort();
                    }
                    match next {
                        Waited::Restart => {
                            restarts += 1;
                            self.rollout_restart(&workloads).await;
                            redeploy = false;
                            self.shared.update(&name, |s| {
                                s.state = ServiceState::Starting;
                                s.restarts = restarts;
                                s.message = "restarting pods".into();
                            });
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

    /// Stops logs and forwards; the service is `stopped` (its objects stay until `down`).
    async fn finish(&mut self, detach: &CancellationToken, logs: Vec<tokio::task::JoinHandle<()>>) {
        self.leave_dev().await;
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

    /// After a failure: wait for a restart (`Some(true)`) or stop.
    async fn idle_until_told(&mut self) -> Option<bool> {
        match self.ctl.recv().await {
            Some(Ctl::Restart) => Some(true),
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
                    Some(Ctl::Restart) => Waited::Restart,
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
                    Some(Ctl::Restart) => Waited::Restart,
                    None => Waited::Gone,
                },
            }
        }
    }

    /// Applies the service's objects; returns the workloads that gate readiness.
    async fn deploy(&self) -> Result<Vec<Workload>, String> {
        let started = Instant::now();
        let svc = &self.svc;
        let objects: Vec<Value> = if let Some(dir) = &svc.manifests {
            let docs = manifests::load(dir, &self.env.project_dir)?;
            let mut objs = Vec::with_capacity(docs.len());
            for d in &docs {
                let mut o = d.object.clone();
                manifests::label(&mut o, &self.env.name, &svc.name);
                objs.push(o);
            }
            // Validate every document first: nothing is applied when one is invalid.
            let checks = futures::future::join_all(
                objs.iter().map(|o| self.kinds.apply(&self.kenv, o, true)),
            )
            .await;
            let errors: Vec<String> = checks
                .into_iter()
                .zip(&docs)
                .filter_map(|(r, d)| {
                    r.err()
                        .map(|e| format!("{}: {e}", d.location(&self.env.project_dir)))
                })
                .collect();
            if !errors.is_empty() {
                return Err(format!(
                    "invalid manifests, nothing applied: {}",
                    errors.join("; ")
                ));
            }
            objs
        } else if let Some(chart) = &svc.chart {
            self.restore_pending(&[]).await?;
            return self.helm_install(chart).await;
        } else if let Some(w) = &svc.workload {
            return self.existing_workload(w).await;
        } else {
            let image = self.image().await?;
            render::objects(&self.env, svc, &image)
        };
        self.restore_pending(&objects).await?;
        apply::apply_all(&self.kinds, &self.kenv, &objects)
            .await
            .map_err(|e| e.to_string())?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        self.system(&format!(
            "applied {} object(s) to namespace {} in {ms:.0} ms",
            objects.len(),
            self.kenv.namespace
        ));
        self.workloads_of(&objects).await
    }

    async fn image(&self) -> Result<String, String> {
        if let Some(b) = &self.svc.build {
            let name: Arc<str> = Arc::from(self.svc.name.as_str());
            let hub = self.shared.logs.clone();
            let cluster = self.env.cluster.clone();
            return crate::kube::build::build_image(
                &self.env.name,
                &self.svc.name,
                b,
                cluster.as_ref(),
                &self.vars,
                &mut move |line: &str| hub.push(&name, Stream::System, line),
            )
            .await
            .map_err(|e| e.to_string());
        }
        render::image_of(&self.svc).ok_or_else(|| "service has no image".to_owned())
    }

    async fn workloads_of(&self, objects: &[Value]) -> Result<Vec<Workload>, String> {
        let mut out = Vec::new();
        for o in objects.iter().filter(|o| manifests::is_workload(o)) {
            let (ar, _) = self
                .kinds
                .resolve(
                    &self.kenv,
                    o["apiVersion"].as_str().unwrap_or_default(),
                    o["kind"].as_str().unwrap_or_default(),
                )
                .await
                .map_err(|e| e.to_string())?;
            if let Some(w) = Workload::from_object(o, ar, &self.kenv.namespace) {
                out.push(w);
            }
        }
        Ok(out)
    }

    async fn helm_install(&self, chart: &str) -> Result<Vec<Workload>, String> {
        let bin = helm::binary(&self.vars).map_err(|e| e.to_string())?;
        let started = Instant::now();
        let values_file = match &self.svc.values {
            Some(v) => {
                let dir = self.shared.state_dir().join("helm");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| format!("cannot write helm values: {e}"))?;
                let path = dir.join(format!("{}-{}.json", self.shared.id, self.svc.name));
                write_private(&path, &serde_json::to_vec(v).unwrap_or_default())
                    .map_err(|e| format!("cannot write helm values: {e}"))?;
                Some(path)
            }
            None => None,
        };
        let release = helm::release(&self.svc.name);
        let ctx = crate::kube::context_name(self.env.cluster.as_ref().ok_or("no cluster")?);
        let args = helm::install_args(
            &release,
            chart,
            &self.kenv.namespace,
            ctx.as_deref(),
            values_file.as_deref(),
        );
        let result = helm::run(&bin, &args, &self.vars, &self.env.project_dir).await;
        if let Some(f) = &values_file {
            let _ = std::fs::remove_file(f);
        }
        result.map_err(|e| e.to_string())?;
        let mut get = vec![
            "get".to_owned(),
            "manifest".to_owned(),
            release,
            "--namespace".to_owned(),
            self.kenv.namespace.clone(),
        ];
        if let Some(c) = &ctx {
            get.push("--kube-context".into());
            get.push(c.clone());
        }
        let manifest = helm::run(&bin, &get, &self.vars, &self.env.project_dir)
            .await
            .map_err(|e| e.to_string())?;
        let objects: Vec<Value> = serde_yaml::Deserializer::from_str(&manifest)
            .filter_map(|d| serde::Deserialize::deserialize(d).ok())
            .filter(|v: &Value| !v.is_null())
            .collect();
        self.system(&format!(
            "helm release {} installed ({} objects) in {:.0} ms",
            self.svc.name,
            objects.len(),
            started.elapsed().as_secs_f64() * 1000.0
        ));
        self.workloads_of(&objects).await
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

    /// The record of a dev-mode backup of `w` by this service.
    fn dev_record(&self, backup: devmode::Backup) -> DevRecord {
        let vars = ["KUBECONFIG", "HOME"]
            .into_iter()
            .filter_map(|k| self.vars.get(k).map(|v| (k.to_owned(), v.clone())))
            .collect();
        DevRecord {
            env_id: self.shared.id.clone(),
            env_name: self.env.name.clone(),
            service: self.svc.name.clone(),
            context: self
                .env
                .cluster
                .as_ref()
                .and_then(crate::kube::context_name),
            vars,
            backup,
        }
    }

    /// Puts the service's workload in dev mode (backup first, in state and on the
    /// object).
    async fn enter_dev(&mut self, workloads: &[Workload]) -> Result<(), String> {
        let Some(dev) = self.svc.dev.clone() else {
            return Err(format!("service `{}` has no `dev` section", self.svc.name));
        };
        let w = match workloads {
            [w] => w.clone(),
            [] => return Err("dev mode needs a workload, and this service has none".into()),
            many => {
                let names: Vec<String> = many
                    .iter()
                    .map(|w| format!("{}/{}", w.kind.to_ascii_lowercase(), w.name))
                    .collect();
                return Err(format!(
                    "dev mode replaces one workload; this service has {} ({}): give it its own service",
                    many.len(),
                    names.join(", ")
                ));
            }
        };
        let command = dev.command.clone().or_else(|| {
            (dev.on_sync == crate::config::OnSync::Restart)
                .then(|| self.svc.command.clone())
                .flatten()
        });
        let spec = DevSpec {
            image: dev.image.clone(),
            restartable: dev.on_sync == crate::config::OnSync::Restart && command.is_some(),
            command,
            owner: format!("{}/{}", self.env.name, self.svc.name),
        };
        let state = self.shared.state.clone();
        let make = |b: &devmode::Backup| self.dev_record(b.clone());
        let backup = devmode::enter(&self.kenv.client, &self.kenv.context, &w, &spec, |b| {
            state.put_dev(&make(b)).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())?;
        self.system(&format!(
            "dev mode: {}/{} now runs the dev version (original saved; restored when dev mode ends)",
            w.kind.to_ascii_lowercase(),
            w.name
        ));
        self.shared.set_dev_active(&self.svc.name, true);
        self.active_dev = Some(DevActive {
            workload: w,
            record: self.dev_record(backup),
            sync: None,
        });
        Ok(())
    }

    /// Starts syncing into the dev pods (once per dev mode).
    async fn start_sync(&mut self) {
        let Some(active) = self.active_dev.as_mut() else {
            return;
        };
        let Some(dev) = self.svc.dev.as_ref().filter(|d| !d.sync.is_empty()) else {
            return;
        };
        if active.sync.is_some() {
            return;
        }
        match DevSync::start(
            self.kenv.clone(),
            &self.svc.name,
            dev,
            active.workload.pods.clone(),
            self.shared.logs.clone(),
            &self.env.project_dir,
        ) {
            Ok(sync) => {
                sync.ready(Duration::from_secs(10)).await;
                self.shared
                    .set_sync(&self.svc.name, Some(sync.state.clone()));
                for rule in &dev.sync {
                    let from = rule
                        .from
                        .strip_prefix(&self.env.project_dir)
                        .map(|p| format!("./{}", p.display()))
                        .unwrap_or_else(|_| rule.from.display().to_string());
                    let name: Arc<str> = Arc::from(self.svc.name.as_str());
                    self.shared.logs.push(
                        &name,
                        Stream::System,
                        &format!("sync: {from} -> {}", rule.to),
                    );
                }
                active.sync = Some(sync);
            }
            Err(e) => self.system(&format!("sync: cannot watch the files: {e}")),
        }
    }

    /// Ends dev mode: stops the sync and puts the original workload back.
    async fn leave_dev(&mut self) {
        let Some(mut active) = self.active_dev.take() else {
            return;
        };
        self.shared.set_sync(&self.svc.name, None);
        if let Some(sync) = active.sync.take() {
            sync.stop().await;
        }
        let what = format!(
            "{}/{}",
            active.workload.kind.to_ascii_lowercase(),
            active.workload.name
        );
        let restored = tokio::time::timeout(
            RESTORE_LIMIT,
            devmode::restore(
                &self.kenv.client,
                &self.kenv.context,
                &active.workload,
                Some(&active.record.backup),
            ),
        )
        .await;
        match restored {
            Ok(Ok(r)) => {
                let _ = self.shared.state.remove_dev(&active.record);
                self.shared.set_dev_active(&self.svc.name, false);
                if r == Restored::Restored {
                    self.system(&format!("dev mode ended: {what} restored"));
                }
            }
            Ok(Err(e)) => {
                self.shared.set_dev_active(&self.svc.name, false);
                self.system(&format!(
                "dev mode ended but {what} could not be restored yet: {e}; devenv restores it at the next `up`, `down` or daemon start"
            ));
            }
            Err(_) => {
                self.shared.set_dev_active(&self.svc.name, false);
                self.system(&format!(
                "dev mode ended but restoring {what} timed out; devenv restores it at the next `up`, `down` or daemon start"
            ));
            }
        }
    }

    /// Restores what an earlier dev mode of this service left (a daemon killed in
    /// dev mode, a cluster unreachable when it ended), before applying anything.
    async fn restore_pending(&self, objects: &[Value]) -> Result<(), String> {
        let records = self
            .shared
            .state
            .devs(&self.shared.id)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.service == self.svc.name);
        for rec in records {
            let w = devmode::workload_of(&rec.backup);
            let r = devmode::restore(&self.kenv.client, &self.kenv.context, &w, Some(&rec.backup))
                .await
                .map_err(|e| {
                    format!(
                        "cannot restore {} after dev mode: {e}",
                        rec.backup.display()
                    )
                })?;
            let _ = self.shared.state.remove_dev(&rec);
            if r == Restored::Restored {
                self.system(&format!(
                    "restored {} from an earlier dev mode",
                    rec.backup.display()
                ));
            }
        }
        // A backup only on the object (the daemon's state was lost).
        for w in self.workloads_of(objects).await.unwrap_or_default() {
            if let Ok(Restored::Restored) =
                devmode::restore(&self.kenv.client, &self.kenv.context, &w, None).await
            {
                self.system(&format!(
                    "restored {}/{} from an earlier dev mode",
                    w.kind.to_ascii_lowercase(),
                    w.name
                ));
            }
        }
        Ok(())
    }

    /// A `workload:` service: the existing workload, never created or changed here.
    async fn existing_workload(
        &self,
        r: &crate::config::WorkloadRef,
    ) -> Result<Vec<Workload>, String> {
        let (ar, _) = self
            .kinds
            .resolve(&self.kenv, "apps/v1", &r.kind)
            .await
            .map_err(|e| e.to_string())?;
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(self.kenv.client.clone(), &self.kenv.namespace, &ar);
        let found = api
            .get_opt(&r.name)
            .await
            .map_err(|e| crate::kube::error::explain(&e, &self.kenv.context).to_string())?;
        let Some(found) = found else {
            return Err(format!(
                "{r} not found in namespace {}: devenv does not create a `workload:` service's workload",
                self.kenv.namespace
            ));
        };
        let value = serde_json::to_value(&found).map_err(|e| format!("{r}: {e}"))?;
        self.restore_pending(std::slice::from_ref(&value)).await?;
        Workload::from_object(&value, ar, &self.kenv.namespace)
            .map(|w| vec![w])
            .ok_or_else(|| format!("{r} has no pod selector"))
    }

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
fn pod_selectors(env: &Environment, svc: &Service, workloads: &[Workload]) -> Vec<String> {
    let mut out: Vec<String> = workloads.iter().map(|w| w.pods.clone()).collect();
    out.dedup();
    if out.is_empty() {
        out.push(selector(&env.name, Some(&svc.name)));
    }
    out
}

fn ready_message(workloads: &[Workload]) -> String {
    match workloads {
        [] => "applied".into(),
        [w] => format!("{} {} rolled out", w.kind.to_lowercase(), w.name),
        many => format!("{} workloads rolled out", many.len()),
    }
}

fn write_private(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)
}
