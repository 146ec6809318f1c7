//! The daemon's own lifecycle: one per socket, private socket, status, stop.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
use std::time::Duration;

use devenv_e2e::{alive, RunOpts, TestEnv};

#[test]
fn daemon_start_creates_a_private_socket() {
    let env = TestEnv::new();
    let dir = env.socket.parent().expect("socket dir").to_path_buf();
    assert!(
        !dir.exists(),
        "test setup: {} should not exist yet",
        dir.display()
    );
    env.devenv_ok(&["daemon", "start"]);

    let dir_meta = std::fs::metadata(&dir).expect("socket dir exists");
    assert_eq!(
        dir_meta.mode() & 0o777,
        0o700,
        "socket dir mode {:o}",
        dir_meta.mode() & 0o777
    );
    assert_eq!(
        dir_meta.uid(),
        nix::unistd::getuid().as_raw(),
        "socket dir owner"
    );
    let sock = std::fs::symlink_metadata(&env.socket).expect("socket exists");
    assert!(
        sock.file_type().is_socket(),
        "{} is not a socket",
        env.socket.display()
    );
    assert_eq!(
        sock.mode() & 0o777,
        0o600,
        "socket mode {:o}",
        sock.mode() & 0o777
    );
}

#[test]
fn a_second_daemon_on_the_same_socket_exits_1() {
    let env = TestEnv::new();
    env.devenv_ok(&["daemon", "start"]);
    let first = env.daemon_pid();

    let socket = env.socket.to_str().expect("utf-8 path");
    let opts = RunOpts {
        timeout: Duration::from_secs(20),
        ..RunOpts::default()
    };
    let second = env.run(&env.bins.devenvd, &["--socket", socket], opts);
    assert_eq!(
        second.code,
        Some(1),
        "second daemon should exit 1\n{second}"
    );
    assert!(
        second.combined().to_lowercase().contains("already running"),
        "second daemon should say `already running`\n{second}"
    );
    // The first one is untouched and still answers on its socket.
    assert!(alive(first), "the first daemon died");
    assert_eq!(
        env.daemon_pid(),
        first,
        "another daemon took over the socket"
    );
}

#[test]
fn daemon_status_prints_the_pid_and_stop_removes_the_socket() {
    let env = TestEnv::new();
    env.devenv_ok(&["daemon", "start"]);
    let pid = env.daemon_pid();
    assert!(
        alive(pid),
        "daemon pid {pid} from daemon status --json is not alive"
    );

    let text = env.devenv_ok(&["daemon", "status"]);
    assert!(
        text.stdout.contains(&pid.to_string()),
        "daemon status does not print pid {pid}\n{text}"
    );
    assert!(
        text.stdout.contains(&env.socket.display().to_string()),
        "daemon status does not print the socket\n{text}"
    );

    let stop = env.devenv(&["daemon", "stop"]);
    assert_eq!(stop.code, Some(0), "{stop}");
    // Returned once the daemon exited, not when its socket went: it holds the socket's
    // lock until then, and a `daemon start` right after (the editor's Restart Daemon)
    // must not find it "already running".
    assert!(!alive(pid), "daemon {pid} still runs when stop returned");
    assert!(
        !env.socket.exists(),
        "socket {} left behind after stop",
        env.socket.display()
    );

    // With no daemon, daemon status says so with a failure code (3: unreachable).
    let after = env.devenv(&["daemon", "status"]);
    assert!(
        matches!(after.code, Some(1 | 3)),
        "daemon status with no daemon\n{after}"
    );
    assert!(
        !env.socket.exists(),
        "daemon status must not start a daemon"
    );

    let again = env.devenv(&["daemon", "start"]);
    assert_eq!(
        again.code,
        Some(0),
        "daemon start right after stop\n{again}"
    );
    assert_ne!(env.daemon_pid(), pid, "the stopped daemon answered");
}
