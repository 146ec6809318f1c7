//! Running a program with a bounded wait and captured output.

use std::ffi::OsString;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a command did.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub cmd: String,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl CmdOutput {
    /// stdout and stderr together, for "mentions X somewhere" checks.
    pub fn combined(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Display for CmdOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "$ {}  (exit {:?}, {:?})",
            self.cmd, self.code, self.elapsed
        )?;
        writeln!(f, "--- stdout\n{}", self.stdout.trim_end())?;
        write!(f, "--- stderr\n{}", self.stderr.trim_end())
    }
}

#[derive(Debug, Clone)]
pub struct RunOpts {
    pub timeout: Duration,
    /// Extra variables on top of the env's.
    pub env: Vec<(String, String)>,
    /// Run as another uid/gid (root only).
    pub uid_gid: Option<(u32, u32)>,
    /// Variables of the env's to leave out (e.g. to exercise a default path).
    pub unset: Vec<String>,
}

impl Default for RunOpts {
    fn default() -> Self {
        Self {
            timeout: crate::CMD_TIMEOUT,
            env: Vec::new(),
            uid_gid: None,
            unset: Vec::new(),
        }
    }
}

/// Runs `program args` in `dir` with exactly `vars` (plus `opts.env`) as its
/// environment. Panics when it cannot be started or outlives `opts.timeout` (it is
/// killed then, and the panic shows what it printed).
pub fn run(
    program: &Path,
    args: &[&str],
    dir: &Path,
    vars: &[(OsString, OsString)],
    opts: RunOpts,
) -> CmdOutput {
    use std::os::unix::process::CommandExt as _;
    let cmd_line = format!("{} {}", program.display(), args.join(" "));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .env_clear()
        .envs(
            vars.iter()
                .filter(|(k, _)| !opts.unset.iter().any(|u| k == u.as_str()))
                .map(|(k, v)| (k, v)),
        )
        .envs(opts.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((uid, gid)) = opts.uid_gid {
        // As root, std also drops supplementary groups (setgroups(0)) when uid is set.
        cmd.uid(uid).gid(gid);
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd_line}: {e}"));
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let deadline = started + opts.timeout;
    let mut pause = Duration::from_millis(2);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            break Some(status);
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    let elapsed = started.elapsed();
    // A grandchild (an auto-started daemon) may hold the pipes open; don't wait for it.
    let out = CmdOutput {
        cmd: cmd_line,
        code: status.and_then(|s| s.code()),
        stdout: collect(stdout),
        stderr: collect(stderr),
        elapsed,
    };
    if status.is_none() {
        panic!("timed out after {:?}, killed\n{out}", opts.timeout);
    }
    out
}

type Pipe = std::sync::mpsc::Receiver<Vec<u8>>;

fn reader(pipe: Option<impl std::io::Read + Send + 'static>) -> Pipe {
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    }
    rx
}

/// Everything read so far, plus whatever arrives within a short grace period: the
/// pipes close when the child exits unless a daemon it started inherited them.
fn collect(rx: Pipe) -> String {
    let mut bytes = Vec::new();
    let grace = Instant::now() + Duration::from_secs(2);
    loop {
        let left = grace.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(chunk) => bytes.extend(chunk),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
