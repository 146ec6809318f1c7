//! The dependency graph: order (a service starts only after all its dependencies are
//! ready), parallelism (independent branches do not wait for each other), `up SERVICE`
//! starting only what it needs, one-shot tasks, and readiness timeouts.

#[path = "../src/graph_support.rs"]
mod graph_support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use devenv_e2e::{free_ports, wait_until, TestEnv};
use graph_support::{
    config_head, first, is_ready_or_done, is_started, service, system_events, Background,
};

/// A service of a test graph: its name, dependencies and the YAML of its command and
/// readiness (indented for a list item's keys).
struct Svc {
    name: &'static str,
    deps: &'static [&'static str],
    body: String,
}

fn render(env_name: &str, services: &[Svc]) -> String {
    let mut yaml = config_head(env_name);
    for s in services {
        yaml.push_str(&format!("    - name: {}\n{}", s.name, s.body));
        if !s.deps.is_empty() {
            yaml.push_str(&format!("      dependencies: [{}]\n", s.deps.join(", ")));
        }
    }
    yaml
}

fn http(port: u16) -> String {
    format!(
        "      command: exec python3 -m http.server {port} --bind 127.0.0.1\n      \
         readiness: {{ http: {{ path: /, port: {port} }}, periodSeconds: 0.1 }}\n"
    )
}

fn tcp(port: u16) -> String {
    format!(
        "      command: >-\n        exec python3 -c \"import socket, time; s = socket.socket(); \
         s.bind(('127.0.0.1', {port})); s.listen(); time.sleep(1000)\"\n      \
         readiness: {{ tcp: {{ port: {port} }}, periodSeconds: 0.1 }}\n"
    )
}

fn log(name: &str) -> String {
    format!(
        "      command: echo {name} booting; echo {name} listening; exec sleep 1000\n      \
         readiness: {{ log: {{ pattern: '{name} listening' }} }}\n"
    )
}

fn exec(name: &str) -> String {
    format!(
        "      command: touch {name}.ready && exec sleep 1000\n      \
         readiness: {{ exec: {{ command: test -f {name}.ready }}, periodSeconds: 0.1 }}\n"
    )
}

fn plain() -> String {
    "      command: exec sleep 1000\n".to_string()
}

/// Ready only once the test creates `gate` in the project dir.
fn gated() -> String {
    "      command: exec sleep 1000\n      \
     readiness: { exec: { command: test -f gate }, periodSeconds: 0.1, timeoutSeconds: 60 }\n"
        .to_string()
}

/// 20 services in layers with diamonds and a fan-in, every probe kind, and one branch
/// (`slow` -> `slow-child`) whose readiness waits for the test's gate file.
///
/// ```text
///              root(tcp)
///   /     /      |      \      \       \
/// a1(http) a2(log) a3(exec) a4(-)  slow(gate) e1(log)
///   b1[a1,a2] b2[a2,a3] b3[a3,a4] b4[a1,a4]     slow-child[slow]  e2[e1,a4]
///   c1[b1,b2] c2[b2,b3] c3[b3,b4]
///   d1[c1] d2[c2,c3] d3[c1,c3]
///              top[d1,d2,d3,slow-child,e2]
/// ```
fn twenty(ports: &[u16]) -> Vec<Svc> {
    vec![
        Svc {
            name: "root",
            deps: &[],
            body: tcp(ports[0]),
        },
        Svc {
            name: "a1",
            deps: &["root"],
            body: http(ports[1]),
        },
        Svc {
            name: "a2",
            deps: &["root"],
            body: log("a2"),
        },
        Svc {
            name: "a3",
            deps: &["root"],
            body: exec("a3"),
        },
        Svc {
            name: "a4",
            deps: &["root"],
            body: plain(),
        },
        Svc {
            name: "slow",
            deps: &["root"],
            body: gated(),
        },
        Svc {
            name: "e1",
            deps: &["root"],
            body: log("e1"),
        },
        Svc {
            name: "b1",
            deps: &["a1", "a2"],
            body: tcp(ports[2]),
        },
        Svc {
            name: "b2",
            deps: &["a2", "a3"],
            body: exec("b2"),
        },
        Svc {
            name: "b3",
            deps: &["a3", "a4"],
            body: http(ports[3]),
        },
        Svc {
            name: "b4",
            deps: &["a1", "a4"],
            body: log("b4"),
        },
        Svc {
            name: "slow-child",
            deps: &["slow"],
            body: plain(),
        },
        Svc {
            name: "e2",
            deps: &["e1", "a4"],
            body: exec("e2"),
        },
        Svc {
            name: "c1",
            deps: &["b1", "b2"],
            body: plain(),
        },
        Svc {
            name: "c2",
            deps: &["b2", "b3"],
            body: log("c2"),
        },
        Svc {
            name: "c3",
            deps: &["b3", "b4"],
            body: exec("c3"),
        },
        Svc {
            name: "d1",
            deps: &["c1"],
            body: http(ports[4]),
        },
        Svc {
            name: "d2",
            deps: &["c2", "c3"],
            body: tcp(ports[5]),
        },
        Svc {
            name: "d3",
            deps: &["c1", "c3"],
            body: plain(),
        },
        Svc {
            name: "top",
            deps: &["d1", "d2", "d3", "slow-child", "e2"],
            body: exec("top"),
        },
    ]
}

