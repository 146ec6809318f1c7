//! Commands inside a container: one run to completion (an `exec` readiness probe or
//! hook, [`run`]), or one attached for `devenv exec` ([`attach`]: its input, output,
//! terminal size, exit code, and the way to end it when its client goes away).

use std::pin::Pin;

use bollard::container::LogOutput;
use bollard::errors::Error as ApiError;
use bollard::exec::{CreateExecOptions, ResizeExecOptions, StartExecOptions, StartExecResults};
use bollard::Docker;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWrite;

use super::DockerError;

/// Largest piece of an attached command's output read at once.
const ATTACH_CHUNK: usize = 32 * 1024;
/// Output kept for the failure message; the rest is read and dropped.
const KEEP_BYTES: usize = 2048;

/// Runs `argv` in `container` and returns its exit code and the first output.
pub async fn run(
    docker: &Docker,
    container: &str,
    argv: Vec<String>,
) -> Result<(i64, String), DockerError> {
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(argv),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(DockerError::api("exec"))?;
    let mut out = String::new();
    if let StartExecResults::Attached { mut output, .. } = docker
        .start_exec(&created.id, None)
        .await
        .map_err(DockerError::api("exec"))?
    {
        while let Some(chunk) = output.next().await {
            let Ok(chunk) = chunk else { break };
            if out.len() < KEEP_BYTES {
                out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
        }
    }
    let code = docker
        .inspect_exec(&created.id)
        .await
        .map_err(DockerError::api("exec"))?
        .exit_code
        .unwrap_or(-1);
    out.truncate(out.floor_char_boundary_compat(KEEP_BYTES));
    Ok((code, out))
}

/// An attached command: write its stdin to `input`, read `output` (with a terminal,
/// stdout and stderr arrive as one console stream).
pub struct Attached {
    pub id: String,
    pub output: Pin<Box<dyn Stream<Item = Result<LogOutput, ApiError>> + Send>>,
    pub input: Pin<Box<dyn AsyncWrite + Send>>,
}

/// Starts `argv` in `container`, attached; `stdin`: its stdin is the attach's input
/// (otherwise empty); `tty`: in a pseudo-terminal of `size` (rows, cols).
pub async fn attach(
    docker: &Docker,
    container: &str,
    argv: Vec<String>,
    tty: bool,
    stdin: bool,
    size: Option<(u16, u16)>,
) -> Result<Attached, DockerError> {
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(argv),
                attach_stdin: Some(stdin),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                tty: Some(tty),
                env: tty.then(|| vec!["TERM=xterm-256color".to_owned()]),
                ..Default::default()
            },
        )
        .await
        .map_err(DockerError::api("exec"))?;
    let started = docker
        .start_exec(
            &created.id,
            Some(StartExecOptions {
                detach: false,
                tty,
                output_capacity: Some(ATTACH_CHUNK),
            }),
        )
        .await
        .map_err(DockerError::api("exec"))?;
    let StartExecResults::Attached { output, input } = started else {
        unreachable!("start_exec without detach attaches")
    };
    if let (true, Some((rows, cols))) = (tty, size) {
        resize(docker, &created.id, rows, cols).await;
    }
    Ok(Attached {
        id: created.id,
        output,
        input,
    })
}

/// Bytes of an attached command's output buffered between [`demux`] and its readers.
const PIPE_BYTES: usize = 64 * 1024;

/// An attached command's output (no terminal) as two byte pipes, stdout and stderr,
/// fed by the returned future until the output ends; a pipe's reader that falls
/// behind holds the feeding (and the command's writes) back.
pub fn demux(
    mut output: Pin<Box<dyn Stream<Item = Result<LogOutput, ApiError>> + Send>>,
) -> (
    tokio::io::DuplexStream,
    tokio::io::DuplexStream,
    impl std::future::Future<Output = ()> + Send,
) {
    use tokio::io::AsyncWriteExt;
    let (mut out_w, out_r) = tokio::io::duplex(PIPE_BYTES);
    let (mut err_w, err_r) = tokio::io::duplex(PIPE_BYTES);
    let feed = async move {
        while let Some(Ok(item)) = output.next().await {
            let ok = match item {
                LogOutput::StdErr { message } => err_w.write_all(&message).await,
                LogOutput::StdOut { message }
                | LogOutput::Console { message }
                | LogOutput::StdIn { message } => out_w.write_all(&message).await,
            };
            if ok.is_err() {
                return;
            }
        }
    };
    (out_r, err_r, feed)
}

/// Sets an attached command's terminal size; a command that has ended has none.
pub async fn resize(docker: &Docker, id: &str, rows: u16, cols: u16) {
    let _ = docker
        .resize_exec(
            id,
            ResizeExecOptions {
                height: rows,
                width: cols,
            },
        )
        .await;
}

/// The exit code of a command whose output has ended, once the engine records it (a
/// moment after the attach closes); `None` when it has not within `limit`. The
/// engine has no event for it on this call, so this asks with a growing pause.
pub async fn exit_code(
    docker: &Docker,
    id: &str,
    limit: std::time::Duration,
) -> Result<Option<i64>, DockerError> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = std::time::Duration::from_millis(5);
    loop {
        let info = docker
            .inspect_exec(id)
            .await
            .map_err(DockerError::api("inspect exec"))?;
        if info.running != Some(true) {
            return Ok(info.exit_code);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(200));
    }
}

/// Ends an attached command whose client went away. The engine has no call for it,
/// and closing the attach does not end it (moby#9098), so it is signalled from inside
/// the container: its pid there is read from the host's /proc (`NSpid`), then it is
/// hung up, and killed if still there after `grace`.
pub async fn end(
    docker: &Docker,
    container: &str,
    id: &str,
    grace: std::time::Duration,
) -> Result<(), DockerError> {
    let info = docker
        .inspect_exec(id)
        .await
        .map_err(DockerError::api("inspect exec"))?;
    if info.running != Some(true) {
        return Ok(());
    }
    let Some(host_pid) = info.pid.filter(|p| *p > 0) else {
        return Ok(());
    };
    // The engine runs elsewhere (a VM) when its pids are not in our /proc.
    let Some(pid) = inner_pid(host_pid) else {
        return Ok(());
    };
    let tenths = (grace.as_millis() / 100).max(1);
    let script = format!(
        "kill -HUP \"$1\" 2>/dev/null; i=0; while kill -0 \"$1\" 2>/dev/null && [ $i -lt {tenths} ]; \
         do sleep 0.1; i=$((i+1)); done; kill -KILL \"$1\" 2>/dev/null; exit 0"
    );
    run(
        docker,
        container,
        vec![
            "sh".into(),
            "-c".into(),
            script,
            "sh".into(),
            pid.to_string(),
        ],
    )
    .await
    .map(|_| ())
}

/// The innermost pid of host process `pid` (the last of `NSpid` in its status).
fn inner_pid(pid: i64) -> Option<i64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_nspid(&status)
}

fn parse_nspid(status: &str) -> Option<i64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, at: usize) -> usize;
}

impl FloorBoundary for String {
    fn floor_char_boundary_compat(&self, at: usize) -> usize {
        let mut i = at.min(self.len());
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inner_pid_is_the_last_of_nspid() {
        let status = "Name:\tsleep\nPid:\t4242\nNSpid:\t4242\t17\nNgid:\t0\n";
        assert_eq!(parse_nspid(status), Some(17));
        assert_eq!(parse_nspid("Pid:\t1\n"), None);
    }
}
