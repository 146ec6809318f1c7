//! Readiness probes: one probe kind plus timing, with ports defaulting to the service's
//! first port so the common case is one line (`readiness: { path: / }`).

use std::time::Duration;

use super::check::Checker;
use super::limits;
use super::model::{LogPattern, PortSpec, Probe, Readiness};
use super::raw::{RawPortRef, RawReadiness};
use super::service::port_ref;

const DEFAULT_HOST: &str = "127.0.0.1";

fn probe_port(
    c: &mut Checker<'_>,
    path: &str,
    explicit: Option<RawPortRef>,
    ports: &[PortSpec],
) -> Option<u16> {
    match explicit {
        Some(r) => port_ref(c, &format!("{path}.port"), r, ports),
        // The probe reaches the process or container: the target port.
        None => match ports.first() {
            Some(p) => Some(p.target_port),
            None => {
                c.error(
                    path,
                    "the probe has no port and the service lists no `ports`".into(),
                    Some("set `port:` on the probe, or add `ports: [N]` to the service".into()),
                );
                None
            }
        },
    }
}

fn seconds(
    c: &mut Checker<'_>,
    path: &str,
    value: Option<f64>,
    default: f64,
    allow_zero: bool,
) -> Duration {
    let Some(v) = value else {
        return Duration::from_secs_f64(default);
    };
    let ok =
        v.is_finite() && v <= limits::MAX_SECONDS && if allow_zero { v >= 0.0 } else { v > 0.0 };
    match (ok, Duration::try_from_secs_f64(v)) {
        (true, Ok(d)) => d,
        _ => {
            let bound = if allow_zero {
                "0 or more"
            } else {
                "more than 0"
            };
            c.error(
                path,
                format!(
                    "expected a number of seconds, {bound} and at most {} (one day)",
                    limits::MAX_SECONDS
                ),
                None,
            );
            Duration::from_secs_f64(default)
        }
    }
}

/// Shortens regex's multi-line report (pattern, caret, message) to its message.
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .unwrap_or(text.trim())
        .to_owned()
}

pub(crate) fn check(
    c: &mut Checker<'_>,
    path: &str,
    raw: RawReadiness,
    ports: &[PortSpec],
) -> Option<Readiness> {
    let shorthand = raw.path.is_some() || raw.port.is_some();
    let kinds: Vec<&str> = [
        ("http", raw.http.is_some()),
        ("tcp", raw.tcp.is_some()),
        ("exec", raw.exec.is_some()),
        ("log", raw.log.is_some()),
        ("path", shorthand),
    ]
    .into_iter()
    .filter_map(|(k, set)| set.then_some(k))
    .collect();
    if kinds.len() > 1 {
        c.error(
            &format!("{path}.{}", kinds[1]),
            format!(
                "readiness has more than one probe ({}); keep one",
                kinds
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            None,
        );
        return None;
    }
    let probe = if let Some(http) = raw.http {
        let at = format!("{path}.http");
        Probe::Http {
            host: http.host.unwrap_or_else(|| DEFAULT_HOST.into()),
            port: probe_port(c, &at, http.port, ports)?,
            path: http.path.unwrap_or_else(|| "/".into()),
        }
    } else if let Some(tcp) = raw.tcp {
        let at = format!("{path}.tcp");
        Probe::Tcp {
            host: tcp.host.unwrap_or_else(|| DEFAULT_HOST.into()),
            port: probe_port(c, &at, tcp.port, ports)?,
        }
    } else if let Some(exec) = raw.exec {
        Probe::Exec {
            command: c.command(&format!("{path}.exec.command"), exec.command)?,
        }
    } else if let Some(log) = raw.log {
        match LogPattern::new(&log.pattern) {
            Ok(pattern) => Probe::Log { pattern },
            Err(e) => {
                c.error(
                    &format!("{path}.log.pattern"),
                    format!("invalid regular expression: {}", regex_reason(&e)),
                    Some("the pattern is a Rust regex; escape special characters with `\\`".into()),
                );
                return None;
            }
        }
    } else if shorthand {
        Probe::Http {
            host: DEFAULT_HOST.into(),
            port: probe_port(c, path, raw.port, ports)?,
            path: raw.path.unwrap_or_else(|| "/".into()),
        }
    } else {
        c.error(
            path,
            "readiness has no probe".into(),
            Some("add one of `http: {path: /, port: N}`, `tcp: {port: N}`, `exec: {command: ...}` or `log: {pattern: ...}`".into()),
        );
        return None;
    };
    let failure_threshold = match raw.failure_threshold {
        None => 3,
        Some(n) => match u32::try_from(n) {
            Ok(n) if n > 0 => n,
            _ => {
                c.error(
                    &format!("{path}.failureThreshold"),
                    format!("failureThreshold must be 1 or more, found {n}"),
                    None,
                );
                return None;
            }
        },
    };
    Some(Readiness {
        probe,
        initial_delay: seconds(
            c,
            &format!("{path}.initialDelaySeconds"),
            raw.initial_delay_seconds,
            0.0,
            true,
        ),
        period: seconds(
            c,
            &format!("{path}.periodSeconds"),
            raw.period_seconds,
            1.0,
            false,
        ),
        timeout: seconds(
            c,
            &format!("{path}.timeoutSeconds"),
            raw.timeout_seconds,
            60.0,
            false,
        ),
        failure_threshold,
    })
}
