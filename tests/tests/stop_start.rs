//! `devenv stop` / `start` / `scale` through the real daemon and CLI: a stopped
//! service's dependents wait in `pending` and come back when it is started; `start`
//! brings a stopped dependency along; a stop survives a SIGKILLed daemon's recovery;
//! neither a watch rule nor a restart policy runs a stopped service again; `up`
//! starts what was stopped; `scale` of a local service is refused; unknown services
//! exit 2 naming the known ones.

#[path = "../src/graph_support.rs"]
mod graph_support;

use std::collections::BTreeMap;
use std::time::Duration;

use devenv_e2e::{free_ports, port_open, wait_until, TestEnv};
use graph_support::{config_head, system_events, try_status};
use serde_json::Value;

const WAITING: &str = "waiting for db (stopped by user)";

/// Service name -> (state, message) from a parsed `status --json`.
fn states(status: &Value) -> BTreeMap<String, (String, String)> {
    status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                (
                    s["state"].as_str().unwrap_or_default().to_string(),
                    s["message"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect()
}

fn pair(state: &str, message: &str) -> (String, String) {
    (state.to_string(), message.to_string())
}

/// db stopped by the user, api and web waiting for it.
fn assert_db_stopped_and_dependents_waiting(s: &BTreeMap<String, (String, String)>) {
    assert_eq!(s["db"], pair("stopped", "stopped by user"), "{s:?}");
    assert_eq!(s["api"], pair("pending", WAITING), "{s:?}");
    assert_eq!(s["web"], pair("pending", WAITING), "{s:?}");
}

fn all_ready(env: &TestEnv) -> bool {
    env.states().values().all(|s| s == "ready")
}

#[test]
fn stop_makes_dependents_wait_and_start_brings_them_back() {
    let mut env = TestEnv::new();
    let (db, api, web) = env.quickstart();
    env.devenv_ok(&["up"]);

    let out = env.devenv_ok(&["--json", "stop", "db"]);
    let reply: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("stop --json is not JSON ({e})\n{out}"));
    let replied = states(&reply);
    assert_db_stopped_and_dependents_waiting(&replied);
    // Stopped, not failed: nothing of them runs.
    assert_db_stopped_and_dependents_waiting(&states(&env.status_json()));
    assert!(env.service_pids().is_empty(), "{:?}", env.service_pids());
    assert!(![db, api, web].iter().any(|p| port_open(*p)));
    // The dependents were stopped before db (reverse dependency order).
    let events = system_events(&env);
    let at = |svc: &str, line: &str| {
        events
            .iter()
            .rposition(|e| e.service == svc && e.line == line)
            .unwrap_or_else(|| panic!("no `{line}` of {svc}: {events:?}"))
    };
    assert!(at("api", "stopped") < at("db", "stopped"));
    assert!(at("api", WAITING) > 0 && at("db", "stopped by user") > 0);

    // Starting db brings api and web back by themselves, readiness-gated.
    let out = env.devenv_ok(&["start", "db"]);
    assert!(out.stdout.contains("ready"), "{out}");
    assert!(all_ready(&env), "{:?}", env.states());
    assert!([db, api, web].iter().all(|p| port_open(*p)));
    env.devenv_ok(&["down"]);
}

#[test]
fn start_of_a_service_starts_its_stopped_dependency_and_up_starts_what_was_stopped() {
    let mut env = TestEnv::new();
    let (db, api, _) = env.quickstart();
    env.devenv_ok(&["up"]);
    env.devenv_ok(&["stop", "db"]);

    env.devenv_ok(&["start", "api"]);
    let s = states(&env.status_json());
    assert_eq!(s["db"].0, "ready", "{s:?}");
    assert_eq!(s["api"].0, "ready", "{s:?}");
    assert_eq!(s["web"].0, "ready", "waited only for db: {s:?}");
    assert!(port_open(db) && port_open(api));

    // `up` starts everything requested, stopped or not.
    env.devenv_ok(&["stop", "api"]);
    let s = states(&env.status_json());
    assert_eq!(s["api"], pair("stopped", "stopped by user"), "{s:?}");
    assert_eq!(
        s["web"],
        pair("pending", "waiting for api (stopped by user)")
    );
    assert_eq!(s["db"].0, "ready", "a dependency is not stopped: {s:?}");
    env.devenv_ok(&["up"]);
    assert!(all_ready(&env), "{:?}", env.states());
    env.devenv_ok(&["down"]);
}

#[test]
fn a_stop_survives_the_recovery_after_a_sigkill_of_the_daemon() {
    let mut env = TestEnv::new();
    let (db, _, web) = env.quickstart();
    env.devenv_ok(&["up"]);
    env.devenv_ok(&["stop", "db"]);
    env.kill_daemon_hard();

    // The next daemon brings the environment back up, as it was: db stays stopped
    // and its dependents wait for it.
    let mut last = BTreeMap::new();
    let settled = wait_until(Duration::from_secs(60), || {
        let Some(status) = try_status(&env) else {
            return false;
        };
        last = states(&status);
        last.get("api") == Some(&pair("pending", WAITING))
            && last.get("web") == Some(&pair("pending", WAITING))
    });
    assert!(settled, "after recovery: {last:?}");
    assert_db_stopped_and_dependents_waiting(&last);
    assert!(!port_open(db) && !port_open(web));
    assert!(env.service_pids().is_empty(), "{:?}", env.service_pids());

    env.devenv_ok(&["start", "db"]);
    assert!(all_ready(&env), "{:?}", env.states());
    env.devenv_ok(&["down"]);
}

#[test]
fn neither_a_watch_rule_nor_the_restart_policy_runs_a_stopped_service() {
    let env = TestEnv::new();
    let port = free_ports(1)[0];
    let app = env.project.join("app");
    std::fs::create_dir_all(&app).expect("mkdir app");
    std::fs::write(app.join("main.py"), "print('v1')\n").expect("write");
    env.write_config(&format!(
        "{}    - name: web
      command: exec python3 -m http.server {port} --bind 127.0.0.1
      workdir: ./app
      restart: always
      readiness: {{ http: {{ path: /, port: {port} }}, periodSeconds: 0.1 }}
      watch: {{ paths: [./app], action: restart }}
",
        config_head("stopping")
    ));
    env.devenv_ok(&["up"]);
    env.devenv_ok(&["stop", "web"]);
    std::fs::write(app.join("main.py"), "print('v2')\n").expect("write");
    // A live watcher reacts within tens of milliseconds (tests/watch.rs) and
    // `restart: always` within a second; give both far longer.
    let ran = wait_until(Duration::from_secs(3), || {
        port_open(port) || !env.service_pids().is_empty()
    });
    assert!(!ran, "a stopped service ran again: {:?}", env.states());
    let s = states(&env.status_json());
    assert_eq!(s["web"], pair("stopped", "stopped by user"));
    let restarts: Vec<String> = system_events(&env)
        .into_iter()
        .filter(|e| e.line.starts_with("watch") && e.line.ends_with("restarting"))
        .map(|e| e.line)
        .collect();
    assert!(restarts.is_empty(), "{restarts:?}");

    // `restart` does not bypass the stop; `start` runs it again.
    let out = env.devenv(&["restart", "web"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("devenv start web"), "{out}");
    env.devenv_ok(&["start", "web"]);
    assert!(port_open(port));
    env.devenv_ok(&["down"]);
}

#[test]
fn scale_of_a_local_service_and_unknown_services_are_refused() {
    let mut env = TestEnv::new();
    env.quickstart();
    env.devenv_ok(&["up", "db"]);

    let out = env.devenv(&["scale", "db", "3"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(
        out.stderr
            .contains("`db` is a local process: it runs one instance"),
        "{out}"
    );
    for bad in ["0", "-1", "many", "4294967296"] {
        let out = env.devenv(&["scale", "db", bad]);
        assert_eq!(out.code, Some(2), "scale db {bad}\n{out}");
    }

    for cmd in ["stop", "start"] {
        let out = env.devenv(&[cmd, "nosuch"]);
        assert_eq!(out.code, Some(2), "{cmd}\n{out}");
        assert!(
            out.stderr.contains("unknown service `nosuch`") && out.stderr.contains("db, api, web"),
            "{cmd}\n{out}"
        );
    }
    let out = env.devenv(&["scale", "nosuch", "2"]);
    assert_eq!(out.code, Some(2), "{out}");
    assert!(out.stderr.contains("db, api, web"), "{out}");
    // Nothing changed.
    assert_eq!(env.states()["db"], "ready");
    env.devenv_ok(&["down"]);
}
