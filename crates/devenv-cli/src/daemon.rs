//! Reaching the daemon: connect, or start it in the background and wait until it
//! answers, bounded; never a raw transport error.

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context as _};
use devenv_api::pb::daemon_service_client::DaemonServiceClient;
use devenv_api::pb::{VersionRequest, VersionResponse};
use devenv_api::{ConnectError, Paths, PROTOCOL_VERSION};
use tokio::time::Instant;
use tonic::transport::Channel;

use crate::context::Output;
use crate::error::{CliError, Result};

const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// After our own daemon exits (e.g. another one won the lock), keep looking for the
/// winner this long before giving up.
const AFTER_EXIT_GRACE: Duration = Duration::from_secs(2);

/// Connects without starting anything: `None` when no daemon listens.
pub async fn connect_running(paths: &Paths) -> Result<Option<Channel>> {
    match devenv_api::connect(&paths.socket).await {
        Ok(ch) => Ok(Some(ch)),
        Err(ConnectError::NotRunning { .. }) => Ok(None),
        Err(err) => Err(unreachable(paths, err)),
    }
}

/// Connects, starting the daemon first when nothing listens on the socket.
pub async fn connect_or_start(paths: &Paths, out: &Output) -> Result<Channel> {
    if let Some(ch) = connect_running(paths).await? {
        return Ok(ch);
    }
    let (ch, _) = start(paths, out).await?;
    Ok(ch)
}

/// Starts devenvd in its own process group, logging to the data dir, and waits until
/// it answers Version with our protocol.
pub async fn start(paths: &Paths, out: &Output) -> Result<(Channel, VersionResponse)> {
    let bin = find_devenvd()?;
    let log = paths.log_file();
    if out.verbose > 0 {
        eprintln!("starting {} (log: {})", bin.display(), log.display());
    }
    let mut child = spawn(&bin, paths, &log)?;
    let started = Instant::now();
    let deadline = started + READY_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    let mut exited: Option<(std::process::ExitStatus, Instant)> = None;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let attempt = tokio::time::timeout(remaining, try_version(&paths.socket)).await;
        if let Ok(Err(VersionError::Connect(err @ ConnectError::Untrusted { .. }))) = attempt {
            // Another user's socket appeared: no point waiting for ours.
            return Err(CliError::unreachable(err));
        }
        if let Ok(Ok((ch, version))) = attempt {
            check_protocol(&version, paths)?;
            if out.verbose > 0 {
                eprintln!(
                    "devenvd {} ready (pid {})",
                    version.daemon_version, version.pid
                );
            }
            return Ok((ch, version));
        }
        let now = Instant::now();
        if exited.is_none() {
            exited = child_exit(&mut child).map(|status| (status, now));
        }
        if let Some((status, at)) = exited {
            if now >= at + AFTER_EXIT_GRACE {
                let why = last_fatal_line(&log)
                    .map(|l| format!(": {l}"))
                    .unwrap_or_default();
                return Err(CliError::unreachable(anyhow!(
                    "devenvd exited ({status}) before it became ready{why}; see its log: {}",
                    log.display()
                )));
            }
        }
        if now >= deadline {
            return Err(CliError::unreachable(anyhow!(
                "devenvd did not become ready within {}s; see its log: {}",
                READY_TIMEOUT.as_secs(),
                log.display()
            )));
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[derive(Debug, thiserror::Error)]
enum VersionError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Rpc(#[from] tonic::Status),
}

async fn try_version(socket: &Path) -> Result<(Channel, VersionResponse), VersionError> {
    let ch = devenv_api::connect(socket).await?;
    let version = DaemonServiceClient::new(ch.clone())
        .version(VersionRequest {})
        .await?;
    Ok((ch, version.into_inner()))
}

/// The reason devenvd gave for exiting (`devenvd: ...`, its last such line), read from
/// the end of its log only: the log is appended to across runs.
fn last_fatal_line(log: &Path) -> Option<String> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    const TAIL: u64 = 16 * 1024;
    let mut f = std::fs::File::open(log).ok()?;
    let len = f.metadata().ok()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut tail = Vec::new();
    f.take(TAIL).read_to_end(&mut tail).ok()?;
    String::from_utf8_lossy(&tail)
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("devenvd: "))
        .map(|l| l.chars().take(500).collect())
}

fn child_exit(child: &mut Child) -> Option<std::process::ExitStatus> {
    child.try_wait().ok().flatten()
}

