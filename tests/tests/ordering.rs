//! Dependency order on the way up, reverse order on the way down, restart policy, and
//! the daemon-unreachable exit code.

use std::time::Duration;

use devenv_e2e::{alive, wait_until, TestEnv};

/// Each service appends `start NAME` when it starts and `stop NAME` on SIGTERM to
/// ../order (the project dir), and prints `NAME up` for its log readiness probe.
fn svc(name: &str, deps: &str, readiness: &str) -> String {
    format!(
        "    - name: {name}
      command: \"echo start {name} >> order; trap 'echo stop {name} >> order; exit 0' TERM; \
echo {name} up; while :; do sleep 0.05; done\"
{deps}{readiness}"
    )
}

fn order_lines(env: &TestEnv) -> Vec<String> {
    std::fs::read_to_string(env.project.join("order"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn up_follows_dependencies_and_down_reverses_them() {
    let env = TestEnv::new();
    let yaml = format!(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: order\nspec:\n  services:\n{}{}{}",
        // Declared in reverse so declaration order can't pass for dependency order.
        svc(
            "c",
            "      dependencies: [b]\n",
            "      readiness: { exec: { command: \"test -s order\" } }\n"
        ),
        svc(
            "b",
            "      dependencies: [a]\n",
            "      readiness: { log: { pattern: \"^b up$\" }, periodSeconds: 1 }\n"
        ),
        svc(
            "a",
            "",
            "      readiness: { log: { pattern: \"^a up$\" } }\n"
        ),
    );
    env.write_config(&yaml);
    let valid = env.devenv(&["validate"]);
    assert_eq!(valid.code, Some(0), "{valid}");

    env.devenv_ok(&["up"]);
    assert_eq!(
        order_lines(&env),
        ["start a", "start b", "start c"],
        "start order"
    );
    let states = env.states();
    assert!(states.values().all(|s| s == "ready"), "{states:?}");

    env.devenv_ok(&["down"]);
    assert_eq!(
        order_lines(&env),
        ["start a", "start b", "start c", "stop c", "stop b", "stop a"],
        "stop order (each service records SIGTERM)"
    );
}

#[test]
fn on_failure_restart_brings_a_killed_service_back() {
    let mut env = TestEnv::new();
    let (_, api, _) = env.quickstart();
    env.devenv_ok(&["up"]);
    let pid_of = |env: &TestEnv, name: &str| -> (u64, u64, String) {
        let status = env.status_json();
        let s = status["services"]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{name} not in status\n{status:#}"));
        (
            s["pid"].as_u64().unwrap_or(0),
            s["restarts"].as_u64().unwrap_or(0),
            s["state"].as_str().unwrap_or_default().to_string(),
        )
    };
    let (old, restarts, _) = pid_of(&env, "api");
    assert_eq!(restarts, 0);

    // api has `restart: on-failure`; SIGKILL is a failure.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old as i32),
        nix::sys::signal::SIGKILL,
    )
    .expect("kill api");
    let mut last = (0, 0, String::new());
    let back = wait_until(Duration::from_secs(20), || {
        last = pid_of(&env, "api");
        last.0 != 0 && last.0 != old && last.2 == "ready"
    });
    assert!(
        back,
        "api not restarted and ready after SIGKILL; last (pid, restarts, state) = {last:?}"
    );
    assert_eq!(last.1, 1, "restarts after one crash");
    assert!(alive(last.0 as u32));
    assert_eq!(
        devenv_e2e::http_get(api, "/healthz").map(|r| r.status),
        Some(200)
    );
    env.devenv_ok(&["down"]);
}

#[test]
fn unreachable_daemon_exits_3_and_points_at_the_log() {
    let mut env = TestEnv::new();
    env.quickstart();
    // A "daemon" that exits at once: the CLI can't reach one.
    env.set_var("DEVENVD_BIN", "/bin/false");
    let out = env.devenv(&["status"]);
    assert_eq!(out.code, Some(3), "{out}");
    assert!(
        out.stderr.contains("devenvd.log"),
        "the error should say where the log is\n{out}"
    );
}
