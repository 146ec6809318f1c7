//! `/healthz` and `/readyz` for scripts and monitors: no session needed (the Host
//! check still applies), so they say nothing beyond the daemon's version,
//! environment and service names, and states: no paths, no config, no token.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse as _, Response};
use http::{header, HeaderValue, StatusCode};
use serde_json::json;

use super::WebState;

/// `GET /healthz`: the daemon is alive.
pub async fn healthz() -> Response {
    json_response(
        StatusCode::OK,
        &json!({"status": "ok", "version": devenv_api::VERSION}),
    )
}

#[derive(Debug, serde::Deserialize)]
pub struct ReadyQuery {
    env: Option<String>,
    /// `stopped=ok`: what the user stopped, and what waits for it, does not count.
    stopped: Option<String>,
}

/// `GET /readyz[?env=NAME][&stopped=ok]`: 200 when every service of the environment
/// named NAME (without `env`: of every environment that has a service running) is
/// ready or completed, else 503. An environment the daemon does not know is not
/// ready. A service the user stopped (`devenv stop`) is not ready: the environment
/// does not serve what its config says (its dependents wait), so a script waiting for
/// it waits; it shows as `"state": "stopped", "stoppedByUser": true`, those waiting
/// for it as `"state": "pending", "waitingFor": NAME`, and the environment lists them
/// in `stoppedByUser`, so a monitor tells a deliberate stop from a failure. With
/// `stopped=ok` (a monitor that should not page for a deliberate stop) they do not
/// count, and the rest decides.
pub async fn readyz(State(web): State<Arc<WebState>>, query: Query<ReadyQuery>) -> Response {
    let stopped_ok = query.0.stopped.as_deref() == Some("ok");
    let wanted = query.0.env.filter(|e| !e.is_empty());
    let mut environments = Vec::new();
    let mut ready = true;
    for rt in web.engine.environments() {
        let statuses = rt.statuses();
        let chosen = match &wanted {
            Some(name) => rt.name() == name,
            None => statuses.iter().any(|s| s.state.is_active()),
        };
        if !chosen {
            continue;
        }
        let (held, parked) = rt.user_stops();
        let excused = |name: &str| stopped_ok && (held.contains(name) || parked.contains_key(name));
        ready &= statuses
            .iter()
            .all(|s| s.state.satisfies_dependents() || excused(&s.name));
        let services: Vec<_> = statuses
            .iter()
            .map(|s| {
                let mut v = json!({"name": s.name, "state": s.state});
                if held.contains(&s.name) {
                    v["stoppedByUser"] = json!(true);
                }
                if let Some(by) = parked.get(&s.name) {
                    v["waitingFor"] = json!(by);
                }
                v
            })
            .collect();
        environments.push(json!({
            "name": rt.name(),
            "env": rt.env_name,
            "services": services,
            "stoppedByUser": held,
        }));
    }
    if wanted.is_some() && environments.is_empty() {
        ready = false;
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({"ready": ready, "environments": environments}),
    )
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
