//! The client trusts only its own daemon, and the daemon never deletes what is not its
//! stale socket (issue 11, item 2).
//!
//! An impostor (tests/src/bin/impostor.rs) listens where the CLI will connect and
//! records every byte it receives; the CLI runs `up` with a canary secret in its
//! environment. Whatever the setup, the impostor must receive zero bytes and the CLI
//! must exit 3 naming the path and who owns it. The tests with a second user need root
//! and the user that scripts/install-test-tools.sh creates (CI runs them as root).

use std::io::BufRead as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use devenv_e2e::{chmod, other_user, CmdOutput, RunOpts, TestEnv, OTHER_USER};

const CANARY_VAR: &str = "DEVENV_TEST_CANARY_SECRET";
const CANARY: &str = "canary-5f1e-must-never-leave-this-process";
const IMPOSTOR: &str = env!("CARGO_BIN_EXE_impostor");

fn chown(path: &Path, uid: u32, gid: u32) {
    nix::unistd::chown(path, Some(uid.into()), Some(gid.into()))
        .unwrap_or_else(|e| panic!("chown {uid}:{gid} {}: {e}", path.display()));
}

/// A copy of `bin` under the env's root that another user can execute (the build
/// tree may be private to root). Opens the root for traversal.
fn executable_for_all(env: &TestEnv, bin: &Path) -> PathBuf {
    chmod(env.root(), 0o711);
    let dst = env.root().join(bin.file_name().expect("binary name"));
    std::fs::copy(bin, &dst).unwrap_or_else(|e| panic!("copy {}: {e}", bin.display()));
    chmod(&dst, 0o755);
    dst
}

/// A directory under the env's root owned by `uid`, mode 0700.
fn dir_owned_by(env: &TestEnv, name: &str, uid: u32, gid: u32) -> PathBuf {
    let dir = env.root().join(name);
    std::fs::create_dir(&dir).expect("mkdir");
    chmod(&dir, 0o700);
    chown(&dir, uid, gid);
    dir
}

/// An env whose CLI carries a secret in its environment, with a project to `up`.
fn env_with_canary() -> TestEnv {
    let mut env = TestEnv::new();
    env.write_config(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata: {name: canary}\nspec:\n  services:\n    - name: s\n      command: sleep 300\n",
    );
    env.set_var(CANARY_VAR, CANARY);
    env
}

fn up_on(env: &TestEnv, socket: &Path) -> CmdOutput {
    let opts = RunOpts {
        timeout: Duration::from_secs(30),
        env: vec![("DEVENV_SOCKET".into(), socket.display().to_string())],
        ..RunOpts::default()
    };
    env.run(&env.bins.devenv, &["up"], opts)
}

/// Exit 3 with one line on stderr that mentions each of `needles`.
fn assert_refused(out: &CmdOutput, needles: &[&str]) {
    assert_eq!(
        out.code,
        Some(3),
        "the CLI should refuse with exit 3\n{out}"
    );
    let err = out.stderr.trim();
    assert_eq!(err.lines().count(), 1, "one line of reason expected\n{out}");
    for n in needles {
        assert!(err.contains(n), "the reason should mention `{n}`\n{out}");
    }
    assert!(!out.combined().contains(CANARY), "{out}");
}

/// The impostor process, its stdout lines, and where it records what it receives.
struct Impostor {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    socket: PathBuf,
    record: PathBuf,
}

