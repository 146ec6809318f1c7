//! The guardian (the process that kills the services when the daemon dies) can die
//! too: the daemon notices at once, starts a new one and tells it every live process
//! group, so a daemon SIGKILL afterwards still leaves nothing behind.

use std::time::{Duration, Instant};

use devenv_e2e::{alive, port_open, wait_until, TestEnv};

/// The live guardian processes of this env (the daemon's helper named
/// `devenv-guardian`, which carries the env's id like the daemon).
fn guardians(env: &TestEnv) -> Vec<u32> {
    env.all_pids()
        .into_iter()
        .filter(|p| {
            alive(*p)
                && std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim_end() == "devenv-guardian")
        })
        .collect()
}

fn the_guardian(env: &TestEnv) -> u32 {
    let mut found = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            found = guardians(env);
            found.len() == 1
        }),
        "expected one guardian, found {found:?}"
    );
    found[0]
}

/// SIGKILLs the guardian and waits for its replacement; returns the new pid.
fn kill_guardian(env: &TestEnv) -> u32 {
    let old = the_guardian(env);
    let t = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old as i32),
        nix::sys::signal::SIGKILL,
    )
    .expect("kill -9 the guardian");
    let mut new = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            new = guardians(env);
            new.len() == 1 && new[0] != old
        }),
        "10 s after kill -9 of guardian {old}: guardians {new:?}"
    );
    eprintln!(
        "guardian: {old} replaced by {} within {:?} (as seen by polling /proc)",
        new[0],
        t.elapsed()
    );
    new[0]
}

/// Waits (bounded) until no process of this env's services is left and the
/// quickstart ports are closed.
fn assert_nothing_left(env: &TestEnv, ports: [u16; 3], after: &str) {
    let mut left = Vec::new();
    let clean = wait_until(Duration::from_secs(15), || {
        left = env.service_pids();
        left.is_empty() && ports.iter().all(|p| !port_open(*p))
    });
    assert!(clean, "15 s after {after}: service processes left {left:?}");
}

#[test]
fn guardian_sigkill_then_daemon_sigkill_leaves_no_service_behind() {
    let mut env = TestEnv::new();
    let (db, api, web) = env.quickstart();
    env.devenv_ok(&["up"]);
    let pids = env.service_pids();
    assert!(pids.len() >= 3, "services not running: {pids:?}");

    let new = kill_guardian(&env);
    // `daemon status` knows the new one and that it was replaced once.
    let out = env.devenv_ok(&["daemon", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("json");
    assert_eq!(v["guardian"]["pid"].as_u64(), Some(u64::from(new)), "{v}");
    assert_eq!(v["guardian"]["restarts"].as_u64(), Some(1), "{v}");
    assert_eq!(v["state"]["ok"].as_bool(), Some(true), "{v}");
    // The daemon and its services are untouched by the guardian's death.
    let daemon = env.daemon_pid();
    assert!(
        pids.iter().all(|p| alive(*p)),
        "a service died with the guardian"
    );

    env.kill_daemon_hard();
    assert_ne!(daemon, 0);
    assert_nothing_left(&env, [db, api, web], "kill -9 of guardian then daemon");
}

#[test]
fn after_a_guardian_death_down_and_later_groups_are_still_covered() {
    let mut env = TestEnv::new();
    let (db, api, web) = env.quickstart();
    env.devenv_ok(&["up"]);
    kill_guardian(&env);

    // The daemon keeps running and `down` still stops everything.
    env.devenv_ok(&["down"]);
    assert_nothing_left(&env, [db, api, web], "down after the guardian was replaced");

    // Groups started after the replacement are told to the new guardian; killed
    // twice, it is replaced twice.
    env.devenv_ok(&["up"]);
    kill_guardian(&env);
    assert_eq!(env.states().get("api").map(String::as_str), Some("ready"));
    env.kill_daemon_hard();
    assert_nothing_left(&env, [db, api, web], "kill -9 of the daemon");
    assert!(
        wait_until(Duration::from_secs(10), || guardians(&env).is_empty()),
        "a guardian outlived the daemon's death: {:?}",
        guardians(&env)
    );
}
