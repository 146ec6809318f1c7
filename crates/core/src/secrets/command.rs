//! The `command` provider: a program that prints a secret (`pass show`, `op read`,
//! `vault kv get -format=json`, `security find-generic-password -w`). It runs in the
//! project directory with the client's environment, in its own process group (killed
//! as a whole on timeout), its output read up to [`MAX_SECRET_BYTES`]. Only the last
//! line of its stderr, shortened, appears in an error: that is where such tools say
//! what went wrong, and none of them prints the value there.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::{SecretErrorKind, MAX_SECRET_BYTES};
use crate::config::Command;
use crate::process;

/// How much of stderr is kept to find its last line.
const STDERR_KEEP: usize = 8 * 1024;
/// How long the last stderr line quoted in an error may be.
const STDERR_QUOTE: usize = 160;

/// The program's name as errors show it (never its arguments: they may name a path
/// in a password store, harmless, but a shell string might hold anything).
pub(super) fn program(command: &Command) -> String {
    match command {
        Command::Exec(argv) => argv[0].clone(),
        Command::Shell(s) => s.split_whitespace().next().unwrap_or("sh").to_owned(),
    }
}

pub(super) async fn run(
    command: &Command,
    project_dir: &Path,
    vars: &BTreeMap<String, String>,
    timeout: Duration,
) -> Result<String, SecretErrorKind> {
    let name = program(command);
    let mut cmd = crate::probe::build_command(command, vars.get("PATH").map(String::as_str));
    cmd.current_dir(project_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if !vars.is_empty() {
        cmd.env_clear().envs(vars);
    }
    let mut child = cmd.spawn().map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            SecretErrorKind::NotFound {
                program: name.clone(),
            }
        } else {
            SecretErrorKind::Spawn {
                program: name.clone(),
                source,
            }
        }
    })?;
    // Kills what the program started too, however this ends.
    let _group = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(|pid| process::GroupGuard::new(pid, None));
    let (Some(mut stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(SecretErrorKind::Spawn {
            program: name,
            source: std::io::Error::other("no pipes"),
        });
    };
    // stderr is read beside stdout (a chatty program must not block on it), its tail
    // kept; the task ends with the pipe, and is aborted if this returns first.
    let err_task = tokio::spawn(async move {
        let mut stderr = stderr;
        let mut err = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf).await {
            if n == 0 {
                break;
            }
            err.extend_from_slice(&buf[..n]);
            if err.len() > STDERR_KEEP {
                err.drain(..err.len() - STDERR_KEEP);
            }
        }
        err
    });
    let _abort = AbortOnDrop(err_task.abort_handle());
    let work = async {
        let mut out = Vec::new();
        (&mut stdout)
            .take(MAX_SECRET_BYTES as u64 + 1)
            .read_to_end(&mut out)
            .await
            .map_err(|source| SecretErrorKind::Spawn {
                program: name.clone(),
                source,
            })?;
        if out.len() > MAX_SECRET_BYTES {
            // Returning drops the group guard: the program is killed.
            return Err(SecretErrorKind::OutputTooLarge {
                program: name.clone(),
            });
        }
        let status = child
            .wait()
            .await
            .map_err(|source| SecretErrorKind::Spawn {
                program: name.clone(),
                source,
            })?;
        let err = err_task.await.unwrap_or_default();
        Ok((status, out, err))
    };
    let (status, out, err) =
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| SecretErrorKind::Timeout {
                program: name.clone(),
                after: timeout,
            })??;
    if !status.success() {
        let status = match status.code() {
            Some(code) => format!("exited with {code}"),
            None => "was killed by a signal".to_owned(),
        };
        return Err(SecretErrorKind::CommandFailed {
            program: name,
            status,
            stderr: stderr_summary(&err),
        });
    }
    String::from_utf8(out).map_err(|_| SecretErrorKind::NotUtf8)
}

/// `; stderr: LAST LINE` (shortened), or nothing.
fn stderr_summary(err: &[u8]) -> String {
    let text = String::from_utf8_lossy(err);
    let Some(last) = text.lines().map(str::trim).rfind(|l| !l.is_empty()) else {
        return String::new();
    };
    let mut quoted: String = last.chars().take(STDERR_QUOTE).collect();
    if quoted.len() < last.len() {
        quoted.push('…');
    }
    format!("; stderr: {quoted}")
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
