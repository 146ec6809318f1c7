//! Naming a service the config does not have is a usage error everywhere: `up`,
//! `restart`, `logs` and `dev` exit 2 with one line listing the known services, and
//! nothing is started.

#[path = "../src/graph_support.rs"]
mod graph_support;

use devenv_e2e::TestEnv;
use graph_support::config_head;

#[test]
fn unknown_service_exits_2_listing_the_known_ones() {
    let env = TestEnv::new();
    env.write_config(&format!(
        "{}{}",
        config_head("unknowns"),
        "    - name: api
      command: exec sleep 1000
    - name: worker
      command: exec sleep 1000
"
    ));
    for args in [
        &["up", "nosuch"][..],
        &["restart", "nosuch"],
        &["logs", "nosuch"],
        &["dev", "nosuch"],
    ] {
        let out = env.devenv(args);
        assert_eq!(out.code, Some(2), "{out}");
        assert!(
            out.stderr
                .contains("unknown service `nosuch`; services are: api, worker"),
            "{out}"
        );
    }
    // Nothing was started by any of them.
    let states = env.states();
    assert!(
        states.values().all(|s| s == "stopped"),
        "services were started: {states:?}"
    );
    assert!(env.service_pids().is_empty(), "{:?}", env.service_pids());
}
