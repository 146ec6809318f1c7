//! Readiness that can't be fooled by another process on a service's port: before a
//! local service starts, its ports and its probe's port must be free (or held by a
//! leftover of the service itself, which is killed); a probe that reaches a port
//! counts only when the listener is the service's own process.

use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::config::{Probe, Service};
use crate::ports::{self, InUse};

/// How long a killed leftover of the service gets to let go of its port.
const LEFTOVER_GRACE: Duration = Duration::from_secs(3);

/// The port a probe connects to, when it connects to this host.
pub(super) fn probe_port(probe: &Probe) -> Option<u16> {
    let (host, port) = match probe {
        Probe::Http { host, port, .. }
        | Probe::Tcp { host, port }
        | Probe::Postgres { host, port, .. }
        | Probe::Redis { host, port, .. } => (host, *port),
        Probe::Exec { .. } | Probe::Log { .. } => return None,
    };
    is_local(host).then_some(port)
}

fn is_local(host: &str) -> bool {
    matches!(
        host,
        "localhost" | "127.0.0.1" | "::1" | "[::1]" | "0.0.0.0" | "::" | ""
    ) || host.starts_with("127.")
}

/// The ports `svc` will listen on: its `ports` and its probe's port.
pub(super) fn wanted_ports(svc: &Service) -> Vec<u16> {
    let mut ports = svc.ports.clone();
    if let Some(p) = svc.readiness.as_ref().and_then(|r| probe_port(&r.probe)) {
        ports.push(p);
    }
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Checks that `ports` are free before the service starts. Listeners carrying the
/// service's `marker` are its own leftovers (a previous run's server that left the
/// process group): they are killed and waited for. Returns the first port another
/// process holds.
pub(super) async fn check_free(ports: Vec<u16>, marker: String) -> Option<InUse> {
    tokio::task::spawn_blocking(move || {
        let mut leftovers = Vec::new();
        for port in &ports {
            let Some(used) = ports::in_use(*port) else {
                continue;
            };
            let (ours, others): (Vec<_>, Vec<_>) = used
                .holders
                .iter()
                .partition(|h| is_leftover(h.pid, &marker));
            if !others.is_empty() || ours.is_empty() {
                return Some(InUse {
                    port: *port,
                    holders: others.into_iter().cloned().collect(),
                });
            }
            for h in ours {
                let _ = kill(Pid::from_raw(h.pid as i32), Signal::SIGKILL);
                leftovers.push(*port);
            }
        }
        let deadline = std::time::Instant::now() + LEFTOVER_GRACE;
        let mut step = Duration::from_millis(5);
        while let Some(&port) = leftovers.iter().find(|p| ports::in_use(**p).is_some()) {
            if std::time::Instant::now() >= deadline {
                return ports::in_use(port);
            }
            std::thread::sleep(step);
            step = (step * 2).min(Duration::from_millis(200));
        }
        None
    })
    .await
    .ok()
    .flatten()
}

/// Whether process `pid` is a leftover of this service: it carries the service's
/// marker (`instance/env-id/service`), from this daemon or from an earlier one that
/// was killed (its guardian may not have finished taking its processes down yet).
fn is_leftover(pid: u32, marker: &str) -> bool {
    fn service_part(m: &str) -> Option<&str> {
        m.split_once('/').map(|(_, rest)| rest)
    }
    ports::marker_of(pid).is_some_and(|m| {
        m == marker || (service_part(&m).is_some() && service_part(&m) == service_part(marker))
    })
}

/// Whether the listener on `port` is the service's process (its group `pgid`, or a
/// process carrying its `marker`); Err names who holds it instead. Ok when nothing
/// is seen listening (no /proc, or the port is reached through a NAT rule).
pub(super) async fn served_by_service(port: u16, pgid: i32, marker: String) -> Result<(), String> {
    tokio::task::spawn_blocking(move || {
        let Some(used) = ports::in_use(port) else {
            return Ok(());
        };
        if used
            .holders
            .iter()
            .any(|h| ports::belongs_to(h.pid, Some(pgid), &marker))
        {
            return Ok(());
        }
        Err(format!(
            "port {port} answers, but its listener is {}, not this service",
            used.who()
        ))
    })
    .await
    .unwrap_or(Ok(()))
}

/// The port a service's output says it listens on, when it names one other than
/// `probed` ("Serving HTTP on 0.0.0.0 port 8001", "Local: http://localhost:5173/",
/// "listening on 127.0.0.1:3000"); the last one said wins.
pub(super) fn port_in_logs(lines: &[String], probed: u16) -> Option<u16> {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(
            r"(?i)(?:\bport\s+|(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1?\]|\*):)(\d{2,5})\b",
        )
        .expect("valid regex")
    });
    let mut found = None;
    for line in lines {
        for c in re.captures_iter(line) {
            if let Some(p) = c.get(1).and_then(|m| m.as_str().parse::<u16>().ok()) {
                if p != 0 {
                    found = Some(p);
                }
            }
        }
    }
    found.filter(|p| *p != probed)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_port_a_service_prints_is_found_in_its_log() {
        let lines = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let python = lines(&["Serving HTTP on 0.0.0.0 port 8001 (http://0.0.0.0:8001/) ..."]);
        assert_eq!(port_in_logs(&python, 8000), Some(8001));
        assert_eq!(
            port_in_logs(&python, 8001),
            None,
            "the probed port: no hint"
        );
        let vite = lines(&[
            "  VITE v5.0.0  ready in 300 ms",
            "  ➜  Local:   http://localhost:5173/",
        ]);
        assert_eq!(port_in_logs(&vite, 3000), Some(5173));
        let node = lines(&["listening on 127.0.0.1:3001", "GET /health 200"]);
        assert_eq!(port_in_logs(&node, 3000), Some(3001));
        assert_eq!(port_in_logs(&lines(&["compiled in 3000 ms"]), 80), None);
    }

    use super::*;

    #[test]
    fn only_probes_of_this_host_have_a_port_to_check() {
        let tcp = |host: &str| Probe::Tcp {
            host: host.into(),
            port: 5432,
        };
        assert_eq!(probe_port(&tcp("localhost")), Some(5432));
        assert_eq!(probe_port(&tcp("127.0.0.1")), Some(5432));
        assert_eq!(probe_port(&tcp("db.example.com")), None);
        assert_eq!(
            probe_port(&Probe::Log {
                pattern: crate::config::LogPattern::new("x").expect("a regex")
            }),
            None
        );
    }

    #[tokio::test]
    #[cfg(target_os = "linux")]
    async fn a_port_held_by_another_process_is_named_and_not_the_services() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let used = check_free(vec![port], "no-such-marker".into())
            .await
            .expect("held");
        assert_eq!(used.holders[0].pid, std::process::id());
        let err = served_by_service(port, 1, "no-such-marker".into())
            .await
            .unwrap_err();
        assert!(
            err.starts_with(&format!(
                "port {port} answers, but its listener is pid {} (",
                std::process::id()
            )),
            "{err}"
        );
        let own = nix::unistd::getpgrp().as_raw();
        served_by_service(port, own, "x".into()).await.unwrap();
        drop(taken);
        assert_eq!(check_free(vec![port], "x".into()).await, None);
    }
}