fn deps_of(services: &[Svc]) -> BTreeMap<&'static str, &'static [&'static str]> {
    services.iter().map(|s| (s.name, s.deps)).collect()
}

/// Every service's dependencies, transitively, plus itself.
fn closure(services: &[Svc], wanted: &[&str]) -> BTreeSet<String> {
    let deps = deps_of(services);
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = wanted.to_vec();
    while let Some(n) = todo.pop() {
        if seen.insert(n.to_string()) {
            todo.extend(deps[n].iter().copied());
        }
    }
    seen
}

/// Each started service started once, after every dependency of it was ready (in the
/// daemon's own log order and by timestamp).
fn assert_dependency_order(env: &TestEnv, services: &[Svc], started: &BTreeSet<String>) {
    let events = system_events(env);
    let dump = || {
        events
            .iter()
            .map(|e| format!("{:>4} {} {:<10} {}", e.index, e.millis, e.service, e.line))
            .collect::<Vec<_>>()
            .join("\n")
    };
    for s in services.iter().filter(|s| started.contains(s.name)) {
        let starts = events
            .iter()
            .filter(|e| e.service == s.name && is_started(&e.line))
            .count();
        assert_eq!(starts, 1, "{} started {starts} times\n{}", s.name, dump());
        let start = first(&events, s.name, is_started)
            .unwrap_or_else(|| panic!("{} has no `started` line\n{}", s.name, dump()));
        for dep in s.deps {
            let ready = first(&events, dep, is_ready_or_done).unwrap_or_else(|| {
                panic!(
                    "{dep} (a dependency of {}) never got ready\n{}",
                    s.name,
                    dump()
                )
            });
            assert!(
                ready.index < start.index && ready.millis <= start.millis,
                "{} started before its dependency {dep} was ready\n{}",
                s.name,
                dump()
            );
        }
    }
    for s in services.iter().filter(|s| !started.contains(s.name)) {
        assert!(
            first(&events, s.name, is_started).is_none(),
            "{} was started but nothing asked for it\n{}",
            s.name,
            dump()
        );
    }
}

