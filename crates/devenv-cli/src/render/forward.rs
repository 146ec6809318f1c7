//! `devenv forward ls`: the table and the stable `--json` contract:
//! `{"forwards": [{"service", "local_port", "remote_port", "state", "pod",
//! "connections", "active_connections", "bytes_in", "bytes_out", "reconnects",
//! "last_error"}]}`, `state` one of `active|waiting|error|stopped`, `pod` and
//! `last_error` null when there is none. Add fields; never rename.

use devenv_api::pb::{self, ForwardState as S};
use serde::Serialize;

use super::color::{paint, DIM, GREEN, RED, YELLOW};
use super::table;

#[derive(Debug, Serialize)]
pub struct ForwardJson<'a> {
    pub service: &'a str,
    pub local_port: u32,
    pub remote_port: u32,
    pub state: &'static str,
    pub pod: Option<&'a str>,
    pub connections: u64,
    pub active_connections: u32,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub reconnects: u32,
    pub last_error: Option<&'a str>,
}

pub fn state_label(s: S) -> &'static str {
    match s {
        S::Unspecified => "unknown",
        S::Active => "active",
        S::Waiting => "waiting",
        S::Error => "error",
        S::Stopped => "stopped",
    }
}

fn state_code(s: S) -> &'static str {
    match s {
        S::Active => GREEN,
        S::Waiting => YELLOW,
        S::Error => RED,
        S::Stopped | S::Unspecified => DIM,
    }
}

fn non_empty(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

impl<'a> From<&'a pb::Forward> for ForwardJson<'a> {
    fn from(f: &'a pb::Forward) -> Self {
        Self {
            service: &f.service,
            local_port: f.local_port,
            remote_port: f.remote_port,
            state: state_label(f.state()),
            pod: non_empty(&f.pod),
            connections: f.connections,
            active_connections: f.active_connections,
            bytes_in: f.bytes_in,
            bytes_out: f.bytes_out,
            reconnects: f.reconnects,
            last_error: non_empty(&f.last_error),
        }
    }
}

pub fn json(forwards: &[pb::Forward]) -> String {
    let doc = serde_json::json!({
        "forwards": forwards.iter().map(ForwardJson::from).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&doc).expect("forward JSON is always serialisable")
}

pub fn table(forwards: &[pb::Forward], color: bool) -> String {
    let rows: Vec<Vec<String>> = forwards
        .iter()
        .map(|f| {
            let state = f.state();
            vec![
                f.service.clone(),
                format!("localhost:{}", f.local_port),
                f.remote_port.to_string(),
                paint(color, state_code(state), state_label(state)),
                non_empty(&f.pod).unwrap_or("-").to_string(),
                format!("{} ({} open)", f.connections, f.active_connections),
                f.reconnects.to_string(),
                f.last_error.clone(),
            ]
        })
        .collect();
    table::render(
        &[
            "SERVICE",
            "LOCAL",
            "REMOTE",
            "STATE",
            "POD",
            "CONNECTIONS",
            "RECONNECTS",
            "ERROR",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> pb::Forward {
        pb::Forward {
            service: "web".into(),
            local_port: 8080,
            remote_port: 80,
            state: S::Active as i32,
            pod: "web-7d9c-abcde".into(),
            connections: 12,
            active_connections: 1,
            bytes_in: 100,
            bytes_out: 2000,
            reconnects: 2,
            last_error: String::new(),
        }
    }

    #[test]
    fn json_is_the_documented_contract() {
        let v: serde_json::Value = serde_json::from_str(&json(&[sample()])).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"forwards": [{
                "service": "web", "local_port": 8080, "remote_port": 80, "state": "active",
                "pod": "web-7d9c-abcde", "connections": 12, "active_connections": 1,
                "bytes_in": 100, "bytes_out": 2000, "reconnects": 2, "last_error": null,
            }]})
        );
        let v: serde_json::Value = serde_json::from_str(&json(&[])).unwrap();
        assert_eq!(v, serde_json::json!({"forwards": []}));
    }

    #[test]
    fn table_row() {
        let out = table(&[sample()], false);
        assert_eq!(
            out.lines().nth(1).unwrap(),
            "web      localhost:8080  80      active  web-7d9c-abcde  12 (1 open)  2"
        );
    }
}
