//! Which hooks run on which transition of a service, with the real daemon, CLI and
//! processes (README, "Hooks"): `devenv stop` runs `preStop` (dependents first),
//! `devenv start` runs the services' `preStart`/`postReady` but not the
//! environment's `preUp`/`postUp`; `devenv restart`, a watch rule and the restart
//! policy run `preStart`/`postReady` again, `preStop` first when the process still
//! runs (not after a crash); a failing `preStart` on a restart fails the service.

use std::time::Duration;

use devenv_e2e::{alive, wait_until, TestEnv};
use serde_json::Value;

const HEAD: &str =
    "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: transitions\nspec:\n";

/// What the hooks appended to the project's `order.txt` since the last call (the
/// file is taken away).
fn take_order(env: &TestEnv) -> Vec<String> {
    let path = env.project.join("order.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let _ = std::fs::remove_file(&path);
    text.lines().map(str::to_owned).collect()
}

fn peek_order(env: &TestEnv) -> Vec<String> {
    std::fs::read_to_string(env.project.join("order.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn entry(status: &Value, name: &str) -> Value {
    status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no `{name}` in status: {status}"))
}

/// The three service hooks of `svc`, each appending `svc.point` to order.txt;
/// `preStop` only while the service's process (its pid in `svc.pid`) is alive, so a
/// `preStop` seen proves it ran before the stop.
fn service_hooks(svc: &str) -> String {
    format!(
        "      hooks:
        preStart: \"echo {svc}.preStart >> order.txt\"
        postReady: \"echo {svc}.postReady >> order.txt\"
        preStop: \"kill -0 $(cat {svc}.pid) && echo {svc}.preStop >> order.txt\"
"
    )
}

/// A service that writes its pid (`$$` is `$` in devenv's interpolation) and sleeps.
fn sleeper(svc: &str) -> String {
    format!("      command: \"echo $$$$ > {svc}.pid; exec sleep 300\"\n")
}

fn env_hooks() -> &'static str {
    "  hooks:
    preUp: \"echo preUp >> order.txt\"
    postUp: \"echo postUp >> order.txt\"
"
}

#[test]
fn stop_and_start_run_the_services_hooks_not_the_environments() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{HEAD}{}  services:
    - name: db
{}{}    - name: api
{}      dependencies: [db]
{}",
        env_hooks(),
        sleeper("db"),
        service_hooks("db"),
        sleeper("api"),
        service_hooks("api"),
    ));
    let up = env.devenv_ok(&["up"]);
    assert_eq!(
        take_order(&env),
        [
            "preUp",
            "db.preStart",
            "db.postReady",
            "api.preStart",
            "api.postReady",
            "postUp"
        ],
        "{up}"
    );

    // Dependents first: api waits for db, so it stops before it.
    let stop = env.devenv_ok(&["stop", "db"]);
    assert_eq!(take_order(&env), ["api.preStop", "db.preStop"], "{stop}");
    let status = env.status_json();
    assert_eq!(entry(&status, "db")["state"], "stopped", "{status}");
    assert_eq!(entry(&status, "api")["state"], "pending", "{status}");

    // `start` is a start of db (and of api, which waited for it): their hooks, not
    // the environment's.
    let start = env.devenv_ok(&["start", "db"]);
    assert_eq!(
        take_order(&env),
        [
            "db.preStart",
            "db.postReady",
            "api.preStart",
            "api.postReady"
        ],
        "{start}"
    );
    let status = env.status_json();
    assert_eq!(entry(&status, "db")["state"], "ready", "{status}");
    assert_eq!(entry(&status, "api")["state"], "ready", "{status}");
    env.teardown();
}

#[test]
fn restart_runs_pre_stop_then_pre_start_and_post_ready_and_a_failing_pre_start_fails_it() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{HEAD}{}  services:
    - name: db
{}{}    - name: api
{}      dependencies: [db]
      hooks:
        preStart: \"test ! -f broken || {{ echo cannot prepare; exit 5; }}; echo api.preStart >> order.txt\"
        postReady: \"echo api.postReady >> order.txt\"
        preStop: \"kill -0 $(cat api.pid) && echo api.preStop >> order.txt\"
