//! Readiness and health of a container: devenv's probe when the service has one (run
//! against the container's address on its network; an `exec` probe runs inside it),
//! else the image's HEALTHCHECK (the engine's health events), else ready when started.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bollard::Docker;
use futures::{Stream, StreamExt};

use crate::config::{Probe, Readiness, Service};
use crate::logs::{LogHub, Received, Stream as LogStream};
use crate::probe::{self, Backoff, ExecContext};

pub(super) type Events = Pin<Box<dyn Stream<Item = String> + Send>>;

#[derive(Clone)]
pub(super) struct Waiter {
    pub docker: Docker,
    pub id: String,
    pub svc: Service,
    pub logs: LogHub,
}

pub(super) struct Probing {
    waiter: Waiter,
    probe: Probe,
    readiness: Readiness,
    failures: u32,
    unhealthy: bool,
}

/// What watches health once the container is ready.
pub(super) enum Monitor {
    Probe(Box<Probing>),
    HealthCheck(Events),
    Nothing,
}

impl Waiter {
    /// The container's address on the environment's network.
    async fn address(&self) -> Result<String, String> {
        let found = self
            .docker
            .inspect_container(&self.id, None)
            .await
            .map_err(|e| format!("inspect container: {e}"))?;
        found
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|n| {
                n.into_values()
                    .find_map(|e| e.ip_address.filter(|ip| !ip.is_empty()))
            })
            .ok_or_else(|| "the container has no network address".to_owned())
    }

    /// Whether the image (or config) defines a HEALTHCHECK.
    async fn has_healthcheck(&self) -> bool {
        let Ok(found) = self.docker.inspect_container(&self.id, None).await else {
            return false;
        };
        found
            .config
            .and_then(|c| c.healthcheck)
            .and_then(|h| h.test)
            .is_some_and(|t| t.first().is_some_and(|f| f != "NONE"))
    }

    /// The service's probe aimed at the container: network probes at its address.
    fn aim(probe: &Probe, address: &str) -> Probe {
        let mut p = probe.clone();
        match &mut p {
            Probe::Http { host, .. }
            | Probe::Tcp { host, .. }
            | Probe::Postgres { host, .. }
            | Probe::Redis { host, .. } => *host = address.to_owned(),
            Probe::Exec { .. } | Probe::Log { .. } => {}
        }
        p
    }

    async fn check(&self, probe: &Probe, limit: Duration) -> Result<(), String> {
        match probe {
            Probe::Exec { command } => {
                let run =
                    crate::docker::exec::run(&self.docker, &self.id, super::spec::argv(command));
                match tokio::time::timeout(limit, run).await {
                    Err(_) => Err(format!(
                        "exec probe timed out after {}ms",
                        limit.as_millis()
                    )),
                    Ok(Err(e)) => Err(e.to_string()),
                    Ok(Ok((0, _))) => Ok(()),
                    Ok(Ok((code, out))) => {
                        Err(format!("exec probe exited with {code}: {}", out.trim()))
                    }
                }
            }
            other => {
                let ctx = ExecContext {
                    workdir: std::env::temp_dir(),
                    env: Default::default(),
                };
                probe::check(other, &ctx, limit)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// Waits until the container is ready; returns what monitors its health from then on.
pub(super) async fn until_ready(w: Waiter, mut events: Events) -> Result<Monitor, String> {
    let Some(r) = w.svc.readiness.clone() else {
        if !w.has_healthcheck().await {
            return Ok(Monitor::Nothing);
        }
        let limit = w.svc.start_deadline();
        let healthy = async {
            while let Some(action) = events.next().await {
                match action.trim_start_matches("health_status:").trim() {
                    "healthy" => return Ok(()),
                    "unhealthy" => {
                        return Err("the image's HEALTHCHECK reports unhealthy".to_owned())
                    }
                    _ => {}
                }
            }
            Err("lost the engine's events".to_owned())
        };
        return match tokio::time::timeout(limit, healthy).await {
            Ok(Ok(())) => Ok(Monitor::HealthCheck(events)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "the image's HEALTHCHECK did not pass within {}s",
                limit.as_secs()
            )),
        };
    };
    let deadline = tokio::time::Instant::now() + r.deadline();
    tokio::time::sleep(r.initial_delay).await;
    if let Probe::Log { pattern } = &r.probe {
        let service: Arc<str> = Arc::from(w.svc.name.as_str());
        let mut follower = w.logs.follow(Some(vec![service.clone()]));
        let seen_before = |logs: &LogHub| {
            logs.last_lines(&service, 1000)
                .iter()
                .any(|l| pattern.is_match(l))
        };
        let seen = async {
            if seen_before(&w.logs) {
                return Ok(());
            }
            while let Some(item) = follower.recv().await {
                match item {
                    Received::Lines(lines) => {
                        if lines.iter().any(|l| {
                            l.service == service
                                && l.stream != LogStream::System
                                && pattern.is_match(&l.text)
                        }) {
                            return Ok(());
                        }
                    }
                    Received::Missed(_) => {
                        if seen_before(&w.logs) {
                            return Ok(());
                        }
                    }
                }
            }
            Err("log stream closed".to_owned())
        };
        return match tokio::time::timeout_at(deadline, seen).await {
            Ok(Ok(())) => Ok(Monitor::Nothing),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!(
                "no output line matched /{pattern}/ within {}s",
                r.timeout.as_secs_f64()
            )),
        };
    }
    let address = w.address().await?;
    let aimed = Waiter::aim(&r.probe, &address);
    let mut backoff = Backoff::new(r.period);
    loop {
        let limit = r.period.max(Duration::from_secs(1));
        let last_err = match w.check(&aimed, limit).await {
            Ok(()) => {
                return Ok(Monitor::Probe(Box::new(Probing {
                    waiter: w,
                    probe: aimed,
                    readiness: r,
                    failures: 0,
                    unhealthy: false,
                })))
            }
            Err(e) => e,
        };
        let next = tokio::time::Instant::now() + backoff.next_delay();
        if next >= deadline {
            return Err(format!(
                "readiness probe did not pass within {}s: {last_err}",
                r.timeout.as_secs_f64()
            ));
        }
        tokio::time::sleep_until(next).await;
    }
}

impl Monitor {
    /// Waits for the next change of health: `Some(reason)` unhealthy, `None` healthy
    /// again.
    pub(super) async fn next(&mut self) -> Option<String> {
        match self {
            Monitor::Nothing => std::future::pending().await,
            Monitor::HealthCheck(events) => loop {
                match events.next().await {
                    Some(a) if a.ends_with("unhealthy") => {
                        return Some("the image's HEALTHCHECK reports unhealthy".into())
                    }
                    Some(a) if a.ends_with("healthy") => return None,
                    Some(_) => {}
                    None => std::future::pending().await,
                }
            },
            Monitor::Probe(p) => loop {
                let Probing {
                    waiter,
                    probe,
                    readiness,
                    failures,
                    unhealthy,
                } = &mut **p;
                tokio::time::sleep(readiness.period).await;
                let limit = readiness.period.max(Duration::from_secs(1));
                match waiter.check(probe, limit).await {
                    Ok(()) => {
                        *failures = 0;
                        if *unhealthy {
                            *unhealthy = false;
                            return None;
                        }
                    }
                    Err(e) => {
                        *failures += 1;
                        if !*unhealthy && *failures >= readiness.failure_threshold {
                            *unhealthy = true;
                            return Some(format!("probe failing {} times: {e}", failures));
                        }
                    }
                }
            },
        }
    }
}
