//! Restart policies and health after ready: a crash loop backs off, `devenv restart`
//! replaces the process, and a probe failing after ready makes a service `unhealthy`.

#[path = "../src/graph_support.rs"]
mod graph_support;

use std::time::{Duration, Instant};

use devenv_e2e::{alive, free_ports, wait_until, TestEnv};
use graph_support::{config_head, service, try_status, Background};

fn restarts_and_message(env: &TestEnv, name: &str) -> Option<(u64, String)> {
    let status = try_status(env)?;
    let s = service(&status, name);
    Some((
        s["restarts"].as_u64()?,
        s["message"].as_str().unwrap_or_default().to_string(),
    ))
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
    // In the background, so that sampling starts with the first run.
    let mut up = Background::spawn(&env, &["up"]);

    // Record when the restart count went up, sampling as fast as `status` answers.
    let t0 = Instant::now();
    let mut seen: Vec<(u64, Duration)> = Vec::new();
    let mut messages = Vec::new();
    let mut at_3s = None;
    let got = wait_until(Duration::from_secs(30), || {
        let Some((restarts, message)) = restarts_and_message(&env, "flappy") else {
            return false;
        };
        let now = t0.elapsed();
        if at_3s.is_none() && now >= Duration::from_secs(3) {
            at_3s = Some(restarts);
        }
        if seen.last().is_none_or(|(r, _)| restarts > *r) {
            seen.push((restarts, now));
            messages.push(message);
        }
        restarts >= 5 && at_3s.is_some()
    });
    assert!(
        got,
        "flappy did not reach 5 restarts in 30 s: {seen:?} {messages:?}\n{}",
        up.output()
    );
    assert!(
        messages.iter().any(|m| m.contains("restarting")),
        "no status message says it is restarting: {messages:?}"
    );
    // Exits every few ms; without backoff it would restart hundreds of times in 3 s.
    let at_3s = at_3s.expect("sampled at 3 s");
    assert!(
        (1..6).contains(&at_3s),
        "{at_3s} restarts after 3 s (backoff should allow ~3): {seen:?}"
    );
    // The gaps between restarts grow: compare the latest with the first we saw.
    let when = |n: u64| seen.iter().find(|(r, _)| *r >= n).map(|(_, t)| *t);
    let (Some(t1), Some(t2), Some(t4), Some(t5)) = (when(1), when(2), when(4), when(5)) else {
        panic!("missed restarts: {seen:?}");
    };
    assert!(
        t5 - t4 > (t2 - t1) * 3 / 2,
        "backoff does not grow: restart 1->2 took {:?}, 4->5 took {:?} ({seen:?})",
        t2 - t1,
        t5 - t4
    );

    // With no probe, flappy counted as ready when it first started: `up` is over.
    let exit = up.wait_exit(Duration::from_secs(20));
    assert!(exit.is_some(), "up did not end\n{}", up.output());

    // `down` stops the loop.
    env.devenv_ok(&["down"]);
    let (restarts, _) = restarts_and_message(&env, "flappy").expect("status");
    assert!(
        wait_until(Duration::from_secs(2), || restarts_and_message(
            &env, "flappy"
        )
        .is_some_and(|(r, _)| r == restarts)),
        "still restarting after down"
    );
    assert!(env.service_pids().is_empty(), "{:?}", env.service_pids());
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
