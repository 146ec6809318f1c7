//! `down` stops in reverse dependency order, through a completed oneshot in the middle
//! of the chain (observed from the daemon's log timestamps), and `down` during an `up`
//! says what it stopped.

#[path = "../src/graph_support.rs"]
mod graph_support;

use std::time::Duration;

use devenv_e2e::{wait_until, TestEnv};
use graph_support::{config_head, system_events, Background, Event};

/// A long-running service that takes 300 ms to stop after SIGTERM, and prints
/// `NAME up` for its log probe.
fn slow_stopper(name: &str, deps: &str) -> String {
    format!(
        "    - name: {name}
      command: \"trap 'sleep 0.3; exit 0' TERM; echo {name} up; while :; do sleep 0.05; done\"
      readiness: {{ log: {{ pattern: \"^{name} up$\" }} }}
{deps}"
    )
}

fn at<'a>(events: &'a [Event], service: &str, line: &str) -> &'a Event {
    events
        .iter()
        .rev()
        .find(|e| e.service == service && e.line == line)
        .unwrap_or_else(|| panic!("no `{line}` line of {service}: {events:#?}"))
}

#[test]
fn down_reverses_the_dependency_order_through_a_completed_oneshot() {
    let env = TestEnv::new();
    // web -> api -> migrate (oneshot, completed) -> db. api reaches db only through
    // migrate: a completed oneshot must not let db stop before api.
    env.write_config(&format!(
        "{}{}    - name: migrate
      oneshot: true
      command: echo migrated
      dependencies: [db]
{}{}",
        config_head("downorder"),
        slow_stopper("db", ""),
        slow_stopper("api", "      dependencies: [migrate]\n"),
        slow_stopper("web", "      dependencies: [api]\n"),
    ));
    env.devenv_ok(&["up"]);
    let states = env.states();
    assert_eq!(states["migrate"], "completed", "{states:?}");
    let down = env.devenv_ok(&["down"]);
    let stopped: Vec<&str> = down
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("stopped "))
        .collect();
    assert_eq!(stopped, ["web", "api", "migrate", "db"], "{down}");

    let events = system_events(&env);
    let chain = ["web", "api", "db"];
    for pair in chain.windows(2) {
        let (dependent, dependency) = (pair[0], pair[1]);
        let gone = at(&events, dependent, "stopped");
        let asked = at(&events, dependency, "stopping");
        assert!(
            gone.index < asked.index && gone.millis <= asked.millis,
            "{dependency} was asked to stop ({} ms) before {dependent} had stopped ({} ms)",
            asked.millis,
            gone.millis
        );
    }
    // Each stop takes 300 ms, one after the other.
    let first = at(&events, "web", "stopping").millis;
    let last = at(&events, "db", "stopped").millis;
    assert!(
        last - first >= 800,
        "the three stops overlapped: {first}..{last} ms"
    );
}

#[test]
fn down_during_up_says_what_it_stopped() {
    let env = TestEnv::new();
    // b never becomes ready: the up waits for it until `down` ends it.
    env.write_config(&format!(
        "{}{}    - name: b
      command: exec sleep 1000
      dependencies: [a]
      readiness: {{ exec: {{ command: \"false\" }}, periodSeconds: 0.2, timeoutSeconds: 120 }}
",
        config_head("downduringup"),
        slow_stopper("a", ""),
    ));
    let mut up = Background::spawn(&env, &["up"]);
    let started = wait_until(Duration::from_secs(30), || {
        let s = env.states();
        s.get("a").is_some_and(|s| s == "ready") && s.get("b").is_some_and(|s| s == "starting")
    });
    assert!(
        started,
        "a ready, b starting not reached: {:?}\n{}",
        env.states(),
        up.output()
    );
    let down = env.devenv_ok(&["down"]);
    assert!(!down.stdout.contains("nothing was running"), "{down}");
    let stopped: Vec<&str> = down
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("stopped "))
        .collect();
    assert_eq!(stopped, ["b", "a"], "{down}");
    let exit = up.wait_exit(Duration::from_secs(20));
    assert!(
        exit.is_some_and(|e| !e.success()),
        "up did not fail\n{}",
        up.output()
    );
    assert!(
        up.output().contains("`devenv down` was requested"),
        "up does not say why it ended\n{}",
        up.output()
    );
    assert!(env.service_pids().is_empty(), "{:?}", env.service_pids());
}
