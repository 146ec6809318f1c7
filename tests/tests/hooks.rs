//! Lifecycle hooks with the real daemon, CLI and processes: every hook point runs in
//! order with its output in `devenv logs` and its run in `status`; a failing `preUp`
//! starts nothing; `onError: continue` goes on; a timeout kills the hook's process
//! group; hooks get devenv's variables; `postUp` does not run twice for one `up`
//! across a daemon SIGKILL; an interrupted `down`'s `postDown` is left to the next
//! `down`.

use std::time::Duration;

use devenv_e2e::{alive, wait_until, TestEnv};
use serde_json::Value;

const HEAD: &str = "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: hooks\nspec:\n";

/// The lines of the project's `order.txt` (what the hooks appended; every hook here
/// runs in the project dir).
fn order(env: &TestEnv) -> Vec<String> {
    std::fs::read_to_string(env.project.join("order.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn entry<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["services"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no `{name}` in status: {status}"))
}

/// Appends NAME to order.txt and says hello on stdout.
fn mark(name: &str) -> String {
    format!("\"echo {name} >> order.txt; echo hello from {name}\"")
}

#[test]
fn every_hook_point_runs_in_order_with_its_output_in_logs_and_status() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{HEAD}  hooks:
    preUp: {}
    postUp: [{}]
    preDown: {{ command: {}, timeoutSeconds: 30 }}
    postDown: {}
  services:
    - name: api
      command: sleep 300
      ports: [18555]
      env: {{ GREETING: hi }}
      hooks:
        preStart: {}
        postReady: [{}, \"env > hook-env.txt\"]
        preStop: {}
",
        mark("preUp"),
        mark("postUp"),
        mark("preDown"),
        mark("postDown"),
        mark("api.preStart"),
        mark("api.postReady"),
        mark("api.preStop"),
    ));
    // `config show` lists them as written.
    let shown = env.devenv_ok(&["config", "show"]);
    for key in [
        "preUp:",
        "postDown:",
        "preStart:",
        "postReady:",
        "timeoutSeconds: 30",
    ] {
        assert!(shown.stdout.contains(key), "no {key} in:\n{shown}");
    }
    let up = env.devenv_ok(&["up"]);
    assert_eq!(
        order(&env),
        ["preUp", "api.preStart", "api.postReady", "postUp"],
        "{up}"
    );
    // Progress names the hooks like services.
    assert!(
        up.stdout.contains("hook/preUp") || up.stderr.contains("hook/preUp"),
        "{up}"
    );

    let status = env.status_json();
    for hook in [
        "hook/preUp",
        "hook/api.preStart",
        "hook/api.postReady",
        "hook/postUp",
    ] {
        let h = entry(&status, hook);
        assert_eq!(h["state"], "completed", "{hook}: {h}");
        assert!(
            h["message"].as_str().unwrap_or("").starts_with("ok in "),
            "{hook}: {h}"
        );
    }
    assert_eq!(entry(&status, "api")["state"], "ready");

    // Their output is in `devenv logs`, under the hook's name.
    let logs = env.devenv_ok(&["logs", "--tail", "200"]);
    for hook in ["preUp", "api.preStart", "api.postReady", "postUp"] {
        assert!(
            logs.stdout
                .lines()
                .any(|l| l.contains(&format!("hook/{hook}"))
                    && l.contains(&format!("hello from {hook}"))),
            "no output of {hook} in:\n{}",
            logs.stdout
        );
    }
    let only = env.devenv_ok(&["logs", "hook/preUp"]);
    assert!(only.stdout.contains("hello from preUp"), "{only}");
    assert!(!only.stdout.contains("hello from postUp"), "{only}");

    // The hook's environment: devenv's variables, the service's env and port.
    let vars = std::fs::read_to_string(env.project.join("hook-env.txt"))
        .expect("the postReady hook wrote its environment");
    for want in [
        "DEVENV_ENV=hooks",
        "DEVENV_SERVICE=api",
        "DEVENV_HOOK=postReady",
        "DEVENV_PORT=18555",
        "DEVENV_PORTS=18555",
        "DEVENV_PORT_API=18555",
        "GREETING=hi",
    ] {
        assert!(vars.lines().any(|l| l == want), "no {want} in:\n{vars}");
    }
    assert!(
        vars.lines().any(|l| l.starts_with("DEVENV_MARKER=")),
        "{vars}"
    );

    env.devenv_ok(&["down"]);
    assert_eq!(
        order(&env),
        [
            "preUp",
            "api.preStart",
            "api.postReady",
            "postUp",
            "preDown",
            "api.preStop",
            "postDown"
        ]
    );
    env.teardown();
}

#[test]
fn a_failing_pre_up_starts_nothing_and_says_which_hook_and_why() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{HEAD}  hooks:
    preUp: \"echo the database is not reachable; exit 3\"
  services:
    - name: api
      command: \"touch started; sleep 300\"
