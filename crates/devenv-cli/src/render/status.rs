//! `devenv status`: the table and the stable `--json` contract.

use devenv_api::pb;
use serde::Serialize;

use super::color::{paint, state_code};
use super::table;

/// `devenv status --json`: a documented, stable shape. Add fields; never rename.
#[derive(Debug, Serialize)]
pub struct StatusJson<'a> {
    pub environment: &'a str,
    pub project: &'a str,
    /// `metadata.version`; `null` when the config sets none.
    pub version: Option<&'a str>,
    pub services: Vec<ServiceJson<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ServiceJson<'a> {
    pub name: &'a str,
    pub runtime: &'a str,
    pub state: &'static str,
    pub ready: bool,
    /// `null` when there is no process.
    pub pid: Option<u32>,
    pub ports: &'a [u32],
    pub restarts: u32,
    /// Of `restarts`, those that followed a crash (the rest were asked for).
    pub crashes: u32,
    pub message: &'a str,
    /// Its workload runs the dev version (dev mode).
    pub dev: bool,
    /// Why it is degraded ("dependency db is down"); `null` when it is not.
    pub degraded: Option<&'a str>,
    /// A kubernetes service scaled with `devenv scale`: `{"desired": 3, "ready": 2}`;
    /// `null` when not scaled.
    pub replicas: Option<ReplicasJson>,
    /// Its address through devenvd's local router, `http://SERVICE.ENV.localhost:PORT/`;
    /// `null` when it has no local port or the router is off.
    pub url: Option<&'a str>,
}

#[derive(Debug, Serialize)]
pub struct ReplicasJson {
    pub desired: u32,
    pub ready: u32,
}

impl<'a> From<&'a pb::ServiceStatus> for ServiceJson<'a> {
    fn from(s: &'a pb::ServiceStatus) -> Self {
        Self {
            name: &s.name,
            runtime: &s.runtime,
            state: s.state().label(),
            ready: s.ready,
            pid: (s.pid != 0).then_some(s.pid),
            ports: &s.ports,
            restarts: s.restarts,
            crashes: s.crashes,
            message: &s.message,
            dev: s.dev,
            degraded: (!s.degraded.is_empty()).then_some(s.degraded.as_str()),
            replicas: s.replicas.map(|r| ReplicasJson {
                desired: r.desired,
                ready: r.ready,
            }),
            url: (!s.url.is_empty()).then_some(s.url.as_str()),
        }
    }
}

pub fn json(status: &pb::StatusResponse) -> String {
    let doc = StatusJson {
        environment: &status.environment,
        project: &status.project,
        version: (!status.version.is_empty()).then_some(status.version.as_str()),
        services: status.services.iter().map(ServiceJson::from).collect(),
    };
    serde_json::to_string_pretty(&doc).expect("status JSON is always serialisable")
}

/// One service as a JSON line (`status --watch --json`).
pub fn json_line(service: &pb::ServiceStatus) -> String {
    serde_json::to_string(&ServiceJson::from(service)).expect("always serialisable")
}

/// The services an action changed (stop, restart, scale): `{"services": [...]}` with
/// `--json`, else the status table; nothing with `--quiet`.
pub fn print_services(out: &crate::context::Output, services: &[pb::ServiceStatus]) {
    if out.json {
        let services: Vec<_> = services.iter().map(ServiceJson::from).collect();
        outln!("{}", serde_json::json!({ "services": services }));
    } else if !out.quiet {
        print!("{}", table(services, out.color));
    }
}

pub fn table<'a>(services: impl IntoIterator<Item = &'a pb::ServiceStatus>, color: bool) -> String {
    let rows: Vec<Vec<String>> = services
        .into_iter()
        .map(|s| {
            let state = shown_state(s);
            let shown = if s.dev {
                format!("{} (dev)", paint(color, state_code(state), state))
            } else {
                paint(color, state_code(state), state)
            };
            vec![
                s.name.clone(),
                s.runtime.clone(),
                shown,
                pid(s.pid),
                ports(&s.ports),
                restarts(s),
                s.url.clone(),
                detail(s),
            ]
        })
        .collect();
    table::render(
        &[
            "NAME", "RUNTIME", "STATE", "PID", "PORTS", "RESTARTS", "URL", "MESSAGE",
        ],
        &rows,
    )
}

