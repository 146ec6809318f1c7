//! The daemon killed with SIGKILL takes its services with it; the next daemon brings
//! back up, by itself, every environment the user had asked up and not taken down.

#[path = "../src/graph_support.rs"]
mod graph_support;

use std::collections::BTreeMap;
use std::time::Duration;

use devenv_e2e::{alive, http_get, port_open, wait_until, TestEnv};
use graph_support::{system_events, try_status};
use serde_json::Value;

/// Service name -> (state, pid, message) from a parsed `status --json`.
fn services(status: &Value) -> BTreeMap<String, (String, u32, String)> {
    status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["name"].as_str().unwrap_or_default().to_string(),
                (
                    s["state"].as_str().unwrap_or_default().to_string(),
                    s["pid"].as_u64().unwrap_or(0) as u32,
                    s["message"].as_str().unwrap_or_default().to_string(),
                ),
            )
        })
        .collect()
}

/// The index in the daemon's log of `service`'s first line `pred` accepts after `from`.
fn index_after(
    events: &[graph_support::Event],
    from: usize,
    service: &str,
    pred: impl Fn(&str) -> bool,
) -> Option<usize> {
    events
        .iter()
        .find(|e| e.index > from && e.service == service && pred(&e.line))
        .map(|e| e.index)
}

#[test]
fn sigkill_of_the_daemon_brings_the_environment_back_up_by_itself() {
    let mut env = TestEnv::new();
    let (db, api, web) = env.quickstart();
    env.devenv_ok(&["up"]);
    let before = services(&env.status_json());
    let pids: Vec<u32> = before.values().map(|s| s.1).collect();
    assert!(
        pids.len() == 3 && pids.iter().all(|p| *p > 0 && alive(*p)),
        "not all running: {before:?}"
    );
    let daemon = env.kill_daemon_hard();
    assert!(
        !pids.contains(&daemon),
        "daemon pid {daemon} is a service pid?"
    );

    // The services die with the daemon (its guardian kills them).
    let clean = wait_until(Duration::from_secs(10), || {
        pids.iter().all(|p| !alive(*p)) && [db, api, web].iter().all(|p| !port_open(*p))
    });
    assert!(
        clean,
        "10 s after kill -9 of the daemon: live service pids {:?}",
        pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>()
    );

    // No `up`: the next CLI call starts a daemon, which brings the environment back.
    let started = std::time::Instant::now();
    let mut last = BTreeMap::new();
    let back = wait_until(Duration::from_secs(60), || {
        let Some(status) = try_status(&env) else {
            return false;
        };
        last = services(&status);
        last.len() == 3 && last.values().all(|s| s.0 == "ready")
    });
    assert!(back, "60 s after the restart, not all ready: {last:#?}");
    eprintln!(
        "daemon_crash: all 3 services ready again {:?} after the first command",
        started.elapsed()
    );
    assert_ne!(env.daemon_pid(), daemon, "no new daemon");
    for (name, (_, pid, message)) in &last {
        assert!(
            *pid > 0 && !pids.contains(pid) && alive(*pid),
            "{name} has no new live pid: {last:?}"
        );
        assert!(
            message.contains("recovered after a daemon restart"),
            "{name}'s status does not say it was recovered: {message:?}"
        );
    }
    assert_eq!(http_get(api, "/greeting").map(|r| r.status), Some(200));
    let text = env.devenv_ok(&["status"]).stdout;
    assert!(
        text.contains("recovered after a daemon restart"),
        "status text does not say so:\n{text}"
    );

    // In dependency order: each started after its dependency was ready again.
    let events = system_events(&env);
    let started_with = |svc: &str| {
        let pid = last[svc].1;
        events
            .iter()
            .find(|e| e.service == svc && e.line == format!("started (pid {pid})"))
            .map(|e| e.index)
            .unwrap_or_else(|| panic!("no `started (pid {pid})` for {svc}: {events:#?}"))
    };
    let (db_start, api_start, web_start) =
        (started_with("db"), started_with("api"), started_with("web"));
    let db_ready = index_after(&events, db_start, "db", |l| l == "ready").expect("db ready");
    let api_ready = index_after(&events, api_start, "api", |l| l == "ready").expect("api ready");
    assert!(
        db_ready < api_start && api_ready < web_start,
        "not in dependency order: db started {db_start} ready {db_ready}, api started \
         {api_start} ready {api_ready}, web started {web_start}"
    );
    assert!(
        index_after(&events, db_start, "api", |l| l
            .contains("recovered after a daemon restart"))
        .is_some(),
        "no recovery line in api's log"
    );

    // `down` is the only way down: after it, a crash brings nothing back.
    env.devenv_ok(&["down"]);
    let daemon = env.kill_daemon_hard();
    let status = env.status_json();
    assert_ne!(env.daemon_pid(), daemon, "no new daemon");
    let states = services(&status);
    assert!(
        states.len() == 3 && states.values().all(|s| s.0 == "stopped" && s.1 == 0),
        "after down and a crash: {states:?}"
    );
    assert!(
        !wait_until(Duration::from_secs(3), || {
            !env.service_pids().is_empty() || port_open(api)
        }),
        "a service came back after `down`: {:?}",
        services(&env.status_json())
    );
}

