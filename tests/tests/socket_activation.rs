//! systemd socket activation: devenvd serves on the socket it inherits (LISTEN_FDS)
//! and leaves that socket in place on exit, since the service manager owns it.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use devenv_e2e::{wait_until, TestEnv};

/// systemd's own activator, which passes a listening socket exactly as systemd does.
fn activator() -> PathBuf {
    ["/usr/bin/systemd-socket-activate", "/lib/systemd/systemd-socket-activate"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!("systemd-socket-activate not found: apt-get install systemd (scripts/install-test-tools.sh does)")
        })
}

#[test]
fn daemon_serves_an_inherited_socket() {
    let env = TestEnv::new();
    let sock_dir = env.socket.parent().expect("socket dir");
    std::fs::create_dir_all(sock_dir).expect("create socket dir");
    std::fs::set_permissions(
        sock_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod socket dir");

    let activator = Command::new(activator())
        .arg("-l")
        .arg(&env.socket)
        .arg(&env.bins.devenvd)
        .arg("--socket")
        .arg(&env.socket)
        .env_clear()
        .envs(env.env_vars())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start systemd-socket-activate");
    let activator_pid = activator.id();
    // We are the daemon's parent: reap it as a service manager would, or its zombie
    // would look alive to `daemon stop`.
    let (exited_tx, exited_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut activator = activator;
        let _ = exited_tx.send(activator.wait());
    });
    assert!(
        wait_until(Duration::from_secs(10), || env.socket.exists()),
        "the activator did not create {}",
        env.socket.display()
    );

    // The first connection starts devenvd on the inherited socket; its pid is the
    // activator's (it execs the daemon).
    let status = env.devenv_ok(&["daemon", "status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).expect("daemon status --json");
    assert_eq!(
        v.get("pid").and_then(|p| p.as_u64()),
        Some(u64::from(activator_pid)),
        "devenvd should run as the activated process\n{status}"
    );

    // Services work through the inherited socket as through our own.
    env.write_config(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata: {name: act}\nspec:\n  services:\n    - name: s\n      command: sleep 300\n",
    );
    env.devenv_ok(&["up"]);
    assert_eq!(env.states().get("s").map(String::as_str), Some("ready"));

    env.devenv_ok(&["daemon", "stop"]);
    let status = exited_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("devenvd did not exit after daemon stop")
        .expect("wait for devenvd");
    assert!(status.success(), "devenvd exited with {status}");
    assert!(
        env.socket.exists(),
        "an activated daemon must leave the service manager's socket in place"
    );
    assert!(
        env.service_pids().is_empty(),
        "services must be stopped on shutdown: {:?}",
        env.service_pids()
    );
}