",
        env_hooks(),
        sleeper("db"),
        service_hooks("db"),
        sleeper("api"),
    ));
    env.devenv_ok(&["up"]);
    take_order(&env);
    let before = entry(&env.status_json(), "api");

    // `devenv restart` returns once the service is ready again: after its postReady.
    let restart = env.devenv_ok(&["restart", "api"]);
    assert_eq!(
        take_order(&env),
        ["api.preStop", "api.preStart", "api.postReady"],
        "{restart}"
    );
    let after = entry(&env.status_json(), "api");
    assert_eq!(after["state"], "ready", "{after}");
    assert_ne!(after["pid"], before["pid"], "not restarted: {after}");

    // A restart whose preStart fails leaves the service failed, saying why.
    std::fs::write(env.project.join("broken"), "").expect("write");
    let _ = env.devenv(&["restart", "api"]);
    assert!(
        wait_until(Duration::from_secs(20), || entry(&env.status_json(), "api")
            ["state"]
            == "failed"),
        "{}",
        env.status_json()
    );
    let api = entry(&env.status_json(), "api");
    let message = api["message"].as_str().unwrap_or_default();
    assert!(message.contains("preStart hook failed"), "{api}");
    assert!(message.contains("exited with code 5"), "{api}");
    let logs = env.devenv_ok(&["logs", "hook/api.preStart"]);
    assert!(logs.stdout.contains("cannot prepare"), "{logs}");
    // The preStop of the running process ran; no postReady, and it is not running.
    assert_eq!(take_order(&env), ["api.preStop"]);
    assert!(api["pid"].is_null(), "{api}");
    env.teardown();
}

#[test]
fn the_restart_policy_runs_pre_start_and_post_ready_but_no_pre_stop_after_a_crash() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{HEAD}{}  services:
    - name: api
{}      restart: on-failure
{}",
        env_hooks(),
        sleeper("api"),
        service_hooks("api"),
    ));
    env.devenv_ok(&["up"]);
    assert_eq!(
        take_order(&env),
        ["preUp", "api.preStart", "api.postReady", "postUp"]
    );
    let pid = entry(&env.status_json(), "api")["pid"]
        .as_u64()
        .expect("api's pid") as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL)
        .expect("kill api");
    assert!(
        wait_until(Duration::from_secs(30), || {
            let api = entry(&env.status_json(), "api");
            api["state"] == "ready" && api["restarts"] == 1
        }),
        "not restarted: {}",
        env.status_json()
    );
    // Ready comes after its postReady: the order is complete now.
    assert_eq!(take_order(&env), ["api.preStart", "api.postReady"]);
    assert!(!alive(pid as u32));
    env.teardown();
}

#[test]
fn a_watch_restart_runs_pre_stop_pre_start_and_post_ready() {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.project.join("src")).expect("mkdir");
    env.write_config(&format!(
        "{HEAD}  services:
    - name: api
{}      watch: {{ paths: [./src], action: restart }}
{}",
        sleeper("api"),
        service_hooks("api"),
    ));
    env.devenv_ok(&["up"]);
    assert_eq!(take_order(&env), ["api.preStart", "api.postReady"]);
    std::fs::write(env.project.join("src/main.py"), "print('changed')\n").expect("write");
    assert!(
        wait_until(Duration::from_secs(30), || {
            let api = entry(&env.status_json(), "api");
            api["state"] == "ready" && api["restarts"] == 1 && peek_order(&env).len() >= 3
        }),
        "not restarted by the watch: {}; hooks so far: {:?}",
        env.status_json(),
        peek_order(&env)
    );
    assert_eq!(
        take_order(&env),
        ["api.preStop", "api.preStart", "api.postReady"]
    );
    env.teardown();
}
