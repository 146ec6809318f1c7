//! `devenv stop` and `devenv start` of single services.
//!
//! A service the user stops is *held*: its supervisor (or kube runner) is stopped, so
//! neither its restart policy nor a watch rule runs it again, and its status says
//! `stopped by user`. Its running dependents are stopped first and wait in `pending`
//! ("waiting for db (stopped by user)") instead of failing; they are *parked*.
//!
//! Only an explicit request runs a held service again: `start` (an `up` of the named
//! services) or `up` of anything whose dependency closure includes it. Either ends
//! the hold and brings back the parked services that no longer wait for anything
//! held. `down` forgets holds. A recovery after a daemon crash keeps them: the holds
//! are in the environment's wanted record, and the recovery's `up` leaves held
//! services stopped and parks their dependents again.
//!
//! A kubernetes service's workloads are scaled to 0 on stop (their pods would keep
//! running otherwise; stopping a runner only detaches logs and forwards); the counts
//! they had are put back when it starts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::board::lock;
use super::error::{EngineError, UnknownService};
use super::graph;
use super::runtime::LiveEnv;
use super::up::UpOptions;
use super::{Engine, ProjectRef};
use crate::config::{Environment, RuntimeKind};
use crate::kube::scale;
use crate::logs::Stream;
use crate::status::ServiceState;

/// The status message of a service the user stopped.
pub const STOPPED_BY_USER: &str = "stopped by user";

/// The status message of a service waiting for `held`, which the user stopped.
pub fn waiting_for(held: &str) -> String {
    format!("waiting for {held} ({STOPPED_BY_USER})")
}

impl Engine {
    /// Stops `services` until started again (see the module's doc); their running
    /// dependents wait in `pending`. Works on a known environment whose config has
    /// since broken.
    pub async fn stop(
        &self,
        req: &ProjectRef,
        services: &[String],
    ) -> Result<Arc<LiveEnv>, EngineError> {
        let rt = match self.load(req) {
            Ok(loaded) => {
                UnknownService::check(&loaded.environment, services)?;
                self.register(&loaded, req)?
            }
            Err(e) => self
                .find_or_register(req)
                .map_err(|_| EngineError::Config(e))?,
        };
        if let Some(cfg) = rt.config() {
            UnknownService::check(&cfg, services)?;
        }
        self.tasks
            .track_future(
                rt.clone()
                    .stop_by_user(services.to_vec(), Arc::new(req.vars.clone())),
            )
            .await;
        Ok(rt)
    }

    /// Starts `services` and what they need, gated on readiness like `up` (it is an
    /// `up` of them, without the environment's `preUp`/`postUp`: the services' own
    /// hooks run): ends their hold and brings back the services that waited for
    /// them. Progress as [`Engine::up`]'s.
    pub fn start_services(
        &self,
        req: ProjectRef,
        services: Vec<String>,
    ) -> Result<super::Started, EngineError> {
        self.up(
            req,
            UpOptions {
                services,
                skip_env_hooks: true,
                ..UpOptions::default()
            },
        )
    }
}

impl LiveEnv {
    /// `stop` of `names` (`vars`: the client's, for `preStop` hooks): parks their running dependents, stops both (dependents
    /// first), scales kubernetes workloads to 0, and records the holds.
    pub(super) async fn stop_by_user(
        self: Arc<Self>,
        names: Vec<String>,
        vars: Arc<BTreeMap<String, String>>,
    ) {
        let _op = self.ops.lock().await;
        lock(&self.shared.held).extend(names.iter().cloned());
        {
            let mut parked = lock(&self.shared.parked);
            for n in &names {
                parked.remove(n);
            }
        }
        let Some(env) = self.config() else {
            self.shared.persist_user_choices();
            return;
        };
        let parked = self.dependents_to_park(&env, &names);
        let mut to_stop: Vec<String> = parked.keys().cloned().collect();
        to_stop.extend(names.iter().cloned());
        // Their `preStop` hooks run, as on `down`.
        self.stop_services(&env, &to_stop, Some(vars)).await;
        for name in &names {
            if env
                .service(name)
                .is_some_and(|s| s.runtime == RuntimeKind::Kubernetes)
            {
                self.scale_to_zero(name).await;
            }
            self.shared.update(name, |s| {
                s.state = ServiceState::Stopped;
                s.message = STOPPED_BY_USER.into();
                s.replicas = None;
            });
            self.system(name, STOPPED_BY_USER);
        }
        for (name, held) in &parked {
            let why = waiting_for(held);
            self.shared.update(name, |s| {
                s.state = ServiceState::Pending;
                s.message = why.clone();
            });
            self.system(name, &why);
        }
        lock(&self.shared.parked).extend(parked);
        self.shared.persist_user_choices();
    }