pub fn check_protocol(version: &VersionResponse, paths: &Paths) -> Result {
    if version.protocol_version == PROTOCOL_VERSION {
        return Ok(());
    }
    Err(CliError::unreachable(anyhow!(
        "devenvd {} on {} speaks protocol {}, but this devenv ({}) speaks protocol {}; \
         restart it with `devenv daemon stop` (the next command starts a matching one)",
        version.daemon_version,
        paths.socket.display(),
        version.protocol_version,
        devenv_api::VERSION,
        PROTOCOL_VERSION
    )))
}

fn spawn(bin: &Path, paths: &Paths, log: &Path) -> Result<Child> {
    if let Some(dir) = log.parent() {
        devenv_api::ensure_private_dir(dir).map_err(CliError::unreachable)?;
    }
    let open_log = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open the daemon log {}", log.display()))
    };
    let stdout = open_log()?;
    let stderr = stdout
        .try_clone()
        .context("cannot duplicate the daemon log handle")?;
    Command::new(bin)
        .arg("--socket")
        .arg(&paths.socket)
        .arg("--log-file")
        .arg(log)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // Its own process group: Ctrl-C in this terminal must not reach the daemon.
        .process_group(0)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))
        .map_err(CliError::unreachable)
}

/// `$DEVENVD_BIN`, else `devenvd` beside this executable, else on `PATH`.
pub fn find_devenvd() -> Result<PathBuf> {
    let env_bin = std::env::var_os("DEVENVD_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("devenvd")));
    let path = std::env::var_os("PATH");
    locate(env_bin, beside, path.as_deref()).ok_or_else(|| {
        CliError::unreachable(anyhow!(
            "cannot find devenvd: not beside this devenv nor on PATH (set DEVENVD_BIN)"
        ))
    })
}

fn locate(
    env_bin: Option<PathBuf>,
    beside: Option<PathBuf>,
    path: Option<&std::ffi::OsStr>,
) -> Option<PathBuf> {
    if env_bin.is_some() {
        return env_bin;
    }
    if let Some(b) = beside.filter(|b| is_executable(b)) {
        return Some(b);
    }
    std::env::split_paths(path?)
        .map(|dir| dir.join("devenvd"))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A transport failure that isn't "nothing listens".
fn unreachable(paths: &Paths, err: ConnectError) -> CliError {
    let cause = match &err {
        // Says itself what is wrong and where; "is the daemon running?" would mislead.
        ConnectError::Untrusted { .. } => return CliError::unreachable(err),
        ConnectError::NotRunning { source, .. } => source.to_string(),
        ConnectError::Transport { source, .. } => source.to_string(),
    };
    CliError::unreachable(anyhow!("{}", unreachable_message(paths, &cause)))
}

pub fn unreachable_message(paths: &Paths, cause: &str) -> String {
    format!(
        "cannot reach devenvd on {}: {cause}. Is the daemon running? See {}",
        paths.socket.display(),
        paths.log_file().display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn exe(dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("devenvd");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn the_daemons_reason_is_its_last_fatal_line() {
        let tmp = crate::testutil::TempDir::new("fatal");
        let log = tmp.path().join("devenvd.log");
        assert_eq!(last_fatal_line(&log), None);
        std::fs::write(
            &log,
            "devenvd: an older run\n2026-12-05 INFO serving\ndevenvd: /s exists and is a regular file, not a socket\n",
        )
        .unwrap();
        assert_eq!(
            last_fatal_line(&log).as_deref(),
            Some("/s exists and is a regular file, not a socket")
        );
    }

    #[test]
    fn env_then_beside_then_path() {
        let tmp = crate::testutil::TempDir::new("locate");
        let beside = exe(&tmp.path().join("bin"));
        let on_path = exe(&tmp.path().join("path"));
        let path =
            std::env::join_paths([tmp.path().join("nothing"), tmp.path().join("path")]).unwrap();
        let over = PathBuf::from("/custom/devenvd");
        assert_eq!(
            locate(Some(over.clone()), Some(beside.clone()), Some(&path)),
            Some(over)
        );
        assert_eq!(
            locate(None, Some(beside.clone()), Some(&path)),
            Some(beside)
        );
        let missing = tmp.path().join("gone/devenvd");
        assert_eq!(
            locate(None, Some(missing.clone()), Some(&path)),
            Some(on_path)
        );
        assert_eq!(locate(None, Some(missing), None), None);
    }
}
