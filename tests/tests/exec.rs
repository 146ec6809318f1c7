//! `devenv exec` and `devenv shell` into a local service, through the real daemon:
//! the service's env and workdir, exit codes, stdin, a terminal driven through a
//! pseudo-terminal (size, resize, Ctrl-C, Ctrl-D), and a client that goes away.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use devenv_e2e::pty::Term;
use devenv_e2e::{alive, wait_until, TestEnv};

/// A running service `api` with env from `env` and an env file, workdir `./api`.
fn env_with_api() -> TestEnv {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.project.join("api")).unwrap();
    std::fs::write(env.project.join("api.env"), "FROM_FILE=filed\n").unwrap();
    env.write_config(
        "apiVersion: devenv/v1
kind: Environment
metadata:
  name: exectest
spec:
  services:
    - name: api
      command: exec sleep 1000
      workdir: ./api
      envFile: ./api.env
      env: { GREETING: hello-from-api }
    - name: job
      command: \"true\"
      oneshot: true
",
    );
    env.devenv_ok(&["up"]);
    env
}

fn exec_cmd(env: &TestEnv, args: &[&str]) -> Command {
    let mut cmd = Command::new(&env.bins.devenv);
    cmd.args(args)
        .current_dir(&env.project)
        .env_clear()
        .envs(env.env_vars());
    cmd
}

#[test]
fn exec_runs_in_the_services_workdir_with_its_environment() {
    let env = env_with_api();
    let out = env.devenv(&[
        "exec",
        "api",
        "--",
        "sh",
        "-c",
        "echo $GREETING $FROM_FILE $DEVENV_SERVICE; pwd; echo oops >&2",
    ]);
    assert_eq!(out.code, Some(0), "{out}");
    let workdir = env.project.join("api").canonicalize().unwrap();
    assert_eq!(
        out.stdout,
        format!("hello-from-api filed api\n{}\n", workdir.display()),
        "{out}"
    );
    assert_eq!(out.stderr, "oops\n", "stderr stays stderr\n{out}");

    let three = env.devenv(&["exec", "api", "--", "sh", "-c", "exit 3"]);
    assert_eq!(three.code, Some(3), "exit code propagated\n{three}");
    let killed = env.devenv(&["exec", "api", "--", "sh", "-c", "kill -9 $$"]);
    assert_eq!(killed.code, Some(137), "signal death is 128+n\n{killed}");
    let missing = env.devenv(&["exec", "api", "--", "no-such-program-here"]);
    assert_eq!(missing.code, Some(127), "{missing}");
    assert!(missing.stderr.contains("no-such-program-here"), "{missing}");
    env.teardown();
}

#[test]
fn exec_errors_name_the_problem() {
    let env = env_with_api();
    let unknown = env.devenv(&["exec", "nope", "--", "true"]);
    assert_eq!(unknown.code, Some(2), "{unknown}");
    assert!(
        unknown.stderr.contains("unknown service `nope`") && unknown.stderr.contains("api, job"),
        "{unknown}"
    );
    // The oneshot has completed: nothing runs.
    let done = env.devenv(&["exec", "job", "--", "true"]);
    assert_eq!(done.code, Some(2), "{done}");
    assert!(
        done.stderr.contains("not running") && done.stderr.contains("devenv up job"),
        "{done}"
    );
    let no_cmd = env.devenv(&["exec", "api"]);
    assert_eq!(no_cmd.code, Some(2), "a command is required\n{no_cmd}");
    env.teardown();
}

#[test]
fn exec_i_pipes_stdin_and_ends_it() {
    let env = env_with_api();
    let mut child = exec_cmd(
        &env,
        &["exec", "-i", "api", "--", "sh", "-c", "wc -l; exit 4"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // More than a chunk and more than the queues hold, so backpressure is exercised.
    let line = "x".repeat(99) + "\n";
    let writer = std::thread::spawn(move || {
        for _ in 0..20_000 {
            stdin.write_all(line.as_bytes()).unwrap();
        }
        // Dropped: end of input, which the remote `wc` must see.
    });
    let out = wait_output(child, Duration::from_secs(60));
    writer.join().unwrap();
    assert_eq!(out.0, Some(4), "{out:?}");
    assert_eq!(out.1.trim(), "20000", "{out:?}");

    // Without -i the command's stdin is empty: `cat` ends at once.
    let mut child = exec_cmd(&env, &["exec", "api", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _open = child.stdin.take();
    let out = wait_output(child, Duration::from_secs(30));
    assert_eq!(out.0, Some(0), "{out:?}");
    env.teardown();
}

/// (code, stdout, stderr) of `child`, killed after `limit`.
fn wait_output(mut child: std::process::Child, limit: Duration) -> (Option<i32>, String, String) {
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let mut status = None;
    let done = wait_until(limit, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    if !done {
        let _ = child.kill();
        let _ = child.wait();
    }
    (
        status.and_then(|s| s.code()),
        o.join().unwrap(),
        e.join().unwrap(),
    )
}

#[test]
fn exec_t_is_a_terminal_with_size_resize_ctrl_c_and_ctrl_d() {
    let env = env_with_api();
    let cmd = exec_cmd(&env, &["exec", "-i", "-t", "api", "--", "sh"]);
    let (mut term, mut child) = Term::spawn(cmd, 30, 100);
    let limit = Duration::from_secs(20);

    term.type_in(b"stty size; tty\r");
    let at = term.expect(0, "30 100", limit);
    let at = term.expect(at, "/dev/pts/", limit);
    let at = term.resize_until_seen(&child, at, 41, 123, limit);

    // Ctrl-C reaches the remote foreground job: the echo after it runs only when
    // the sleep was interrupted.
    term.type_in(b"echo sle''ep-started; sleep 300\r");
    let at = term.expect(at, "sleep-started", limit);
    term.type_in(&[0x03]);
    term.type_in(b"echo after-$((20+22))\r");
    term.expect(at, "after-42", limit);

    // Ctrl-D: the shell reads end of input and exits 0; so does the client.
    term.type_in(&[0x04]);
    assert_eq!(
        term.wait_exit(&mut child, limit),
        Some(0),
        "{}",
        term.seen()
    );
    env.teardown();
}

#[test]
fn a_client_that_goes_away_ends_the_remote_command() {
    let env = env_with_api();
    let pidfile = env.project.join("api").join("remote.pid");
    let mut child = exec_cmd(
        &env,
        &[
            "exec",
            "api",
            "--",
            "sh",
            "-c",
            "echo $$ > remote.pid; exec sleep 1000",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let mut pid = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            pid = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok());
            pid.is_some_and(alive)
        }),
        "the remote command did not start"
    );
    let pid = pid.unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || !alive(pid)),
        "remote pid {pid} still runs after its client was killed"
    );
    // The service itself is untouched.
    assert_eq!(env.states()["api"], "ready");
    env.teardown();
}