/// One line per change (`status --watch` when not a terminal).
pub fn change_line(s: &pb::ServiceStatus, width: usize, color: bool) -> String {
    let state = shown_state(s);
    let mut line = format!(
        "{:width$}  {}",
        s.name,
        paint(color, state_code(state), state)
    );
    if s.pid != 0 {
        line.push_str(&format!("  pid {}", s.pid));
    }
    if !s.ports.is_empty() {
        line.push_str(&format!("  ports {}", ports(&s.ports)));
    }
    if s.restarts != 0 {
        line.push_str(&format!("  restarts {}", restarts(s)));
    }
    let detail = detail(s);
    if !detail.is_empty() {
        line.push_str(&format!("  {detail}"));
    }
    line
}

/// The state word: `degraded` for a running service whose dependency is not fine.
pub fn shown_state(s: &pb::ServiceStatus) -> &'static str {
    if s.degraded.is_empty() {
        s.state().label()
    } else {
        "degraded"
    }
}

/// Restarts, with how many were crashes: `3 (2 crashes)`.
fn restarts(s: &pb::ServiceStatus) -> String {
    match s.crashes {
        0 => s.restarts.to_string(),
        1 => format!("{} (1 crash)", s.restarts),
        n => format!("{} ({n} crashes)", s.restarts),
    }
}

/// The message, unless it only repeats the state ("starting: starting"), and why the
/// service is degraded.
pub fn detail(s: &pb::ServiceStatus) -> String {
    let message = if s.message.eq_ignore_ascii_case(s.state().label()) {
        ""
    } else {
        s.message.as_str()
    };
    let text = match (message, s.degraded.as_str()) {
        (m, "") => m.to_string(),
        ("", d) => format!("degraded: {d}"),
        (m, d) => format!("degraded: {d}; {m}"),
    };
    match (s.replicas, text.as_str()) {
        (None, _) => text,
        (Some(r), "") => format!("replicas {}/{}", r.ready, r.desired),
        (Some(r), t) => format!("replicas {}/{}; {t}", r.ready, r.desired),
    }
}

fn pid(pid: u32) -> String {
    if pid == 0 {
        "-".to_string()
    } else {
        pid.to_string()
    }
}

fn ports(ports: &[u32]) -> String {
    if ports.is_empty() {
        return "-".to_string();
    }
    ports
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(name: &str, state: pb::ServiceState, pid: u32) -> pb::ServiceStatus {
        pb::ServiceStatus {
            name: name.into(),
            runtime: "local".into(),
            state: state as i32,
            ready: state == pb::ServiceState::Ready,
            pid,
            ports: if pid != 0 { vec![8000] } else { vec![] },
            restarts: 1,
            message: if pid == 0 {
                "exited with 1".into()
            } else {
                String::new()
            },
            url: if pid != 0 {
                format!("http://{name}.shop.localhost:7480/")
            } else {
                String::new()
            },
            ..Default::default()
        }
    }

    fn sample() -> pb::StatusResponse {
        pb::StatusResponse {
            environment: "shop".into(),
            project: "/src/shop".into(),
            version: "1.0".into(),
            services: vec![
                service("api", pb::ServiceState::Ready, 4242),
                service("worker", pb::ServiceState::Failed, 0),
            ],
        }
    }

    #[test]
    fn json_is_the_documented_contract() {
        let v: serde_json::Value = serde_json::from_str(&json(&sample())).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "environment": "shop",
                "project": "/src/shop",
                "version": "1.0",
                "services": [
                    {"name": "api", "runtime": "local", "state": "ready", "ready": true,
                     "pid": 4242, "ports": [8000], "restarts": 1, "crashes": 0, "message": "", "dev": false, "degraded": null, "replicas": null,
                     "url": "http://api.shop.localhost:7480/"},
                    {"name": "worker", "runtime": "local", "state": "failed", "ready": false,
                     "pid": null, "ports": [], "restarts": 1, "crashes": 0, "message": "exited with 1", "dev": false, "degraded": null, "replicas": null, "url": null},
                ]
            })
        );
    }

    #[test]
    fn table_has_every_column() {
        let out = table(&sample().services, false);
        let mut lines = out.lines();
        assert_eq!(
            lines.next().unwrap(),
            "NAME    RUNTIME  STATE   PID   PORTS  RESTARTS  URL                              MESSAGE"
        );
        assert_eq!(
            lines.next().unwrap(),
            "api     local    ready   4242  8000   1         http://api.shop.localhost:7480/"
        );
        assert_eq!(
            lines.next().unwrap(),
            "worker  local    failed  -     -      1                                          exited with 1"
        );
    }
}