#[test]
fn twenty_services_start_in_dependency_order_and_in_parallel() {
    let env = TestEnv::new();
    let ports = free_ports(6);
    let services = twenty(&ports);
    env.write_config(&render("graph", &services));

    let mut up = Background::spawn(&env, &["up"]);
    // `top` needs `slow`, which is ready only once the gate exists. The rest of the
    // graph, three and four levels deep on other branches, must get ready meanwhile:
    // a scheduler that starts in waves (a level after the whole previous level) would
    // stall at `slow`'s level and never get there.
    let others: Vec<&str> = services
        .iter()
        .map(|s| s.name)
        .filter(|n| !["slow", "slow-child", "top"].contains(n))
        .collect();
    let mut last = BTreeMap::new();
    let got_there = wait_until(Duration::from_secs(60), || {
        last = env.states();
        others
            .iter()
            .all(|n| last.get(*n).map(String::as_str) == Some("ready"))
            || up.child.try_wait().ok().flatten().is_some()
    });
    assert!(
        got_there && others.iter().all(|n| last[*n] == "ready"),
        "the branches that do not depend on `slow` did not all get ready while `slow` \
         waited: {last:?}\n{}",
        up.output()
    );
    assert_eq!(
        last["slow"], "starting",
        "slow should still wait for its gate: {last:?}"
    );
    assert_eq!(last["slow-child"], "pending", "{last:?}");
    assert_eq!(last["top"], "pending", "{last:?}");
    assert!(
        up.child.try_wait().expect("try_wait").is_none(),
        "up ended early\n{}",
        up.output()
    );

    std::fs::write(env.project.join("gate"), "").expect("open the gate");
    let code = up.wait_exit(Duration::from_secs(60));
    assert_eq!(
        code.and_then(|c| c.code()),
        Some(0),
        "up should succeed once the gate is open\n{}",
        up.output()
    );
    let states = env.states();
    assert_eq!(states.len(), 20, "{states:?}");
    assert!(
        states.values().all(|s| s == "ready"),
        "after up: {states:?}"
    );

    let all: BTreeSet<String> = services.iter().map(|s| s.name.to_string()).collect();
    assert_dependency_order(&env, &services, &all);
    // In the log too: d2 (four levels below root, on another branch) was ready before
    // slow, whose only dependency is root.
    let events = system_events(&env);
    let d2 = first(&events, "d2", is_ready_or_done).expect("d2 ready");
    let slow = first(&events, "slow", is_ready_or_done).expect("slow ready");
    assert!(d2.index < slow.index, "d2 was not ready before slow");
    env.devenv_ok(&["down"]);
}

#[test]
fn up_service_starts_only_it_and_its_transitive_dependencies() {
    let env = TestEnv::new();
    let ports = free_ports(6);
    let services = twenty(&ports);
    env.write_config(&render("partial", &services));

    env.devenv_ok(&["up", "d2", "e2"]);
    let wanted = closure(&services, &["d2", "e2"]);
    let expected: BTreeSet<String> = [
        "root", "a1", "a2", "a3", "a4", "b2", "b3", "b4", "c2", "c3", "d2", "e1", "e2",
    ]
    .map(String::from)
    .into();
    assert_eq!(wanted, expected, "the test's own closure is off");
    let status = env.status_json();
    for s in &services {
        let state = service(&status, s.name)["state"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if wanted.contains(s.name) {
            assert_eq!(
                state, "ready",
                "{} is needed by d2 or e2:\n{status:#}",
                s.name
            );
        } else {
            assert!(
                matches!(state.as_str(), "pending" | "stopped"),
                "{} is not needed by d2 or e2 but is {state}:\n{status:#}",
                s.name
            );
            assert!(
                service(&status, s.name)["pid"].as_u64().unwrap_or(0) == 0,
                "{} has a pid:\n{status:#}",
                s.name
            );
        }
    }
    assert_eq!(
        env.service_pids().len(),
        wanted.len(),
        "service processes running: {:?}",
        env.service_pids()
    );
    assert_dependency_order(&env, &services, &wanted);
    env.devenv_ok(&["down"]);
}

#[test]
fn oneshot_dependency_completes_before_its_dependent_starts() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        config_head("oneshot"),
        "    - name: db
      command: exec sleep 1000
    - name: migrate
      # Takes a moment, so a dependent started on `started` would not find the file.
      command: echo migrating; sleep 0.5; echo done > migrated
      oneshot: true
      dependencies: [db]
    - name: app
      command: test -f migrated && exec sleep 1000
      restart: never
      dependencies: [migrate]
"
    ));
    let up = env.devenv_ok(&["up"]);
    let status = env.status_json();
    assert_eq!(
        service(&status, "migrate")["state"],
        "completed",
        "{status:#}\n{up}"
    );
    assert_eq!(
        service(&status, "app")["state"],
        "ready",
        "{status:#}\n{up}"
    );
    assert!(env.project.join("migrated").is_file());

    let events = system_events(&env);
    let done = first(&events, "migrate", |l| l == "exited with code 0").expect("migrate exited 0");
    let app = first(&events, "app", is_started).expect("app started");
    assert!(
        done.index < app.index && done.millis <= app.millis,
        "app started before migrate completed: {events:#?}"
    );
    env.devenv_ok(&["down"]);
}