    /// The services that need one of `names` now: those running (or on their way),
    /// transitively through dependents that run, each with the stopped service it
    /// waits for. A finished oneshot needs nothing any more, and is left alone.
    fn dependents_to_park(&self, env: &Environment, names: &[String]) -> BTreeMap<String, String> {
        let dependents = graph::dependents(env);
        let already = lock(&self.shared.parked).clone();
        let mut out = BTreeMap::new();
        let mut stack: Vec<(String, String)> =
            names.iter().map(|n| (n.clone(), n.clone())).collect();
        while let Some((name, root)) = stack.pop() {
            for d in dependents.get(&name).into_iter().flatten() {
                if names.contains(d) || out.contains_key(d) {
                    continue;
                }
                let needs = self.shared.status_of(d).is_some_and(|s| {
                    matches!(
                        s.state,
                        ServiceState::Pending
                            | ServiceState::Starting
                            | ServiceState::Ready
                            | ServiceState::Unhealthy
                    )
                });
                if needs {
                    // One that waits already keeps what it waits for.
                    let waits_for = already.get(d).cloned().unwrap_or_else(|| root.clone());
                    out.insert(d.clone(), waits_for.clone());
                    stack.push((d.clone(), waits_for));
                }
            }
        }
        out
    }

    /// What an `up` of `set` (a dependency closure) starts, given what the user
    /// stopped. An explicit `up` (or `start`) runs what it names: their holds end, and
    /// the parked services that no longer wait for a held one come along. A recovery
    /// (`keep_stopped`) leaves held services stopped and parks what needs them.
    pub(super) fn settle_holds(
        &self,
        env: &Environment,
        set: Vec<String>,
        keep_stopped: bool,
    ) -> Vec<String> {
        if keep_stopped {
            let held = lock(&self.shared.held).clone();
            if held.is_empty() {
                return set;
            }
            let mut out = Vec::new();
            for name in set {
                if held.contains(&name) {
                    // Stays stopped; its status says so already.
                    continue;
                }
                match blocker(env, &name, &held) {
                    Some(b) => {
                        let why = waiting_for(&b);
                        self.shared.update(&name, |s| {
                            s.state = ServiceState::Pending;
                            s.message = why.clone();
                        });
                        lock(&self.shared.parked).insert(name, b);
                    }
                    None => out.push(name),
                }
            }
            return out;
        }
        let released = {
            let mut held = lock(&self.shared.held);
            set.iter().filter(|n| held.remove(*n)).count()
        };
        let freed: Vec<String> = {
            let held = lock(&self.shared.held).clone();
            let mut parked = lock(&self.shared.parked);
            parked.retain(|p, _| !set.contains(p));
            let free: Vec<String> = parked
                .keys()
                .filter(|p| blocker(env, p, &held).is_none())
                .cloned()
                .collect();
            for f in &free {
                parked.remove(f);
            }
            free
        };
        if released == 0 && freed.is_empty() {
            return set;
        }
        self.shared.persist_user_choices();
        if freed.is_empty() {
            return set;
        }
        let mut wanted = set.clone();
        wanted.extend(freed);
        graph::closure(env, &wanted).unwrap_or(set)
    }

    /// Whether `service` is stopped by the user, or waits for one that is.
    pub(super) fn stopped_by_user_or_waiting(&self, service: &str) -> bool {
        self.shared.held(service) || lock(&self.shared.parked).contains_key(service)
    }

