//! External programs devenv drives for clusters and images (k3d, docker, buildah,
//! nerdctl): found on the PATH of the client that asked, run under a deadline with
//! their output streamed by line, and their failures reduced to one line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Captured output per stream is bounded; a build can print a lot.
const MAX_CAPTURE: usize = 4 * 1024 * 1024;

/// How long `docker info` may take to say whether the engine answers.
const DOCKER_INFO_DEADLINE: Duration = Duration::from_secs(15);

/// `program` on the PATH the client sent (falling back to the daemon's own PATH),
/// as the user's shell would find it.
pub fn find_program(program: &str, vars: &BTreeMap<String, String>) -> Option<PathBuf> {
    let path = vars
        .get("PATH")
        .cloned()
        .or_else(|| std::env::var("PATH").ok())?;
    crate::process::find_program(
        &[program],
        std::env::split_paths(&path).filter(|dir| dir.is_absolute()),
    )
}

/// What a finished program printed.
#[derive(Debug, Clone)]
pub struct ToolOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Both streams, interleaved by line as they arrived.
    pub combined: String,
}

impl ToolOutput {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The one line that says why it failed (see [`failure_line`]).
    pub fn failure(&self) -> String {
        let line = failure_line(&self.stderr);
        if !line.is_empty() {
            return line;
        }
        let line = failure_line(&self.stdout);
        if !line.is_empty() {
            return line;
        }
        match self.status.code() {
            Some(code) => format!("exited with {code}"),
            None => "killed by a signal".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot run {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} did not finish within {}", humanize(*.deadline))]
    TimedOut { program: String, deadline: Duration },
    #[error("reading the output of {program}: {source}")]
    Io {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 120 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

/// Runs `program args` with the client's environment (the daemon's own when the
/// client sent none), feeding each output line to `on_line` as it arrives. The child
/// is killed when `deadline` passes or when the returned future is dropped (the
/// client went away).
pub async fn run(
    program: &Path,
    args: &[String],
    vars: &BTreeMap<String, String>,
    deadline: Duration,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> Result<ToolOutput, RunError> {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| program.display().to_string());
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if !vars.is_empty() {
        cmd.env_clear().envs(vars);
    }
    let mut child = spawn(&mut cmd).await.map_err(|source| RunError::Spawn {
        program: name.clone(),
        source,
    })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let io_err = |source| RunError::Io {
        program: name.clone(),
        source,
    };
    let work = async {
        let mut out = Capture::default();
        read_both(stdout, stderr, &mut out, on_line)
            .await
            .map_err(io_err)?;
        let status = child.wait().await.map_err(io_err)?;
        Ok::<_, RunError>((status, out))
    };
    match tokio::time::timeout(deadline, work).await {
        Ok(result) => {
            let (status, out) = result?;
            Ok(ToolOutput {
                status,
                stdout: out.stdout,
                stderr: out.stderr,
                combined: out.combined,
            })
        }
        // `child` was moved into the dropped future: kill_on_drop ends it.
        Err(_) => Err(RunError::TimedOut {
            program: name,
            deadline,
        }),
    }
}

/// Spawns, retrying briefly on ETXTBSY: a script written just before (a test's fake
/// tool, a freshly installed binary) can be held open for writing by a concurrent
/// fork elsewhere in the process for a moment.
async fn spawn(cmd: &mut tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    let mut attempts = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 20 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => return other,
        }
    }
}

#[derive(Default)]
struct Capture {
    stdout: String,
    stderr: String,
    combined: String,
}

fn push_bounded(buf: &mut String, line: &str) {
    if buf.len() + line.len() < MAX_CAPTURE {
        buf.push_str(line);
        buf.push('\n');
    }
}

async fn read_both(
    stdout: impl AsyncRead + Unpin,
    stderr: impl AsyncRead + Unpin,
    out: &mut Capture,
    on_line: &mut (dyn FnMut(&str) + Send),
) -> std::io::Result<()> {
    let mut stdout = BufReader::new(stdout).lines();
    let mut stderr = BufReader::new(stderr).lines();
    let (mut out_open, mut err_open) = (true, true);
    while out_open || err_open {
        tokio::select! {
            line = stdout.next_line(), if out_open => match line? {
                Some(l) => {
                    on_line(&l);
                    push_bounded(&mut out.stdout, &l);
                    push_bounded(&mut out.combined, &l);
                }
                None => out_open = false,
            },
            line = stderr.next_line(), if err_open => match line? {
                Some(l) => {
                    on_line(&l);
                    push_bounded(&mut out.stderr, &l);
                    push_bounded(&mut out.combined, &l);
                }
                None => err_open = false,
            },
        }
    }
    Ok(())
}

/// The line of a tool's output that says what went wrong, without colours, log
/// prefixes or usage text: the last fatal/error log line (logrus, as k3d prints it:
/// `FATA[0001] msg` on a terminal, `level=fatal msg="..."` otherwise), else the
/// first `Error: ...` line (cobra), else the last non-empty line.
pub fn failure_line(text: &str) -> String {
    let lines: Vec<String> = text
        .lines()
        .map(strip_ansi)
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    if let Some(msg) = lines.iter().rev().find_map(|l| logrus_error(l)) {
        return msg;
    }
    if let Some(l) = lines.iter().find(|l| l.starts_with("Error:")) {
        return l["Error:".len()..].trim().to_owned();
    }
    lines.last().cloned().unwrap_or_default()
}

/// The message of a logrus line at level error or fatal.
fn logrus_error(line: &str) -> Option<String> {
    for prefix in ["FATA[", "ERRO[", "PANI["] {
        if let Some(rest) = line.strip_prefix(prefix) {
            let msg = rest.split_once(']').map_or(rest, |(_, m)| m);
            return Some(msg.trim().to_owned());
        }
    }
    let level = ["level=fatal", "level=error", "level=panic"]
        .iter()
        .any(|l| line.contains(l));
    if !level {
        return None;
    }
    let (_, msg) = line.split_once("msg=")?;
    let msg = match msg.strip_prefix('"') {
        // Quoted: up to the closing quote, unescaping \" and \\.
        Some(quoted) => {
            let mut out = String::new();
            let mut chars = quoted.chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => out.extend(chars.next()),
                    '"' => break,
                    c => out.push(c),
                }
            }
            out
        }
        None => msg.split_whitespace().next().unwrap_or_default().to_owned(),
    };
    Some(msg)
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // Parameters and intermediates up to the final byte (@ to ~).
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// Why the Docker engine cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DockerProblem {
    /// No `docker` on PATH.
    NotInstalled,
    /// `docker info` failed: the engine is not running or not reachable.
    Unreachable(String),
}