impl Impostor {
    /// Starts it (as `user` when given) listening on `socket`; returns once it listens.
    fn start(bin: &Path, socket: &Path, record: &Path, user: Option<(u32, u32)>) -> Self {
        let mut cmd = Command::new(bin);
        cmd.arg(socket)
            .arg(record)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some((uid, gid)) = user {
            cmd.uid(uid).gid(gid);
        }
        // The copy was just written: a child forked meanwhile by another test thread
        // may still hold its write descriptor until it execs (ETXTBSY), so retry
        // briefly, as Go's os/exec tests do.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut child = loop {
            match cmd.spawn() {
                Ok(child) => break child,
                Err(e)
                    if e.kind() == std::io::ErrorKind::ExecutableFileBusy
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("start the impostor: {e}"),
            }
        };
        let stdout = child.stdout.take().expect("impostor stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut imp = Self {
            child,
            lines,
            seen: Vec::new(),
            socket: socket.to_path_buf(),
            record: record.to_path_buf(),
        };
        imp.wait_for("ready", |l| l == "ready");
        imp
    }

    fn wait_for(&mut self, what: &str, done: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = done(&line);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!(
                    "the impostor did not print `{what}` within 10 s; it printed {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Call after the client under test has exited. Connects once itself and waits
    /// until the impostor has accepted and closed that probe: connections are accepted
    /// in order, so every earlier one was accepted by then; then waits until each has
    /// been closed. Returns (connections other than the probe, bytes they sent).
    fn settle(&mut self) -> (usize, u64) {
        let me = std::process::id().to_string();
        drop(
            std::os::unix::net::UnixStream::connect(&self.socket)
                .unwrap_or_else(|e| panic!("probe {}: {e}", self.socket.display())),
        );
        let probe_closed = format!("closed {me} 0");
        self.wait_for("the probe's close", |l| l == probe_closed);
        loop {
            let others = |prefix: &str| -> Vec<String> {
                self.seen
                    .iter()
                    .filter_map(|l| l.strip_prefix(prefix))
                    .filter(|rest| rest.split(' ').next() != Some(me.as_str()))
                    .map(str::to_owned)
                    .collect()
            };
            let accepted = others("accepted ");
            let closed = others("closed ");
            if closed.len() >= accepted.len() {
                let bytes = closed
                    .iter()
                    .filter_map(|rest| rest.split(' ').nth(1)?.parse::<u64>().ok())
                    .sum();
                return (accepted.len(), bytes);
            }
            self.wait_for("a close", |l| l.starts_with("closed "));
        }
    }

    /// What the impostor wrote down (must be empty).
    fn recorded(&self) -> Vec<u8> {
        std::fs::read(&self.record).unwrap_or_default()
    }

    fn assert_got_nothing(&mut self, expected_connections: usize) {
        let (connections, bytes) = self.settle();
        let record = self.recorded();
        assert_eq!(
            (bytes, record.len()),
            (0, 0),
            "the impostor received bytes from the client: {:?}",
            String::from_utf8_lossy(&record[..record.len().min(300)])
        );
        assert_eq!(
            connections, expected_connections,
            "connections the impostor saw from the client (lines: {:?})",
            self.seen
        );
    }
}

impl Drop for Impostor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "needs root and the devenv-test-other user (scripts/install-test-tools.sh)"]
fn impostor_in_another_users_dir_gets_zero_bytes() {
    let (uid, gid) = other_user("a process");
    let env = env_with_canary();
    let impostor = executable_for_all(&env, Path::new(IMPOSTOR));
    let foreign = dir_owned_by(&env, "foreign", uid, gid);
    let socket = foreign.join("devenvd.sock");
    let mut imp = Impostor::start(
        &impostor,
        &socket,
        &foreign.join("record"),
        Some((uid, gid)),
    );

    let out = up_on(&env, &socket);
    assert_refused(
        &out,
        &[
            &socket.display().to_string(),
            &format!("{} is owned by {OTHER_USER} (uid {uid})", foreign.display()),
        ],
    );
    // Refused before connecting.
    imp.assert_got_nothing(0);
    assert!(
        env.all_pids().is_empty(),
        "no daemon should have been started: {:?}",
        env.all_pids()
    );
}

#[test]
#[ignore = "needs root and the devenv-test-other user (scripts/install-test-tools.sh)"]
fn impostor_peer_in_our_own_dir_gets_zero_bytes() {
    let (uid, gid) = other_user("a process");
    let env = env_with_canary();
    let impostor = executable_for_all(&env, Path::new(IMPOSTOR));
    let foreign = dir_owned_by(&env, "foreign", uid, gid);
    let bound = foreign.join("impostor.sock");
    let mut imp = Impostor::start(&impostor, &bound, &foreign.join("record"), Some((uid, gid)));
    // Our socket dir passes every check; only the listener is someone else's.
    let ours = env.socket.parent().expect("socket dir");
    std::fs::create_dir_all(ours).expect("mkdir socket dir");
    chmod(ours, 0o700);
    std::fs::rename(&bound, &env.socket).expect("move the impostor's socket into our dir");
    imp.socket = env.socket.clone();

    let out = env.devenv(&["up"]);
    assert_refused(
        &out,
        &[
            &env.socket.display().to_string(),
            &format!("runs as {OTHER_USER} (uid {uid})"),
        ],
    );
    // Connected once, checked the peer, sent nothing.
    imp.assert_got_nothing(1);
}

#[test]
#[ignore = "needs root and the devenv-test-other user (scripts/install-test-tools.sh)"]
fn tmp_fallback_dir_made_by_another_user_is_refused() {
    let (uid, gid) = other_user("a process");
    let env = env_with_canary();
    // The CLI runs as the test user, whose fallback dir root (here the other user)
    // creates first and listens in.
    let devenv = executable_for_all(&env, &env.bins.devenv);
    let fallback = PathBuf::from(format!("/tmp/devenv-{uid}"));
    let _cleanup = RemoveDirOnDrop(fallback.clone());
    match std::fs::remove_dir_all(&fallback) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("remove a leftover {}: {e}", fallback.display()),
    }
    std::fs::create_dir(&fallback).expect("pre-create the fallback dir");
    chmod(&fallback, 0o755);
    let socket = fallback.join("devenvd.sock");
    let mut imp = Impostor::start(Path::new(IMPOSTOR), &socket, &fallback.join("record"), None);
    let home = dir_owned_by(&env, "otherhome", uid, gid);

    let opts = RunOpts {
        timeout: Duration::from_secs(30),
        uid_gid: Some((uid, gid)),
        unset: vec!["XDG_RUNTIME_DIR".into(), "DEVENV_SOCKET".into()],
        env: vec![
            ("HOME".into(), home.display().to_string()),
            (
                "DEVENV_DATA_DIR".into(),
                home.join("data").display().to_string(),
            ),
        ],
    };
    let out = env.run(&devenv, &["up"], opts);
    assert_refused(
        &out,
        &[
            &socket.display().to_string(),
            &format!("{} is owned by root (uid 0)", fallback.display()),
        ],
    );
    imp.assert_got_nothing(0);
}