"
    ));
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "{up}");
    let text = format!("{}{}", up.stdout, up.stderr);
    assert!(text.contains("up failed: hook/preUp"), "{up}");
    assert!(text.contains("exited with code 3"), "{up}");
    assert!(text.contains("the database is not reachable"), "{up}");
    assert!(text.contains("nothing was started"), "{up}");
    assert!(!env.project.join("started").exists(), "the service ran");
    assert!(env.service_pids().is_empty(), "{:?}", env.service_pids());
    let status = env.status_json();
    assert_eq!(entry(&status, "hook/preUp")["state"], "failed");
    let hook = entry(&status, "hook/preUp");
    assert!(
        hook["message"]
            .as_str()
            .unwrap_or("")
            .contains("exited with code 3"),
        "{hook}"
    );
    assert_ne!(entry(&status, "api")["state"], "ready");
    env.teardown();
}

#[test]
fn on_error_continue_goes_on_with_a_warning() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{HEAD}  hooks:
    preUp: {{ command: \"exit 4\", onError: continue }}
  services:
    - name: api
      command: \"touch started; sleep 300\"
"
    ));
    env.devenv_ok(&["up"]);
    assert!(wait_until(Duration::from_secs(10), || env
        .project
        .join("started")
        .exists()));
    let status = env.status_json();
    assert_eq!(entry(&status, "api")["state"], "ready");
    let hook = entry(&status, "hook/preUp");
    assert_eq!(hook["state"], "failed");
    assert!(
        hook["message"]
            .as_str()
            .unwrap_or("")
            .contains("onError: continue"),
        "{hook}"
    );
    let logs = env.devenv_ok(&["logs", "hook/preUp"]);
    assert!(logs.stdout.contains("going on"), "{logs}");
    env.teardown();
}

#[test]
fn a_timeout_kills_the_hooks_whole_process_group() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{HEAD}  hooks:
    preUp: {{ command: \"sleep 300 & echo $! > bg.pid; sleep 300\", timeoutSeconds: 1 }}
  services:
    - name: api
      command: sleep 300
"
    ));
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "{up}");
    assert!(
        format!("{}{}", up.stdout, up.stderr).contains("did not finish within 1s"),
        "{up}"
    );
    let bg: u32 = std::fs::read_to_string(env.project.join("bg.pid"))
        .expect("the hook wrote its background pid")
        .trim()
        .parse()
        .expect("a pid");
    assert!(
        wait_until(Duration::from_secs(5), || !alive(bg)),
        "the hook's background process {bg} outlived its timeout"
    );
    env.teardown();
}

#[test]
fn post_up_does_not_run_again_when_recovery_repeats_the_same_up() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{HEAD}  hooks:
    preUp: {}
    postUp: {}
  services:
    - name: api
      command: sleep 300
      hooks:
        postReady: {}
",
        mark("preUp"),
        mark("postUp"),
        mark("api.postReady")
    ));
    env.devenv_ok(&["up"]);
    assert_eq!(order(&env), ["preUp", "api.postReady", "postUp"]);
    env.kill_daemon_hard();
    // The next CLI call starts a daemon, which repeats the same `up`.
    let back = wait_until(Duration::from_secs(60), || {
        let out = env.devenv(&["status", "--json"]);
        serde_json::from_str::<Value>(&out.stdout).is_ok_and(|s| {
            let h = s["services"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["name"] == "hook/postUp")
                .cloned();
            let api = s["services"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["name"] == "api")
                .cloned();
            api.is_some_and(|a| a["message"].as_str().unwrap_or("").contains("recovered"))
                && h.is_some()
        })
    });
    assert!(back, "not recovered: {:?}", env.devenv(&["status"]));
    // `pre*` hooks prepare what recovery starts again; `post*` ones ran already.
    assert_eq!(order(&env), ["preUp", "api.postReady", "postUp", "preUp"]);
    let logs = env.devenv_ok(&["logs", "hook/postUp"]);
    assert!(logs.stdout.contains("not run again"), "{logs}");
    // A new `up` is a new transition: its postUp runs.
    env.devenv_ok(&["up"]);
    assert_eq!(
        order(&env),
        [
            "preUp",
            "api.postReady",
            "postUp",
            "preUp",
            "preUp",
            "postUp"
        ]
    );
    env.teardown();
}

#[test]
fn an_interrupted_downs_post_down_is_left_to_the_next_down() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{HEAD}  hooks:
    preDown: {}
    postDown: {}
  services:
    - name: api
      command: sleep 300
      hooks:
        preStop: \"echo api.preStop >> order.txt; sleep 300\"
",
        mark("preDown"),
        mark("postDown"),
    ));
    env.devenv_ok(&["up"]);
    let log = env.root().join("down.log");
    let mut down = env.spawn_devenv_logged(&["down"], &log);
    assert!(
        wait_until(Duration::from_secs(20), || order(&env)
            .contains(&"api.preStop".to_string())),
        "preStop never ran: {:?}",
        order(&env)
    );
    env.kill_daemon_hard();
    let _ = down.wait();
    // The next daemon does not bring the environment back, nor finish that down.
    let status = env.status_json();
    assert_ne!(entry(&status, "api")["state"], "ready", "{status}");
    assert_eq!(order(&env), ["preDown", "api.preStop"]);
    // The next `down` runs the down's hooks (nothing runs, so no preStop).
    env.devenv_ok(&["down"]);
    assert_eq!(
        order(&env),
        ["preDown", "api.preStop", "preDown", "postDown"]
    );
    env.teardown();
}