impl std::fmt::Display for DockerProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotInstalled => f.write_str("`docker` is not on PATH"),
            Self::Unreachable(reason) => f.write_str(reason),
        }
    }
}

/// Whether a Docker engine answers, asked the way the user's shell would
/// (`docker info` with the client's PATH, DOCKER_HOST and DOCKER_CONTEXT).
/// Returns the docker binary when it does.
pub async fn docker_engine(vars: &BTreeMap<String, String>) -> Result<PathBuf, DockerProblem> {
    let docker = find_program("docker", vars).ok_or(DockerProblem::NotInstalled)?;
    let args = ["info", "--format", "{{.ServerVersion}}"].map(String::from);
    match run(&docker, &args, vars, DOCKER_INFO_DEADLINE, &mut |_| {}).await {
        Ok(out) if out.success() && !out.stdout.trim().is_empty() => Ok(docker),
        Ok(out) => Err(DockerProblem::Unreachable(out.failure())),
        Err(e) => Err(DockerProblem::Unreachable(e.to_string())),
    }
}

/// How to get a Docker engine going, for hints.
pub const DOCKER_HINT: &str = "start Docker (e.g. `sudo systemctl start docker`) or point DOCKER_HOST at a running engine; to install it: https://docs.docker.com/engine/install/";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PATH holding only `dir`, as a client env.
    pub(crate) fn path_vars(dir: &Path) -> BTreeMap<String, String> {
        BTreeMap::from([("PATH".to_owned(), dir.display().to_string())])
    }

    /// Writes an executable shell script `dir/name`.
    pub(crate) fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn failure_line_prefers_the_fatal_log_line() {
        let tty = "\x1b[36mINFO\x1b[0m[0000] Prep: Network\n\
                   \x1b[31mFATA\x1b[0m[0001] Failed to create cluster 'x' because a cluster with that name already exists\n";
        assert_eq!(
            failure_line(tty),
            "Failed to create cluster 'x' because a cluster with that name already exists"
        );
        let plain = "time=\"2024-05-01T10:00:00Z\" level=info msg=\"Prep: Network\"\n\
                     time=\"2024-05-01T10:00:01Z\" level=fatal msg=\"Failed Cluster Creation: port \\\"8080\\\" is taken\"\n";
        assert_eq!(
            failure_line(plain),
            "Failed Cluster Creation: port \"8080\" is taken"
        );
    }

    #[test]
    fn failure_line_takes_cobra_errors_over_usage_text() {
        let text =
            "Error: unknown flag: --bogus\nUsage:\n  k3d cluster create NAME [flags]\n\nFlags:\n  -h\n";
        assert_eq!(failure_line(text), "unknown flag: --bogus");
        assert_eq!(failure_line("\n  something broke  \n\n"), "something broke");
        assert_eq!(failure_line(""), "");
    }

    #[test]
    fn find_program_uses_the_client_path() {
        let dir = tempfile::tempdir().unwrap();
        script(dir.path(), "k3d", "exit 0");
        std::fs::write(dir.path().join("not-exec"), "x").unwrap();
        let vars = path_vars(dir.path());
        assert_eq!(find_program("k3d", &vars), Some(dir.path().join("k3d")));
        assert_eq!(find_program("not-exec", &vars), None);
        assert_eq!(find_program("docker", &vars), None);
        // Relative PATH entries are not searched (they would depend on the daemon's cwd).
        let rel = BTreeMap::from([("PATH".to_owned(), ".".to_owned())]);
        assert_eq!(find_program("k3d", &rel), None);
    }

    #[tokio::test]
    async fn run_streams_lines_and_captures_both_streams() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(
            dir.path(),
            "tool",
            "echo out1; echo err1 >&2; echo out2; exit 3",
        );
        let mut seen = Vec::new();
        let out = run(
            &p,
            &[],
            &BTreeMap::new(),
            Duration::from_secs(10),
            &mut |l| seen.push(l.to_owned()),
        )
        .await
        .unwrap();
        assert!(!out.success());
        assert_eq!(out.stdout, "out1\nout2\n");
        assert_eq!(out.stderr, "err1\n");
        seen.sort();
        assert_eq!(seen, ["err1", "out1", "out2"]);
        assert_eq!(out.failure(), "err1");
    }

    #[tokio::test]
    async fn run_kills_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap();
        let p = script(dir.path(), "slow", "exec sleep 30");
        let started = std::time::Instant::now();
        let err = run(
            &p,
            &[],
            &BTreeMap::new(),
            Duration::from_millis(200),
            &mut |_| {},
        )
        .await
        .unwrap_err();
        assert!(matches!(err, RunError::TimedOut { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn docker_engine_reports_why() {
        let dir = tempfile::tempdir().unwrap();
        let vars = path_vars(dir.path());
        assert_eq!(docker_engine(&vars).await, Err(DockerProblem::NotInstalled));
        script(
            dir.path(),
            "docker",
            "echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2; exit 1",
        );
        assert_eq!(
            docker_engine(&vars).await,
            Err(DockerProblem::Unreachable(
                "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?".into()
            ))
        );
        script(dir.path(), "docker", "echo 27.1.1");
        assert_eq!(docker_engine(&vars).await, Ok(dir.path().join("docker")));
    }
}
