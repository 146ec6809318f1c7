//! Restart policies and health after ready: a crash loop backs off, `devenv restart`
//! replaces the process, and a probe failing after ready makes a service `unhealthy`.

#[path = "../src/graph_support.rs"]
mod graph_support;

use std::time::Duration;

use devenv_e2e::{alive, free_ports, wait_until, TestEnv};
use graph_support::{config_head, is_started, service, system_events, try_status, Background};

fn restarts_and_message(env: &TestEnv, name: &str) -> Option<(u64, String)> {
    let status = try_status(env)?;
    let s = service(&status, name);
    Some((
        s["restarts"].as_u64()?,
        s["message"].as_str().unwrap_or_default().to_string(),
    ))
}

/// When each run of `service` started, from the daemon's log (`started (pid N)`), in
/// milliseconds since the epoch: the daemon's clock, not this test's sampling.
fn starts(env: &TestEnv, service: &str) -> Vec<u64> {
    system_events(env)
        .into_iter()
        .filter(|e| e.service == service && is_started(&e.line))
        .map(|e| e.millis)
        .collect()
}

#[test]
fn crash_loop_restarts_with_growing_backoff() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        config_head("crashloop"),
        "    - name: flappy
      command: echo flappy tries; exit 1
      restart: on-failure
"
    ));
    // In the background: with no probe, `up` is over at the first start.
    let mut up = Background::spawn(&env, &["up"]);
    let mut messages = Vec::new();
    let got = wait_until(Duration::from_secs(40), || {
        let Some((restarts, message)) = restarts_and_message(&env, "flappy") else {
            return false;
        };
        if messages.last() != Some(&message) {
            messages.push(message);
        }
        restarts >= 5
    });
    assert!(
        got,
        "flappy did not reach 5 restarts in 40 s: {messages:?}\n{}",
        up.output()
    );
    let status = env.status_json();
    let flappy = service(&status, "flappy");
    assert_eq!(
        flappy["crashes"], flappy["restarts"],
        "every restart of flappy followed a crash\n{status:#}"
    );
    // The message of a restart in waiting says so; sampled, so only when one was seen.
    if let Some(m) = messages.iter().find(|m| m.contains("restart")) {
        assert!(m.contains("restarting in "), "{messages:?}");
    }
    // Timings from the daemon's own log, so that a slow `status` under load can't
    // blur them. Runs exit at once; without back-off there would be hundreds of them
    // in a few seconds. Back-off: 0.2 s, 0.4 s, 0.8 s, 1.6 s, ... between runs.
    // The 5th restart is counted when the 5th run exits; its start comes after the wait.
    let mut t = Vec::new();
    assert!(
        wait_until(Duration::from_secs(20), || {
            t = starts(&env, "flappy");
            t.len() >= 6
        }),
        "fewer than 6 starts logged: {t:?}"
    );
    let gaps: Vec<u64> = t.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= 150,
        "the first restart came after {} ms, without back-off ({gaps:?})",
        gaps[0]
    );
    for (i, w) in gaps.windows(2).take(4).enumerate() {
        assert!(
            w[1] > w[0] * 3 / 2,
            "back-off does not grow between restarts {} and {}: gaps {gaps:?} ms",
            i + 1,
            i + 2
        );
    }

    let exit = up.wait_exit(Duration::from_secs(20));
    assert!(exit.is_some(), "up did not end\n{}", up.output());

    // `down` stops the loop.
    env.devenv_ok(&["down"]);
    let (restarts, _) = restarts_and_message(&env, "flappy").expect("status");
    let logged = starts(&env, "flappy").len();
    assert!(
        !wait_until(Duration::from_secs(2), || {
            restarts_and_message(&env, "flappy").is_some_and(|(r, _)| r != restarts)
                || starts(&env, "flappy").len() != logged
        }),
        "still restarting after down"
    );
    assert!(env.service_pids().is_empty(), "{:?}", env.service_pids());
}