struct RemoveDirOnDrop(PathBuf);

impl Drop for RemoveDirOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn group_writable_socket_dir_is_refused() {
    let env = env_with_canary();
    let dir = env.root().join("shared");
    std::fs::create_dir(&dir).expect("mkdir");
    chmod(&dir, 0o770);
    let socket = dir.join("devenvd.sock");
    let mut imp = Impostor::start(
        Path::new(IMPOSTOR),
        &socket,
        &env.root().join("record"),
        None,
    );

    let out = up_on(&env, &socket);
    assert_refused(
        &out,
        &[
            &socket.display().to_string(),
            &format!("{} has mode 0770; it must be 0700", dir.display()),
        ],
    );
    imp.assert_got_nothing(0);
    assert!(
        env.all_pids().is_empty(),
        "no daemon should have been started: {:?}",
        env.all_pids()
    );
}

#[test]
fn symlinked_socket_dir_is_refused() {
    let env = env_with_canary();
    let real = env.root().join("real");
    std::fs::create_dir(&real).expect("mkdir");
    chmod(&real, 0o700);
    let mut imp = Impostor::start(
        Path::new(IMPOSTOR),
        &real.join("devenvd.sock"),
        &env.root().join("record"),
        None,
    );
    let link = env.root().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");

    let out = up_on(&env, &link.join("devenvd.sock"));
    assert_refused(&out, &[&format!("{} is a symbolic link", link.display())]);
    imp.assert_got_nothing(0);
}

#[test]
fn a_regular_file_at_the_socket_path_is_left_alone() {
    let env = TestEnv::new();
    let dir = env.socket.parent().expect("socket dir");
    std::fs::create_dir_all(dir).expect("mkdir socket dir");
    chmod(dir, 0o700);
    let precious = "not a socket: someone's notes\n";
    std::fs::write(&env.socket, precious).expect("write the file");

    let socket = env.socket.to_str().expect("utf-8 path");
    let opts = RunOpts {
        timeout: Duration::from_secs(20),
        ..RunOpts::default()
    };
    let out = env.run(&env.bins.devenvd, &["--socket", socket], opts);
    assert_ne!(out.code, Some(0), "devenvd should refuse to start\n{out}");
    assert!(
        out.combined().contains(&format!(
            "{socket} exists and is a regular file, not a socket"
        )),
        "devenvd should say why\n{out}"
    );
    assert_eq!(
        std::fs::read_to_string(&env.socket).expect("the file is still there"),
        precious
    );

    // Through the CLI, which starts the daemon: same refusal, the reason shown and in
    // the daemon's log.
    let out = env.devenv(&["daemon", "start"]);
    assert_eq!(out.code, Some(3), "{out}");
    assert!(
        out.stderr
            .contains("exists and is a regular file, not a socket"),
        "the CLI should show the daemon's reason\n{out}"
    );
    let log = std::fs::read_to_string(env.data_dir.join("devenvd.log")).unwrap_or_default();
    assert!(
        log.contains("not a socket"),
        "the daemon's log should say why:\n{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&env.socket).expect("the file is still there"),
        precious
    );
}

#[test]
fn temp_files_left_by_a_crash_are_swept_on_start() {
    let env = TestEnv::new();
    let tmp = env.data_dir.join("tmp");
    std::fs::create_dir_all(tmp.join("half-written")).expect("mkdir data/tmp");
    chmod(&env.data_dir, 0o700);
    chmod(&tmp, 0o700);
    let values = tmp.join("helm-values-0123456789abcdef-db-1-0-00000000.json");
    std::fs::write(&values, "{\"password\": \"hunter2\"}").expect("write leftover");
    std::fs::write(tmp.join("half-written/part"), "x").expect("write leftover");
    // A leftover symlink is removed, never followed.
    let outside = env.root().join("outside");
    std::fs::write(&outside, "keep").expect("write");
    std::os::unix::fs::symlink(&outside, tmp.join("link.tar")).expect("symlink");

    env.devenv_ok(&["daemon", "start"]);
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .expect("data/tmp still exists")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(left.is_empty(), "temp files survived the start: {left:?}");
    let mode = std::fs::symlink_metadata(&tmp)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700, "data/tmp mode {:o}", mode & 0o777);
    assert_eq!(std::fs::read_to_string(&outside).expect("outside"), "keep");
}
