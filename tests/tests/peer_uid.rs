//! Another local user is refused, even when file permissions would let them connect.
//! Needs root (to run a client as someone else) and the user that
//! scripts/install-test-tools.sh creates; scripts/test.sh runs these.

use std::path::PathBuf;
use std::time::Duration;

use devenv_e2e::{chmod, find_grpcurl, other_user, RunOpts, TestEnv, OTHER_USER};

/// A copy of grpcurl the other user can execute (the cache under /root is private).
fn grpcurl_for_all(env: &TestEnv) -> PathBuf {
    let src = find_grpcurl().unwrap_or_else(|reason| panic!("{reason}"));
    let dst = env.root().join("grpcurl");
    std::fs::copy(&src, &dst).expect("copy grpcurl");
    chmod(&dst, 0o755);
    dst
}

#[test]
#[ignore = "needs root and a second user; run by scripts/test.sh"]
fn another_user_is_refused_by_peer_uid() {
    let (uid, gid) = other_user("a client");
    let env = TestEnv::new();
    env.devenv_ok(&["daemon", "start"]);
    let grpcurl = grpcurl_for_all(&env);

    // Open the path up for the test only, so that only the daemon's own check stands
    // between the other user and the API.
    let sock_dir = env.socket.parent().expect("socket dir").to_path_buf();
    for dir in [env.root(), env.runtime_dir.as_path(), sock_dir.as_path()] {
        chmod(dir, 0o711);
    }
    chmod(&env.socket, 0o666);

    let socket = env.socket.to_str().expect("utf-8 path");
    let args = [
        "-plaintext",
        "-unix",
        "-d",
        "{}",
        socket,
        "devenv.v1.DaemonService/Version",
    ];
    let timeout = Duration::from_secs(20);

    let owner = env.run(
        &grpcurl,
        &args,
        RunOpts {
            timeout,
            ..RunOpts::default()
        },
    );
    assert_eq!(
        owner.code,
        Some(0),
        "the owner's call should succeed\n{owner}"
    );
    assert!(owner.stdout.contains("daemonVersion"), "{owner}");

    let as_other = RunOpts {
        timeout,
        uid_gid: Some((uid, gid)),
        ..RunOpts::default()
    };
    // grpcurl retries a refused connection until its connect timeout (default 10 s).
    let mut other_args = vec!["-connect-timeout", "3"];
    other_args.extend(args);
    let other = env.run(&grpcurl, &other_args, as_other);
    assert_ne!(
        other.code,
        Some(0),
        "a call as {OTHER_USER} must be refused\n{other}"
    );
    assert!(
        !other.stderr.to_lowercase().contains("permission denied"),
        "test setup: the file system, not the daemon, refused {OTHER_USER}\n{other}"
    );
    assert!(
        !other.stdout.contains("daemonVersion"),
        "{OTHER_USER} got an answer\n{other}"
    );

    // The daemon is still fine after refusing someone.
    let again = env.run(
        &grpcurl,
        &args,
        RunOpts {
            timeout,
            ..RunOpts::default()
        },
    );
    assert_eq!(again.code, Some(0), "{again}");
    // Private again, or our own CLI (which checks the dir) would refuse to stop it.
    chmod(&sock_dir, 0o700);
}

#[test]
#[ignore = "needs root and a second user; run by scripts/test.sh"]
fn socket_dir_owned_by_another_user_is_refused() {
    let (uid, gid) = other_user("a client");
    let env = TestEnv::new();
    let foreign = env.runtime_dir.join("foreign");
    std::fs::create_dir(&foreign).expect("mkdir");
    chmod(&foreign, 0o700);
    nix::unistd::chown(&foreign, Some(uid.into()), Some(gid.into())).expect("chown");
    let socket = foreign.join("devenvd.sock");

    let opts = RunOpts {
        timeout: Duration::from_secs(20),
        ..RunOpts::default()
    };
    let out = env.run(
        &env.bins.devenvd,
        &["--socket", socket.to_str().expect("utf-8")],
        opts,
    );
    assert_ne!(
        out.code,
        Some(0),
        "devenvd should refuse a socket dir owned by {OTHER_USER}\n{out}"
    );
    assert!(
        out.combined().contains("owned"),
        "the refusal should say who owns the dir\n{out}"
    );
    assert!(!socket.exists(), "a socket was created in the foreign dir");
}