#[test]
fn failing_oneshot_keeps_its_dependent_from_starting() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        config_head("oneshot-fails"),
        "    - name: migrate
      command: echo 'migration 42 failed' >&2; exit 4
      oneshot: true
    - name: app
      command: touch app-started && exec sleep 1000
      dependencies: [migrate]
"
    ));
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "up should fail\n{up}");
    assert!(
        up.combined().contains("migrate"),
        "up does not name migrate\n{up}"
    );
    assert!(
        !env.project.join("app-started").exists(),
        "app started after a failed one-shot"
    );
    let status = env.status_json();
    assert_eq!(service(&status, "migrate")["state"], "failed", "{status:#}");
}

/// `stuck` never gets ready (2 s timeout); `base` (its dependency) and `side`
/// (independent) do; `after` depends on `stuck`.
fn timeout_config(env: &TestEnv, port: u16) {
    env.write_config(&format!(
        "{}{}",
        config_head("probe-timeout"),
        format_args!(
            "    - name: base
      command: exec sleep 1000
    - name: side
      command: echo side up; exec sleep 1000
      readiness: {{ log: {{ pattern: side up }} }}
    - name: stuck
      command: exec sleep 1000
      dependencies: [base]
      readiness: {{ tcp: {{ port: {port} }}, periodSeconds: 0.2, timeoutSeconds: 2 }}
    - name: after
      command: touch after-started && exec sleep 1000
      dependencies: [stuck]
"
        )
    ));
}

fn assert_names_timeout(up: &devenv_e2e::CmdOutput) {
    assert_eq!(up.code, Some(1), "up should fail\n{up}");
    let text = up.combined();
    assert!(text.contains("stuck"), "up does not name stuck\n{up}");
    assert!(
        text.contains("did not pass"),
        "up does not say the probe did not pass\n{up}"
    );
    assert!(
        up.elapsed < Duration::from_secs(20),
        "up took {:?}\n{up}",
        up.elapsed
    );
}

#[test]
fn probe_timeout_fails_up_and_stops_what_it_started() {
    let env = TestEnv::new();
    timeout_config(&env, free_ports(1)[0]);
    let up = env.devenv(&["up"]);
    assert_names_timeout(&up);
    assert!(
        !env.project.join("after-started").exists(),
        "after started\n{up}"
    );

    let gone = wait_until(Duration::from_secs(15), || env.service_pids().is_empty());
    assert!(
        gone,
        "services still running after the failed up: {:?}",
        env.service_pids()
    );
    let states = env.states();
    for (name, state) in &states {
        assert!(
            !matches!(state.as_str(), "ready" | "starting" | "unhealthy"),
            "{name} is {state} after a failed up: {states:?}"
        );
    }
    assert!(
        matches!(
            states.get("stuck").map(String::as_str),
            Some("failed" | "stopped")
        ),
        "{states:?}"
    );
}

#[test]
fn probe_timeout_with_keep_going_keeps_the_rest_running() {
    let env = TestEnv::new();
    timeout_config(&env, free_ports(1)[0]);
    let up = env.devenv(&["up", "--keep-going"]);
    assert_names_timeout(&up);
    assert!(
        !env.project.join("after-started").exists(),
        "after started\n{up}"
    );

    let status = env.status_json();
    for name in ["base", "side"] {
        let s = service(&status, name);
        assert_eq!(
            s["state"], "ready",
            "{name} should keep running:\n{status:#}"
        );
        let pid = s["pid"].as_u64().unwrap_or(0) as u32;
        assert!(devenv_e2e::alive(pid), "{name}'s pid {pid} is not alive");
    }
    assert_eq!(service(&status, "stuck")["state"], "failed", "{status:#}");
    assert!(
        matches!(
            service(&status, "after")["state"].as_str(),
            Some("pending" | "stopped")
        ),
        "{status:#}"
    );
    assert_eq!(
        env.service_pids().len(),
        2,
        "{:?}\n{status:#}",
        env.service_pids()
    );
    env.devenv_ok(&["down"]);
}