#[test]
fn a_manual_restart_is_counted_apart_from_crashes_and_resets_the_backoff() {
    let env = TestEnv::new();
    // Crashes until the file `fixed` exists, then runs.
    env.write_config(&format!(
        "{}{}",
        config_head("resets"),
        "    - name: flappy
      command: if [ -e fixed ]; then exec sleep 1000; fi; exit 1
      restart: on-failure
"
    ));
    let mut up = Background::spawn(&env, &["up"]);
    // Let the back-off grow past 3 s (crashes 1..5: 0.2 + 0.4 + 0.8 + 1.6 s, next 3.2 s).
    assert!(
        wait_until(Duration::from_secs(40), || {
            restarts_and_message(&env, "flappy").is_some_and(|(r, _)| r >= 5)
        }),
        "flappy did not crash 5 times\n{}",
        up.output()
    );
    // Fixed during the 3.2 s wait: the next run stays up.
    std::fs::write(env.project.join("fixed"), "").expect("write fixed");
    let mut before = env.status_json();
    assert!(
        wait_until(Duration::from_secs(20), || {
            before = env.status_json();
            service(&before, "flappy")["pid"]
                .as_u64()
                .is_some_and(|p| alive(p as u32))
        }),
        "flappy does not run after the fix\n{before:#}"
    );
    let crashes = service(&before, "flappy")["crashes"]
        .as_u64()
        .expect("crashes");
    assert!(crashes >= 5, "{before:#}");
    assert_eq!(
        service(&before, "flappy")["restarts"].as_u64(),
        Some(crashes)
    );
    env.devenv_ok(&["restart", "flappy"]);
    let after = env.status_json();
    let f = service(&after, "flappy");
    assert_eq!(f["crashes"].as_u64(), Some(crashes), "{after:#}");
    assert_eq!(
        f["restarts"].as_u64(),
        Some(crashes + 1),
        "the manual restart is counted, apart from the crashes\n{after:#}"
    );
    let text = env.devenv_ok(&["status"]).stdout;
    assert!(
        text.contains(&format!("{} ({crashes} crashes)", crashes + 1)),
        "status does not show restarts and crashes apart:\n{text}"
    );
    // The back-off starts over: a crash after the manual restart waits 0.2 s, not 6.4 s.
    assert!(alive(f["pid"].as_u64().unwrap_or(0) as u32), "{after:#}");
    std::fs::remove_file(env.project.join("fixed")).expect("remove fixed");
    let pid = f["pid"].as_u64().expect("pid") as i32;
    let logged = starts(&env, "flappy").len();
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL)
        .expect("kill flappy");
    assert!(
        wait_until(Duration::from_secs(10), || starts(&env, "flappy").len()
            > logged),
        "flappy did not start again after a crash"
    );
    let t = starts(&env, "flappy");
    let killed_at = system_events(&env)
        .into_iter()
        .rev()
        .find(|e| e.service == "flappy" && e.line.starts_with("killed by"))
        .map(|e| e.millis)
        .expect("the kill is logged");
    let gap = t[logged] - killed_at;
    assert!(
        gap < 1500,
        "after a manual restart the next crash waited {gap} ms: the back-off was not reset"
    );
    assert!(
        up.wait_exit(Duration::from_secs(20)).is_some(),
        "{}",
        up.output()
    );
    env.devenv_ok(&["down"]);
}

#[test]
fn restart_replaces_the_process_and_counts_it() {
    let env = TestEnv::new();
    let port = free_ports(1)[0];
    env.write_config(&format!(
        "{}{}",
        config_head("restart"),
        format_args!(
            "    - name: web
      command: exec python3 -m http.server {port} --bind 127.0.0.1
      readiness: {{ http: {{ path: /, port: {port} }}, periodSeconds: 0.1 }}
    - name: other
      command: exec sleep 1000
"
        )
    ));
    env.devenv_ok(&["up"]);
    let before = env.status_json();
    let pid = |s: &serde_json::Value, n: &str| service(s, n)["pid"].as_u64().unwrap_or(0) as u32;
    let (old_web, old_other) = (pid(&before, "web"), pid(&before, "other"));
    let old_restarts = service(&before, "web")["restarts"]
        .as_u64()
        .expect("restarts");
    assert!(alive(old_web) && alive(old_other), "{before:#}");

    env.devenv_ok(&["restart", "web"]);
    let mut after = before.clone();
    let ok = wait_until(Duration::from_secs(20), || {
        after = env.status_json();
        service(&after, "web")["state"] == "ready" && pid(&after, "web") != old_web
    });
    assert!(
        ok,
        "web was not restarted to ready with a new pid:\n{after:#}"
    );
    let new_web = pid(&after, "web");
    assert!(new_web > 0 && alive(new_web), "{after:#}");
    assert!(
        wait_until(Duration::from_secs(10), || !alive(old_web)),
        "the old web process {old_web} is still alive"
    );
    assert_eq!(
        service(&after, "web")["restarts"].as_u64(),
        Some(old_restarts + 1),
        "{after:#}"
    );
    assert!(
        devenv_e2e::http_get(port, "/").is_some_and(|r| r.status == 200),
        "web does not answer after restart"
    );
    // The other service was left alone.
    assert_eq!(pid(&after, "other"), old_other, "{after:#}");
    assert_eq!(
        service(&after, "other")["restarts"].as_u64(),
        Some(0),
        "{after:#}"
    );
    env.devenv_ok(&["down"]);
}

#[test]
fn probe_failing_after_ready_makes_the_service_unhealthy() {
    let env = TestEnv::new();
    let port = free_ports(1)[0];
    let www = env.project.join("www");
    std::fs::create_dir_all(&www).expect("mkdir www");
    std::fs::write(www.join("health"), "ok").expect("write health");
    env.write_config(&format!(
        "{}{}",
        config_head("health"),
        format_args!(
            "    - name: api
      command: exec python3 -m http.server {port} --bind 127.0.0.1 --directory www
      readiness:
        http: {{ path: /health, port: {port} }}
        periodSeconds: 0.2
        failureThreshold: 2
"
        )
    ));
    env.devenv_ok(&["up"]);
    assert_eq!(env.states()["api"], "ready");

    // /health now answers 404.
    std::fs::remove_file(www.join("health")).expect("remove health");
    let mut status = env.status_json();
    let unhealthy = wait_until(Duration::from_secs(10), || {
        status = env.status_json();
        service(&status, "api")["state"] == "unhealthy"
    });
    assert!(unhealthy, "api did not become unhealthy:\n{status:#}");
    let api = service(&status, "api");
    assert_eq!(api["ready"], false, "{status:#}");
    assert!(
        api["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message says why:\n{status:#}"
    );
    assert!(
        alive(api["pid"].as_u64().unwrap_or(0) as u32),
        "unhealthy is not dead: {status:#}"
    );

    // And back: one passing probe makes it ready again.
    std::fs::write(www.join("health"), "ok").expect("restore health");
    let ready = wait_until(Duration::from_secs(10), || {
        status = env.status_json();
        service(&status, "api")["state"] == "ready"
    });
    assert!(ready, "api did not recover:\n{status:#}");
    env.devenv_ok(&["down"]);
}