#[test]
fn a_config_broken_before_the_crash_leaves_the_services_stopped_saying_why() {
    let mut env = TestEnv::new();
    let (_, api, _) = env.quickstart();
    env.devenv_ok(&["up", "api"]);
    let config = env.project.join(".devenv/config.yml");
    let good = std::fs::read_to_string(&config).expect("config");
    std::fs::write(&config, good.replace("kind: Environment", "kind: [broken")).expect("break");
    env.kill_daemon_hard();

    let mut last = BTreeMap::new();
    let said = wait_until(Duration::from_secs(30), || {
        // A new daemon: it knows the environment even though its config is broken.
        let Some(status) = try_status(&env) else {
            return false;
        };
        last = services(&status);
        last.get("api")
            .is_some_and(|s| s.2.contains("config no longer loads"))
    });
    assert!(said, "no config error in the status: {last:#?}");
    let (state, pid, message) = &last["api"];
    assert!(
        state == "stopped" && *pid == 0 && message.contains(".devenv/config.yml"),
        "api: {state} {pid} {message}"
    );
    assert!(!port_open(api), "api answers with a broken config");
    assert!(env.service_pids().is_empty(), "{:?}", env.service_pids());

    // Fixed, `up` brings it back as usual; the daemon never went down.
    std::fs::write(&config, &good).expect("fix");
    env.devenv_ok(&["up", "api"]);
    assert_eq!(http_get(api, "/greeting").map(|r| r.status), Some(200));
}

#[test]
fn a_service_manager_stop_keeps_the_environment_wanted_and_daemon_stop_does_not() {
    let env = TestEnv::new();
    env.write_config(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata: {name: kept}\nspec:\n  services:\n    - name: s\n      command: exec sleep 300\n",
    );
    env.devenv_ok(&["up"]);
    let first = services(&env.status_json())["s"].1;

    // SIGTERM (systemctl stop, a reboot): a clean stop, not the user's `down`.
    let daemon = env.daemon_pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon as i32),
        nix::sys::signal::SIGTERM,
    )
    .expect("SIGTERM the daemon");
    assert!(
        wait_until(Duration::from_secs(20), || !alive(daemon) && !alive(first)),
        "the daemon or its service outlived SIGTERM"
    );
    let mut last = BTreeMap::new();
    let back = wait_until(Duration::from_secs(30), || {
        last = try_status(&env).map(|s| services(&s)).unwrap_or_default();
        last.get("s").is_some_and(|s| s.0 == "ready" && s.1 > 0)
    });
    assert!(back, "not back up after a SIGTERM restart: {last:?}");

    // `devenv daemon stop` is the user stopping everything: nothing comes back.
    let daemon = env.daemon_pid();
    env.devenv_ok(&["daemon", "stop"]);
    assert!(
        wait_until(Duration::from_secs(20), || !alive(daemon)),
        "daemon stop did not stop it"
    );
    let after = services(&env.status_json());
    assert!(
        after["s"].0 == "stopped" && after["s"].1 == 0,
        "after daemon stop and a new daemon: {after:?}"
    );
    assert!(
        !wait_until(Duration::from_secs(3), || !env.service_pids().is_empty()),
        "a service came back after `daemon stop`: {:?}",
        services(&env.status_json())
    );
}
