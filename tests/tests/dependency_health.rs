//! Dependents follow their dependencies' health: a killed dependency makes its running
//! dependents `degraded` (status, Watch, their log) until it is ready again, and a
//! dependent with `{db: {restart: true}}` restarts when the dependency comes back.

#[path = "../src/graph_support.rs"]
mod graph_support;

use std::time::Duration;

use devenv_e2e::{alive, free_ports, wait_until, TestEnv};
use graph_support::{config_head, service, system_events, Background};

fn degraded(status: &serde_json::Value, name: &str) -> Option<String> {
    service(status, name)["degraded"]
        .as_str()
        .map(str::to_string)
}

fn pid(status: &serde_json::Value, name: &str) -> u32 {
    service(status, name)["pid"].as_u64().unwrap_or(0) as u32
}

#[test]
fn a_killed_dependency_degrades_its_dependents_until_it_is_back() {
    let env = TestEnv::new();
    let port = free_ports(1)[0];
    // db waits while the file `hold` exists: the test decides how long it is down.
    env.write_config(&format!(
        "{}    - name: db
      command: while [ -e hold ]; do sleep 0.05; done; exec python3 -m http.server {port} --bind 127.0.0.1
      restart: on-failure
      readiness: {{ tcp: {{ port: {port} }}, periodSeconds: 0.2 }}
    - name: api
      command: exec sleep 1000
      dependencies: [db]
    - name: worker
      command: exec sleep 1000
      dependencies:
        db: {{ restart: true }}
    - name: web
      command: exec sleep 1000
      dependencies: [api]
",
        config_head("health")
    ));
    env.devenv_ok(&["up"]);
    let before = env.status_json();
    for name in ["db", "api", "worker", "web"] {
        assert_eq!(service(&before, name)["state"], "ready", "{before:#}");
        assert_eq!(degraded(&before, name), None, "{before:#}");
    }
    let watch = Background::spawn(&env, &["status", "--watch", "--json"]);
    // The watch is subscribed once it has printed the snapshot.
    assert!(
        wait_until(Duration::from_secs(20), || watch
            .output()
            .contains("\"web\"")),
        "status --watch printed nothing\n{}",
        watch.output()
    );

    std::fs::write(env.project.join("hold"), "").expect("write hold");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid(&before, "db") as i32),
        nix::sys::signal::SIGKILL,
    )
    .expect("kill db");
    let mut during = before.clone();
    let seen = wait_until(Duration::from_secs(20), || {
        during = env.status_json();
        degraded(&during, "api").as_deref() == Some("dependency db is down")
            && degraded(&during, "web").as_deref() == Some("dependency api is degraded")
    });
    assert!(
        seen,
        "dependents not degraded while db is down:\n{during:#}"
    );
    // Its own process is fine: the state stays what its probe says.
    assert_eq!(service(&during, "api")["state"], "ready", "{during:#}");
    assert_eq!(
        degraded(&during, "worker").as_deref(),
        Some("dependency db is down")
    );
    let text = env.devenv_ok(&["status"]).stdout;
    let api_line = text
        .lines()
        .find(|l| l.starts_with("api "))
        .unwrap_or_else(|| panic!("no api line:\n{text}"));
    assert!(
        api_line.contains("degraded") && api_line.contains("degraded: dependency db is down"),
        "status does not show api degraded:\n{text}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || watch
            .output()
            .contains("\"degraded\":\"dependency db is down\"")),
        "Watch did not report api degraded\n{}",
        watch.output()
    );

    std::fs::remove_file(env.project.join("hold")).expect("remove hold");
    let mut after = during.clone();
    let back = wait_until(Duration::from_secs(30), || {
        after = env.status_json();
        ["db", "api", "worker", "web"]
            .iter()
            .all(|n| service(&after, n)["state"] == "ready" && degraded(&after, n).is_none())
            && pid(&after, "worker") != pid(&before, "worker")
    });
    assert!(back, "not all back to ready, not degraded:\n{after:#}");
    // restart: true restarted worker; api and web (plain dependencies) kept running.
    assert!(alive(pid(&after, "worker")), "{after:#}");
    assert_eq!(pid(&after, "api"), pid(&before, "api"), "{after:#}");
    assert_eq!(pid(&after, "web"), pid(&before, "web"), "{after:#}");
    assert_eq!(service(&after, "worker")["crashes"], 0, "{after:#}");
    assert_eq!(service(&after, "worker")["restarts"], 1, "{after:#}");
    assert_eq!(service(&after, "db")["crashes"], 1, "{after:#}");

    let events = system_events(&env);
    let api_lines: Vec<&str> = events
        .iter()
        .filter(|e| e.service == "api")
        .map(|e| e.line.as_str())
        .collect();
    let down_at = api_lines
        .iter()
        .position(|l| *l == "degraded: dependency db is down");
    let back_at = api_lines
        .iter()
        .position(|l| l.starts_with("no longer degraded"));
    assert!(
        matches!((down_at, back_at), (Some(d), Some(b)) if d < b),
        "api's log does not say degraded, then back: {api_lines:?}"
    );
    assert!(
        events.iter().any(|e| e.service == "worker"
            && e.line == "restarting: dependency db restarted (restart: true)"),
        "worker's log does not say why it restarted"
    );
    drop(watch);
    env.devenv_ok(&["down"]);
}
