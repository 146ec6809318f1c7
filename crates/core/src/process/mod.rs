//! Host processes that never outlive the daemon.
//!
//! Two layers:
//! 1. Every service runs in its own process group. A guardian process is told every
//!    live group and kills them when the daemon dies ([`guardian`]); groups are only
//!    signalled while their id is still theirs ([`group`]).
//! 2. Each service's environment carries a marker; a restarted daemon finds and
//!    kills anything still carrying a marker of a service it had running.
//!
//! `PR_SET_PDEATHSIG` is deliberately not used: it needs a `pre_exec` hook, which
//! forces a full `fork()` of the daemon for every service (page tables copied, cost
//! growing with the daemon's memory) instead of `posix_spawn`, and it would only
//! reach the direct child anyway.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

pub mod group;
pub mod guardian;

pub use group::{group_gone_by, group_running, Leader};
pub use guardian::{become_guardian, run_guardian, Guardian, GuardianInfo};

/// Environment variable holding the marker of a service's processes.
pub const MARKER_VAR: &str = "DEVENV_MARKER";

/// Spawns service processes, each in a new process group.
#[derive(Debug, Default)]
pub struct Spawner;

impl Spawner {
    pub fn start() -> std::io::Result<Self> {
        Ok(Self)
    }

    /// Spawns `cmd` in a new process group. Give it an absolute program path (see
    /// [`resolve_program`]) so std can use `posix_spawn`.
    pub async fn spawn(
        &self,
        mut cmd: tokio::process::Command,
    ) -> std::io::Result<tokio::process::Child> {
        cmd.process_group(0).kill_on_drop(false);
        cmd.spawn()
    }
}

/// `program` as an absolute path, looked up in `path_var` (the PATH the child gets)
/// when it has no slash. std falls back from `posix_spawn` to a full `fork()` when
/// the child's PATH is set and the program still needs a lookup. Not found: the
/// name as given, so the spawn fails with a clear "not found".
pub fn resolve_program(program: &str, path_var: Option<&str>) -> PathBuf {
    if program.contains('/') {
        return PathBuf::from(program);
    }
    let default_path = "/usr/local/bin:/usr/bin:/bin";
    find_program(
        &[program],
        std::env::split_paths(path_var.unwrap_or(default_path)),
    )
    .unwrap_or_else(|| PathBuf::from(program))
}

/// The one program finder: the first of `dirs` (in order) holding one of `names` (in
/// order) as an executable file. Callers decide the directories (the client's PATH,
/// a default, extra places) and what a miss means.
pub fn find_program(names: &[&str], dirs: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    dirs.into_iter()
        .find_map(|dir| names.iter().map(|n| dir.join(n)).find(|p| is_executable(p)))
}

/// A regular file with an execute bit.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The process group of a running command (a watch rule's, a hook's): told to the
/// guardian while it runs, killed (with anything it left behind) when the run ends
/// or is cancelled. Drop it before reaping the leader: the group id is ours only
/// until then (see [`group`]).
pub struct GroupGuard {
    pgid: i32,
    guardian: Option<std::sync::Arc<Guardian>>,
}

impl GroupGuard {
    pub fn new(pgid: i32, guardian: Option<std::sync::Arc<Guardian>>) -> Self {
        if let Some(g) = &guardian {
            g.watch(pgid);
        }
        Self { pgid, guardian }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        signal_group(self.pgid, Signal::SIGKILL);
        if let Some(g) = &self.guardian {
            g.forget(self.pgid);
        }
    }
}

/// Sends `sig` to a process group; false when the group no longer exists.
pub fn signal_group(pgid: i32, sig: Signal) -> bool {
    killpg(Pid::from_raw(pgid), sig).is_ok()
}

pub fn group_alive(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None).is_ok()
}

/// Polls `alive` with a short backoff until it is false or `limit` passes. There is
/// no event for "a process that is not our child exited"; the guardian uses this
/// once, when the daemon is gone (the supervisor has an async twin for its stops).
pub(crate) fn wait_gone(alive: impl Fn() -> bool, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut step = Duration::from_millis(1);
    while alive() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(step);
        step = (step * 2).min(Duration::from_millis(50));
    }
    true
}

