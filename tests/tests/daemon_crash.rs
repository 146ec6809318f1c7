//! The daemon killed with SIGKILL takes its services with it; the next daemon knows
//! they are stopped and can bring them up again.

use std::time::Duration;

use devenv_e2e::{alive, http_get, port_open, wait_until, TestEnv};

#[test]
fn sigkill_of_the_daemon_leaves_no_service_behind() {
    let mut env = TestEnv::new();
    let (db, api, web) = env.quickstart();
    env.devenv_ok(&["up"]);
    let status = env.status_json();
    let pids: Vec<u32> = status["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| s["pid"].as_u64().unwrap_or(0) as u32)
        .collect();
    assert!(
        pids.len() == 3 && pids.iter().all(|p| alive(*p)),
        "not all running\n{status:#}"
    );
    let daemon = env.daemon_pid();
    assert!(
        !pids.contains(&daemon),
        "daemon pid {daemon} is a service pid?"
    );

    assert_eq!(env.kill_daemon_hard(), daemon);

    let clean = wait_until(Duration::from_secs(10), || {
        pids.iter().all(|p| !alive(*p))
            && [db, api, web].iter().all(|p| !port_open(*p))
            && env.service_pids().is_empty()
    });
    let survivors: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
    let open: Vec<u16> = [db, api, web]
        .into_iter()
        .filter(|p| port_open(*p))
        .collect();
    assert!(
        clean,
        "10 s after kill -9 of the daemon: live service pids {survivors:?}, open ports {open:?}, \
         marked processes {:?}",
        env.service_pids()
    );

    // A new daemon (auto-started by status) reports them stopped, not ready.
    let states = env.states();
    let new_daemon = env.daemon_pid();
    assert_ne!(new_daemon, daemon, "status did not start a new daemon");
    assert_eq!(
        states.len(),
        3,
        "the new daemon forgot the environment: {states:?}"
    );
    assert!(
        states.values().all(|s| s == "stopped"),
        "after daemon crash: {states:?}"
    );

    // And up works again.
    env.devenv_ok(&["up"]);
    assert_eq!(http_get(api, "/greeting").map(|r| r.status), Some(200));
    assert!(env.states().values().all(|s| s == "ready"));
    env.devenv_ok(&["down"]);
}