    /// What the user stopped (`devenv stop`), and the services waiting for one of
    /// them, each with the one it waits for.
    pub fn user_stops(&self) -> (BTreeSet<String>, BTreeMap<String, String>) {
        (
            lock(&self.shared.held).clone(),
            lock(&self.shared.parked).clone(),
        )
    }

    /// The services waiting for one of `held` (stopped by the user).
    pub fn waiting_for_any(&self, held: &[String]) -> Vec<String> {
        lock(&self.shared.parked)
            .iter()
            .filter(|(_, h)| held.contains(h))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// What the user stopped and scaled, from the wanted record of an earlier daemon.
    pub fn restore_user_choices(&self, stopped: &[String], replicas: &BTreeMap<String, u32>) {
        lock(&self.shared.held).extend(stopped.iter().cloned());
        lock(&self.shared.scaled).extend(replicas.iter().map(|(k, v)| (k.clone(), *v)));
    }

    /// `down` forgets what the user stopped and scaled.
    pub(super) fn forget_user_choices(&self) {
        let held: Vec<String> = std::mem::take(&mut *lock(&self.shared.held))
            .into_iter()
            .collect();
        let parked: Vec<String> = std::mem::take(&mut *lock(&self.shared.parked))
            .into_keys()
            .collect();
        lock(&self.shared.scaled).clear();
        lock(&self.shared.stopped_replicas).clear();
        for name in held.iter().chain(&parked) {
            self.shared.update(name, |s| {
                s.state = ServiceState::Stopped;
                s.message = "stopped".into();
                s.replicas = None;
            });
        }
    }

    /// Takes a kubernetes service's workloads to 0 replicas, remembering the counts
    /// they had for its next start. A failure is said in its log; the service is
    /// stopped all the same (its runner is).
    async fn scale_to_zero(&self, name: &str) {
        let workloads = lock(&self.shared.workloads)
            .get(name)
            .cloned()
            .unwrap_or_default();
        let Some(conn) = self.kube.lock().await.clone() else {
            return;
        };
        for w in workloads.iter().filter(|w| scale::scalable(w)) {
            let key = format!("{}/{}", w.kind, w.name);
            let before = match scale::replicas(&conn, w).await {
                Ok((desired, _)) => desired,
                Err(e) => {
                    self.system(name, &format!("cannot read the replicas of {key}: {e}"));
                    continue;
                }
            };
            if before == 0 {
                continue;
            }
            match scale::set_replicas(&conn, w, 0).await {
                Ok(()) => {
                    lock(&self.shared.stopped_replicas)
                        .entry(name.to_owned())
                        .or_default()
                        .insert(key.clone(), before);
                    self.system(name, &format!("scaled {key} to 0 (was {before})"));
                }
                Err(e) => self.system(name, &format!("cannot scale {key} to 0: {e}")),
            }
        }
    }

    fn system(&self, service: &str, line: &str) {
        self.shared
            .logs
            .push(&Arc::from(service), Stream::System, line);
    }
}

/// The first held service in `name`'s dependency closure (itself excluded).
fn blocker(env: &Environment, name: &str, held: &BTreeSet<String>) -> Option<String> {
    graph::closure(env, &[name.to_owned()])
        .ok()?
        .into_iter()
        .find(|d| d != name && held.contains(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocker_is_a_held_dependency_transitively() {
        let env = crate::engine::testing::env(
            "    - name: db\n      command: run\n    - name: api\n      command: run\n      dependencies: [db]\n    - name: web\n      command: run\n      dependencies: [api]\n    - name: lone\n      command: run\n",
        );
        let held = BTreeSet::from(["db".to_string()]);
        assert_eq!(blocker(&env, "web", &held).as_deref(), Some("db"));
        assert_eq!(blocker(&env, "api", &held).as_deref(), Some("db"));
        assert_eq!(blocker(&env, "db", &held), None, "not its own blocker");
        assert_eq!(blocker(&env, "lone", &held), None);
        assert_eq!(waiting_for("db"), "waiting for db (stopped by user)");
    }
}
