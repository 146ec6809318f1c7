//! `kill -9` of the daemon in the middle of `up` of 20 services: no service survives,
//! the next daemon starts them all again by itself, and `up` brings them all to ready.

#[path = "../src/graph_support.rs"]
mod graph_support;

use std::time::Duration;

use devenv_e2e::{alive, wait_until, TestEnv};
use graph_support::{config_head, processes_in, Background};

/// Ten services ready as soon as they run (`first-N`, a chain of fan-outs below
/// `first-0`), and ten (`gated-N`) that depend on them and are ready only once the
/// test creates the `gate` file: `up` stays half done until the test says so.
fn config() -> String {
    let mut yaml = config_head("crash");
    for i in 0..10 {
        let deps = if i == 0 {
            String::new()
        } else {
            format!("      dependencies: [first-{}]\n", (i - 1) / 3)
        };
        yaml.push_str(&format!(
            "    - name: first-{i}\n      command: echo first-{i} up; exec sleep 1000\n      \
             readiness: {{ log: {{ pattern: first-{i} up }} }}\n{deps}"
        ));
    }
    for i in 0..10 {
        yaml.push_str(&format!(
            "    - name: gated-{i}\n      command: exec sleep 1000\n      \
             readiness: {{ exec: {{ command: test -f gate }}, periodSeconds: 0.1, timeoutSeconds: 120 }}\n      \
             dependencies: [first-{}]\n",
            i % 10
        ));
    }
    yaml
}

#[test]
fn sigkill_of_the_daemon_during_up_leaves_nothing_and_the_next_daemon_resumes() {
    let env = TestEnv::new();
    env.write_config(&config());
    let mut up = Background::spawn(&env, &["up"]);

    // Some ready, the rest still starting: every `first-*` ready and every `gated-*`
    // running (pid) but not ready.
    let mut states = Default::default();
    let mut status = serde_json::Value::Null;
    let half = wait_until(Duration::from_secs(60), || {
        let Some(s) = graph_support::try_status(&env) else {
            return false;
        };
        status = s;
        states = devenv_e2e::service_states(&status);
        states.len() == 20
            && (0..10).all(|i| states[&format!("first-{i}")] == "ready")
            && (0..10).all(|i| {
                let g = graph_support::service(&status, &format!("gated-{i}"));
                g["state"] == "starting" && g["pid"].as_u64().unwrap_or(0) > 0
            })
    });
    assert!(half, "up did not get half way: {states:?}\n{}", up.output());
    // The exec probes (`test -f gate`, every 0.1 s) run with the service's marker too:
    // wait for a moment when none is alive, so only the 20 services are counted.
    let mut service_pids = Vec::new();
    let twenty = wait_until(Duration::from_secs(10), || {
        service_pids = env.service_pids();
        service_pids.len() == 20
    });
    assert!(twenty, "service processes: {service_pids:?}");

    let daemon = env.kill_daemon_hard();

    // The CLI waiting in `up` notices.
    let exit = up.wait_exit(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|s| !s.success()),
        "up should fail when its daemon dies ({exit:?})\n{}",
        up.output()
    );

    let clean = wait_until(Duration::from_secs(15), || {
        env.service_pids().is_empty() && processes_in(env.root(), &[]).is_empty()
    });
    assert!(
        clean,
        "15 s after kill -9 of the daemon during up: service pids alive {:?}, processes in {}: {:?}",
        service_pids.iter().filter(|p| alive(**p)).collect::<Vec<_>>(),
        env.root().display(),
        processes_in(env.root(), &[])
    );

    // A new daemon (auto-started by status) knows all 20 and, since the user asked
    // them up and never down, starts them again: new processes, the `first-*` ready,
    // the `gated-*` waiting for the gate as before.
    let status = env.status_json();
    let new_daemon = env.daemon_pid();
    assert_ne!(new_daemon, daemon, "status did not start a new daemon");
    assert_eq!(
        devenv_e2e::service_states(&status).len(),
        20,
        "the new daemon forgot services: {status:#}"
    );
    let mut status = status;
    let again = wait_until(Duration::from_secs(60), || {
        let Some(s) = graph_support::try_status(&env) else {
            return false;
        };
        status = s;
        status["services"].as_array().is_some_and(|all| {
            all.len() == 20
                && all.iter().all(|s| {
                    let pid = s["pid"].as_u64().unwrap_or(0) as u32;
                    let name = s["name"].as_str().unwrap_or_default();
                    let state = if name.starts_with("first-") {
                        "ready"
                    } else {
                        "starting"
                    };
                    pid > 0 && !service_pids.contains(&pid) && s["state"] == state
                })
        })
    });
    assert!(again, "the new daemon did not bring them back: {status:#}");

    // And up brings all 20 to ready.
    std::fs::write(env.project.join("gate"), "").expect("open the gate");
    env.devenv_ok(&["up"]);
    let states = env.states();
    assert!(
        states.len() == 20 && states.values().all(|s| s == "ready"),
        "after up again: {states:?}"
    );
    let mut pids = Vec::new();
    let twenty = wait_until(Duration::from_secs(10), || {
        pids = env.service_pids();
        pids.len() == 20
    });
    assert!(twenty, "service processes after up again: {pids:?}");
    env.devenv_ok(&["down"]);
}
