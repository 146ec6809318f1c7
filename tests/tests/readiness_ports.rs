//! Readiness can't be fooled by another process on a service's port: a port held
//! before the start fails `up` at once naming the holder; a probe answered by a
//! listener that is not the service's own process does not make it ready.

#[path = "../src/graph_support.rs"]
mod graph_support;

use std::time::{Duration, Instant};

use devenv_e2e::{alive, free_ports, wait_until, TestEnv};
use graph_support::{config_head, service, system_events};

#[test]
fn a_stray_listener_on_the_port_fails_up_at_once_naming_it() {
    let env = TestEnv::new();
    // The stray: this test process, listening on the port the service declares.
    let stray = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = stray.local_addr().expect("addr").port();
    env.write_config(&format!(
        "{}    - name: web
      command: exec python3 -m http.server {port} --bind 127.0.0.1
      ports: [{port}]
      restart: on-failure
      readiness: {{ http: {{ path: /, port: {port} }}, timeoutSeconds: 60 }}
",
        config_head("stray")
    ));
    let started = Instant::now();
    let up = env.devenv(&["up"]);
    let took = started.elapsed();
    assert_eq!(up.code, Some(1), "up must fail\n{up}");
    // At once: not after the 60 s readiness timeout, nor after restarts.
    assert!(took < Duration::from_secs(15), "up took {took:?}\n{up}");
    let me = std::process::id();
    let exe = std::env::current_exe().expect("current_exe");
    let exe_name = exe
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let text = up.combined();
    let named = format!("port {port} is in use by pid {me} (");
    assert!(
        text.contains(&named),
        "up does not name the holder ({named})\n{up}"
    );
    assert!(
        text.contains(&exe_name),
        "up does not name the holder's command ({exe_name})\n{up}"
    );
    let status = env.status_json();
    let web = service(&status, "web");
    assert_eq!(web["state"], "failed", "{status:#}");
    assert_eq!(web["restarts"], 0, "a held port is not retried\n{status:#}");
    assert!(
        web["message"].as_str().unwrap_or_default().contains(&named),
        "{status:#}"
    );
    // The service never ran: nothing but the stray answers there.
    assert!(
        !system_events(&env)
            .iter()
            .any(|e| e.service == "web" && e.line.starts_with("started (pid ")),
        "web was started although its port was taken"
    );

    // Once the port is free, the same up works.
    drop(stray);
    env.devenv_ok(&["up"]);
    assert_eq!(env.states()["web"], "ready");
    env.devenv_ok(&["down"]);
}

/// Kills the stray server the service left behind, whatever the test's outcome.
struct StrayGuard(std::path::PathBuf);

impl StrayGuard {
    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(&self.0).ok()?.trim().parse().ok()
    }
}

impl Drop for StrayGuard {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::SIGKILL,
            );
        }
    }
}

#[test]
fn a_crash_looping_service_is_never_ready_while_a_stray_answers_its_probe() {
    let env = TestEnv::new();
    let port = free_ports(1)[0];
    let guard = StrayGuard(env.project.join("stray.pid"));
    // The first run leaves a server on the probe's port that is not the service's:
    // a new session, without the service's marker (like a server started by hand in
    // another terminal). Then the service crashes, every run, without ever listening.
    env.write_config(&format!(
        "{}    - name: frontend
      command: >-
        if [ ! -e stray.pid ]; then
        env -u DEVENV_MARKER setsid python3 -m http.server {port} --bind 127.0.0.1
        </dev/null >/dev/null 2>&1 & echo $! > stray.pid; fi;
        echo crashing soon; sleep 3; exit 1
      restart: always
      readiness: {{ http: {{ path: /, port: {port} }}, periodSeconds: 1, timeoutSeconds: 8 }}
",
        config_head("crashloop")
    ));
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "up must fail\n{up}");
    let stray = guard.pid().expect("the service wrote the stray's pid");
    assert!(alive(stray), "the stray server is gone\n{up}");
    // The stray answered the probe during the first run (it is a real HTTP server).
    assert!(
        devenv_e2e::http_get(port, "/").is_some_and(|r| r.status == 200),
        "the stray does not answer on {port}"
    );
    let events = system_events(&env);
    let ready: Vec<_> = events
        .iter()
        .filter(|e| e.service == "frontend" && e.line == "ready")
        .collect();
    assert!(
        ready.is_empty(),
        "frontend was reported ready: {ready:?}\n{up}"
    );
    let text = up.combined();
    assert!(
        text.contains(&format!("pid {stray} (")),
        "up does not name the stray's pid {stray}\n{up}"
    );
    assert_eq!(env.states()["frontend"], "failed");
    drop(guard);
    assert!(
        wait_until(Duration::from_secs(5), || !alive(stray)),
        "stray {stray} survived SIGKILL"
    );
    env.devenv_ok(&["down"]);
}

#[test]
fn a_readiness_timeout_names_the_port_the_service_says_it_listens_on() {
    let env = TestEnv::new();
    let p = free_ports(2);
    let (probed, real) = (p[0], p[1]);
    env.write_config(&format!(
        "{}    - name: api
      command: exec python3 -u -m http.server {real} --bind 127.0.0.1
      ports: [{probed}]
      readiness: {{ tcp: {{ port: {probed} }}, periodSeconds: 0.2, timeoutSeconds: 2 }}
",
        config_head("wrongport")
    ));
    let up = env.devenv(&["up"]);
    assert_eq!(up.code, Some(1), "up must fail\n{up}");
    let hint = format!("its log says it listens on port {real}, the probe checks {probed}");
    assert!(up.combined().contains(&hint), "no hint `{hint}`\n{up}");
}
