//! Dependents follow their dependencies' health: while a service runs, a dependency
//! that is down, failed or unhealthy (or itself degraded) makes it `degraded` in its
//! status ("dependency db is down") and says so in its log, until the dependency is
//! ready again. A dependency marked `{restart: true}` restarts its dependents when it
//! comes back after having been down (compose's `depends_on.restart`).
//!
//! One task per environment while it is up, owned by [`LiveEnv`]: it follows the
//! status board's change events, so nothing is polled.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::runtime::{Background, LiveEnv};
use super::supervisor::Ctl;
use crate::config::Environment;
use crate::logs::Stream;
use crate::status::{ServiceState, ServiceStatus};

impl LiveEnv {
    /// Starts the dependency health follower unless it runs.
    pub(super) async fn ensure_health(self: &Arc<Self>) {
        let mut slot = self.health.lock().await;
        if slot.as_ref().is_some_and(|h| h.is_running()) {
            return;
        }
        let rx = self.shared.events.subscribe();
        let rt = Arc::downgrade(self);
        *slot = Some(Background::spawn(|stop| follow(rt, rx, stop)));
    }
}

async fn follow(
    rt: Weak<LiveEnv>,
    mut rx: broadcast::Receiver<ServiceStatus>,
    stop: CancellationToken,
) {
    let mut last: HashMap<String, ServiceState> = HashMap::new();
    // Services that were ready and then went down: their next `ready` is a restart.
    let mut went_down: HashSet<String> = HashSet::new();
    loop {
        let changed = tokio::select! {
            _ = stop.cancelled() => return,
            r = rx.recv() => match r {
                Ok(s) => Some(s),
                // Missed changes: the board is read whole below all the same.
                Err(broadcast::error::RecvError::Lagged(_)) => None,
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        let Some(rt) = rt.upgrade() else { return };
        let Some(env) = rt.config() else { continue };
        let mut restarted = None;
        if let Some(s) = &changed {
            let before = last.insert(s.name.clone(), s.state);
            match s.state {
                ServiceState::Ready if went_down.remove(&s.name) => {
                    restarted = Some(s.name.clone())
                }
                ServiceState::Ready | ServiceState::Unhealthy | ServiceState::Completed => {}
                _ if matches!(before, Some(ServiceState::Ready | ServiceState::Unhealthy)) => {
                    went_down.insert(s.name.clone());
                }
                _ => {}
            }
        }
        let statuses: HashMap<String, ServiceStatus> = rt
            .statuses()
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        if let Some(dep) = restarted {
            restart_dependents(&rt, &env, &statuses, &dep);
        }
        for (name, reason) in degraded(&env, &statuses) {
            let Some(now) = statuses.get(&name) else {
                continue;
            };
            if now.degraded == reason {
                continue;
            }
            let line = match &reason {
                Some(r) => format!("degraded: {r}"),
                None => "no longer degraded: its dependencies are ready".to_string(),
            };
            rt.shared
                .logs
                .push(&Arc::from(name.as_str()), Stream::System, &line);
            rt.shared.update(&name, |s| s.degraded = reason);
        }
    }
}

/// Restarts the running dependents that have `{dep: {restart: true}}`.
fn restart_dependents(
    rt: &LiveEnv,
    env: &Environment,
    statuses: &HashMap<String, ServiceStatus>,
    dep: &str,
) {
    for svc in env
        .services
        .iter()
        .filter(|s| s.restart_with.iter().any(|d| d == dep))
    {
        let running = statuses
            .get(&svc.name)
            .is_some_and(|s| s.state.is_active() && s.state != ServiceState::Stopping);
        if !running {
            continue;
        }
        let ctl = {
            let sups = rt.supervisors.lock().unwrap_or_else(|p| p.into_inner());
            sups.get(&svc.name)
                .filter(|s| !s.task.is_finished())
                .map(|s| s.ctl.clone())
        };
        if let Some(ctl) = ctl {
            rt.shared.logs.push(
                &Arc::from(svc.name.as_str()),
                Stream::System,
                &format!("restarting: dependency {dep} restarted (restart: true)"),
            );
            // A full queue means a restart is already on its way.
            let _ = ctl.try_send(Ctl::Restart);
        }
    }
}

/// Why each service is degraded now (None: it is not), from the states of its
/// dependencies. Only a running service (starting, ready, unhealthy) is degraded; a
/// dependency that is itself degraded passes it on.
pub(super) fn degraded(
    env: &Environment,
    statuses: &HashMap<String, ServiceStatus>,
) -> HashMap<String, Option<String>> {
    let mut memo: HashMap<String, Option<String>> = HashMap::new();
    for svc in &env.services {
        reason(env, statuses, &svc.name, &mut memo);
    }
    memo
}

fn reason(
    env: &Environment,
    statuses: &HashMap<String, ServiceStatus>,
    name: &str,
    memo: &mut HashMap<String, Option<String>>,
) -> Option<String> {
    if let Some(r) = memo.get(name) {
        return r.clone();
    }
    let running = statuses.get(name).is_some_and(|s| {
        matches!(
            s.state,
            ServiceState::Starting | ServiceState::Ready | ServiceState::Unhealthy
        )
    });
    let mut out = None;
    if let (true, Some(svc)) = (running, env.service(name)) {
        for dep in &svc.dependencies {
            let (Some(d), Some(st)) = (env.service(dep), statuses.get(dep)) else {
                continue;
            };
            let trouble = if d.oneshot {
                (st.state == ServiceState::Failed).then(|| format!("dependency {dep} failed"))
            } else {
                match st.state {
                    ServiceState::Ready => reason(env, statuses, dep, memo)
                        .map(|_| format!("dependency {dep} is degraded")),
                    ServiceState::Unhealthy => Some(format!("dependency {dep} is unhealthy")),
                    _ => Some(format!("dependency {dep} is down")),
                }
            };
            if trouble.is_some() {
                out = trouble;
                break;
            }
        }
    }
    memo.insert(name.to_owned(), out.clone());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Environment {
        super::super::testing::env(
            "    - name: db\n      command: run\n    - name: migrate\n      command: run\n      oneshot: true\n      dependencies: [db]\n    - name: api\n      command: run\n      dependencies: [migrate, db]\n    - name: web\n      command: run\n      dependencies: [api]\n",
        )
    }

    fn board(states: &[(&str, ServiceState)]) -> HashMap<String, ServiceStatus> {
        states
            .iter()
            .map(|(n, st)| {
                let mut s = ServiceStatus::new(n, "local", vec![]);
                s.state = *st;
                (n.to_string(), s)
            })
            .collect()
    }

    #[test]
    fn a_down_dependency_degrades_its_running_dependents_transitively() {
        use ServiceState::*;
        let env = env();
        let all_fine = board(&[
            ("db", Ready),
            ("migrate", Completed),
            ("api", Ready),
            ("web", Ready),
        ]);
        assert!(degraded(&env, &all_fine).values().all(Option::is_none));

        let db_down = board(&[
            ("db", Starting),
            ("migrate", Completed),
            ("api", Ready),
            ("web", Ready),
        ]);
        let r = degraded(&env, &db_down);
        assert_eq!(r["api"].as_deref(), Some("dependency db is down"));
        assert_eq!(r["web"].as_deref(), Some("dependency api is degraded"));
        assert_eq!(r["db"], None);
        // A completed oneshot is fine whatever its own dependency does.
        assert_eq!(r["migrate"], None);

        let unhealthy = board(&[
            ("db", Unhealthy),
            ("migrate", Completed),
            ("api", Unhealthy),
            ("web", Stopped),
        ]);
        let r = degraded(&env, &unhealthy);
        assert_eq!(r["api"].as_deref(), Some("dependency db is unhealthy"));
        assert_eq!(r["web"], None, "a stopped service is not degraded");

        let migrate_failed = board(&[
            ("db", Ready),
            ("migrate", Failed),
            ("api", Ready),
            ("web", Ready),
        ]);
        let r = degraded(&env, &migrate_failed);
        assert_eq!(r["api"].as_deref(), Some("dependency migrate failed"));
    }
}
