//! `watch` rules of local services, through the real daemon: a save restarts the
//! process (graceful stop, start, readiness again), ignored files do not, `exec` runs
//! its command into the service's log, a burst is one restart, polling takes over
//! past the inotify budget, and `down` ends the watching.

#[path = "../src/graph_support.rs"]
mod graph_support;

use std::time::Duration;

use devenv_e2e::{alive, free_ports, http_get, wait_until, TestEnv};
use graph_support::{config_head, service, system_events, try_status};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// A python http server in ./app, ready on http, restarted on changes under ./app.
fn web_config(env: &TestEnv, port: u16, watch_extra: &str) -> u16 {
    write(env, "app/main.py", "print('v1')\n");
    env.write_config(&format!(
        "{}    - name: web
      command: exec python3 -m http.server {port} --bind 127.0.0.1
      workdir: ./app
      readiness: {{ http: {{ path: /, port: {port} }}, periodSeconds: 0.1 }}
      watch: {{ paths: [./app]{watch_extra}, action: restart }}
",
        config_head("watching")
    ));
    port
}

fn write(env: &TestEnv, rel: &str, text: &str) {
    let p = env.project.join(rel);
    std::fs::create_dir_all(p.parent().expect("has a parent")).expect("mkdir");
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

/// (state, pid, restarts) of `name`.
fn snapshot(status: &Value, name: &str) -> (String, u64, u64) {
    let s = service(status, name);
    (
        s["state"].as_str().unwrap_or_default().to_string(),
        s["pid"].as_u64().unwrap_or(0),
        s["restarts"].as_u64().unwrap_or(0),
    )
}

/// The watcher's lines in `name`'s log, in order.
fn watch_lines(env: &TestEnv, name: &str) -> Vec<String> {
    system_events(env)
        .into_iter()
        .filter(|e| e.service == name && e.line.starts_with("watch"))
        .map(|e| e.line)
        .collect()
}

fn restart_lines(env: &TestEnv, name: &str) -> Vec<String> {
    watch_lines(env, name)
        .into_iter()
        .filter(|l| l.ends_with(": restarting"))
        .collect()
}

/// Waits until `name` is ready with another pid than `old_pid` and `restarts`
/// restarts; returns its status.
fn wait_restarted(env: &TestEnv, name: &str, old_pid: u64, restarts: u64) -> Value {
    let mut last = Value::Null;
    let ok = wait_until(WAIT, || {
        let Some(s) = try_status(env) else {
            return false;
        };
        let (state, pid, r) = snapshot(&s, name);
        last = s;
        state == "ready" && pid != old_pid && pid != 0 && r == restarts
    });
    assert!(
        ok,
        "{name} was not restarted to ready ({restarts} restarts):\n{last:#}\nwatch lines: {:?}",
        watch_lines(env, name)
    );
    last
}

#[test]
fn a_save_restarts_the_local_process_until_ready_again() {
    let env = TestEnv::new();
    let port = web_config(&env, free_ports(1)[0], "");
    env.devenv_ok(&["up"]);
    let (state, pid, restarts) = snapshot(&env.status_json(), "web");
    assert_eq!(state, "ready");
    assert!(
        watch_lines(&env, "web")
            .iter()
            .any(|l| l.starts_with("watching ./app for changes (1 directories")),
        "{:?}",
        watch_lines(&env, "web")
    );

    write(&env, "app/main.py", "print('v2')\n");
    let after = wait_restarted(&env, "web", pid, restarts + 1);
    assert!(
        wait_until(Duration::from_secs(10), || !alive(pid as u32)),
        "the old process {pid} is still alive"
    );
    assert!(
        http_get(port, "/").is_some_and(|r| r.status == 200),
        "web does not answer after the restart:\n{after:#}"
    );
    assert_eq!(
        restart_lines(&env, "web"),
        ["watch: ./app/main.py changed: restarting"]
    );

    // And again: the watch goes on after a restart.
    let (_, pid2, _) = snapshot(&after, "web");
    write(&env, "app/main.py", "print('v3')\n");
    wait_restarted(&env, "web", pid2, restarts + 2);
    env.devenv_ok(&["down"]);
}

#[test]
fn ignored_files_do_not_restart() {
    let env = TestEnv::new();
    write(&env, ".gitignore", "*.log\nbuild/\n");
    write(&env, "app/build/bundle.js", "old");
    web_config(&env, free_ports(1)[0], ", ignore: [\"*.tmp\"]");
    env.devenv_ok(&["up"]);
    let (_, pid, restarts) = snapshot(&env.status_json(), "web");
    assert_eq!(restarts, 0);

    // Ignored by .gitignore, inside a .gitignored tree, by the rule's glob...
    write(&env, "app/debug.log", "x");
    write(&env, "app/build/bundle.js", "new");
    write(&env, "app/build/new/chunk.js", "new");
    write(&env, "app/notes.tmp", "x");
    // ...then one that counts.
    write(&env, "app/main.py", "print('v2')\n");
    wait_restarted(&env, "web", pid, 1);
    // Exactly one restart, for the file that counts, and no other.
    assert_eq!(
        restart_lines(&env, "web"),
        ["watch: ./app/main.py changed: restarting"]
    );
    let (_, _, restarts) = snapshot(&env.status_json(), "web");
    assert_eq!(restarts, 1);
    env.devenv_ok(&["down"]);
}

#[test]
fn exec_action_runs_the_command_into_the_log() {
    let env = TestEnv::new();
    write(&env, "proto/api.proto", "message V1 {}\n");
    env.write_config(&format!(
        "{}    - name: gen
      command: exec sleep 1000
      workdir: ./proto
      env: {{ FLAVOUR: salty }}
      watch: {{ paths: [./proto], action: {{ exec: \"echo regenerating for $DEVENV_SERVICE $FLAVOUR; cat api.proto\" }} }}
",
        config_head("watching")
    ));
    env.devenv_ok(&["up"]);
    let (_, pid, _) = snapshot(&env.status_json(), "gen");

    write(&env, "proto/api.proto", "message V2 {}\n");
    let mut out = String::new();
    let ok = wait_until(WAIT, || {
        out = env.devenv_ok(&["logs", "gen"]).stdout;
        out.contains("exited with code 0")
    });
    assert!(ok, "the command did not finish:\n{out}");
    for want in [
        "watch: ./proto/api.proto changed: running `echo regenerating",
        "regenerating for gen salty",
        "message V2 {}",
    ] {
        assert!(out.contains(want), "`{want}` is not in the log:\n{out}");
    }
    // The service itself was left alone.
    let (state, pid_after, restarts) = snapshot(&env.status_json(), "gen");
    assert_eq!((state.as_str(), pid_after, restarts), ("ready", pid, 0));
    env.devenv_ok(&["down"]);
}

#[test]
fn a_burst_of_writes_is_one_restart() {
    let env = TestEnv::new();
    web_config(&env, free_ports(1)[0], "");
    env.devenv_ok(&["up"]);
    let (_, pid, _) = snapshot(&env.status_json(), "web");

    // A code generator: 500 files in 10 new directories, as fast as it can.
    let writing = std::time::Instant::now();
    for i in 0..500 {
        write(&env, &format!("app/gen/d{}/f{i}.py", i % 10), "x = 1\n");
    }
    let writing = writing.elapsed();
    let mut last = Value::Null;
    let ok = wait_until(WAIT, || {
        let Some(s) = try_status(&env) else {
            return false;
        };
        let (state, p, r) = snapshot(&s, "web");
        last = s;
        state == "ready" && p != pid && r >= 1
    });
    assert!(ok, "no restart after the burst:\n{last:#}");
    // A marker after the burst: every line before its own belongs to the burst.
    write(&env, "app/marker.py", "done = True\n");
    let ok = wait_until(WAIT, || {
        watch_lines(&env, "web")
            .iter()
            .any(|l| l.contains("./app/marker.py"))
    });
    assert!(
        ok,
        "the marker was not seen: {:?}",
        watch_lines(&env, "web")
    );
    let lines = watch_lines(&env, "web");
    let marker = lines
        .iter()
        .position(|l| l.contains("./app/marker.py"))
        .expect("marker line");
    let burst: Vec<&String> = lines[..marker]
        .iter()
        .filter(|l| l.ends_with(": restarting"))
        .collect();
    // One batch (two when the burst straddles a quiet window); a burst that lasts
    // longer than the debounce's latency cap (300 ms) is cut every 300 ms by design, as
    // happens when a loaded machine slows the writes down.
    let allowed = 2 + (writing.as_millis() / 300) as usize;
    assert!(
        (1..=allowed).contains(&burst.len()),
        "500 writes in {writing:?} made {} restarts (at most {allowed}): {lines:#?}",
        burst.len()
    );
    assert!(burst[0].contains("files changed"), "{lines:#?}");
    env.devenv_ok(&["down"]);
}

#[test]
fn past_the_inotify_budget_directories_are_polled() {
    let mut env = TestEnv::new();
    env.set_var("DEVENV_WATCH_INOTIFY_BUDGET", 1);
    write(&env, "app/a/b/deep.py", "x = 1\n");
    web_config(&env, free_ports(1)[0], "");
    env.devenv_ok(&["up"]);
    let lines = watch_lines(&env, "web");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("inotify budget of 1 watches reached")
                && l.contains("polling 2 directories")),
        "the fallback is not reported: {lines:?}"
    );
    let (_, pid, _) = snapshot(&env.status_json(), "web");
    write(&env, "app/a/b/deep.py", "x = 2\n");
    wait_restarted(&env, "web", pid, 1);
    assert_eq!(
        restart_lines(&env, "web"),
        ["watch: ./app/a/b/deep.py changed: restarting"]
    );
    env.devenv_ok(&["down"]);
}

#[test]
fn down_stops_the_watching() {
    let env = TestEnv::new();
    web_config(&env, free_ports(1)[0], "");
    env.devenv_ok(&["up"]);
    env.devenv_ok(&["down"]);
    write(&env, "app/main.py", "print('after down')\n");
    // A live watcher reacts within tens of milliseconds (see the tests above); give
    // this one far longer to prove it is gone.
    let restarted = wait_until(Duration::from_secs(2), || {
        !restart_lines(&env, "web").is_empty()
    });
    assert!(
        !restarted,
        "restarted after down: {:?}",
        watch_lines(&env, "web")
    );
    let (state, _, _) = snapshot(&env.status_json(), "web");
    assert_eq!(state, "stopped");
    assert!(env.service_pids().is_empty(), "{:?}", env.service_pids());
}