/// `(pid, marker)` of every live process whose environment holds a marker.
fn marked_processes() -> Vec<(i32, String)> {
    let needle = format!("{MARKER_VAR}=");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            let marker = env
                .split(|&b| b == 0)
                .find_map(|kv| kv.strip_prefix(needle.as_bytes()))?;
            Some((pid, String::from_utf8_lossy(marker).into_owned()))
        })
        .collect()
}

/// Crash recovery: kills processes whose marker (`instance/env-id/service`) names
/// one of `env_ids` and an instance other than `current`, and waits (a few seconds
/// at most) until they have exited, so that the ports they held are free for the
/// services started again. Returns how many.
pub fn kill_stale_markers(current: &str, env_ids: &[&str]) -> usize {
    let mut killed = Vec::new();
    for (pid, marker) in marked_processes() {
        let Some((instance, rest)) = marker.split_once('/') else {
            continue;
        };
        let Some((env_id, _service)) = rest.rsplit_once('/') else {
            continue;
        };
        if instance != current && env_ids.contains(&env_id) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            killed.push(pid);
        }
    }
    if !wait_gone(
        || killed.iter().any(|&p| running(p)),
        Duration::from_secs(5),
    ) {
        tracing::warn!(pids = ?killed, "processes left by an earlier devenvd outlived SIGKILL for 5 s");
    }
    killed.len()
}

/// Whether `pid` is a process that has not exited yet (a zombie has: its sockets
/// are closed, only its parent has not collected it).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_finder_takes_the_first_dir_with_an_executable_of_the_names() {
        use std::os::unix::fs::PermissionsExt;
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let exe = |p: &Path| {
            std::fs::write(p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        std::fs::write(a.path().join("redis-server"), "not executable").unwrap();
        exe(&b.path().join("redis-server"));
        exe(&b.path().join("valkey-server"));
        let dirs = || vec![a.path().to_path_buf(), b.path().to_path_buf()];
        assert_eq!(
            find_program(&["valkey-server", "redis-server"], dirs()),
            Some(b.path().join("valkey-server"))
        );
        assert_eq!(
            find_program(&["redis-server"], dirs()),
            Some(b.path().join("redis-server"))
        );
        assert_eq!(find_program(&["nosuch"], dirs()), None);
    }

    #[test]
    fn programs_resolve_against_the_given_path() {
        assert_eq!(resolve_program("/x/y", None), PathBuf::from("/x/y"));
        let sh = resolve_program("sh", Some("/nonexistent:/bin:/usr/bin"));
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        assert_eq!(
            resolve_program("no-such-tool-xyz", Some("/bin")),
            PathBuf::from("no-such-tool-xyz")
        );
    }

    #[tokio::test]
    async fn spawned_child_gets_own_group_and_marker_is_found() {
        let spawner = Spawner::start().unwrap();
        // instance/env-id/service, as the engine writes it; the env id is unique to
        // this test run so no other process can match.
        let env_id = format!("/tmp/test-env-{}#", std::process::id());
        let marker = format!("test/{env_id}/svc");
        let mut cmd = tokio::process::Command::new(resolve_program("sleep", None));
        cmd.arg("30").env(MARKER_VAR, &marker);
        let mut child = spawner.spawn(cmd).await.unwrap();
        let pid = child.id().unwrap() as i32;
        assert_eq!(
            nix::unistd::getpgid(Some(Pid::from_raw(pid)))
                .unwrap()
                .as_raw(),
            pid
        );
        // The spawn returns once the child's exec has replaced its memory, which is
        // a moment before the kernel records where the new environment lies: until
        // then /proc/PID/environ reads empty (seen under load), so poll.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !marked_processes().contains(&(pid, marker.clone())) {
            assert!(
                std::time::Instant::now() < deadline,
                "the child's marker never showed in /proc/{pid}/environ"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        // Our own instance's processes are left alone, another's are killed.
        assert_eq!(kill_stale_markers("test", &[&env_id]), 0);
        assert_eq!(kill_stale_markers("other", &[&env_id]), 1);
        let status = child.wait().await.unwrap();
        assert!(!status.success());
    }
}
