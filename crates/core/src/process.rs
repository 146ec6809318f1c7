//! Host processes that never outlive the daemon.
//!
//! Two layers:
//! 1. Every service runs in its own process group. A guardian process
//!    (`devenvd __guardian`, named `devenv-guardian`) is told every live group over a
//!    pipe; when the daemon dies, even by SIGKILL, the pipe closes and the guardian
//!    kills those groups, grandchildren included. It ignores the signals a
//!    `pkill devenvd` or a terminal would send, and exits only when told or on EOF.
//! 2. Each service's environment carries a marker; a restarted daemon finds and
//!    kills anything still carrying a marker of a service it had running.
//!
//! `PR_SET_PDEATHSIG` is deliberately not used: it needs a `pre_exec` hook, which
//! forces a full `fork()` of the daemon for every service (page tables copied, cost
//! growing with the daemon's memory) instead of `posix_spawn`, and it would only
//! reach the direct child anyway.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

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
fn wait_gone(alive: impl Fn() -> bool, limit: Duration) -> bool {
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

/// Client side of the guardian process.
#[derive(Debug)]
pub struct Guardian {
    stdin: Mutex<Option<std::process::ChildStdin>>,
    child: Mutex<std::process::Child>,
}

impl Guardian {
    /// Starts `exe __guardian` in its own process group (terminal signals meant for
    /// the daemon must not reach it).
    pub fn start(exe: &Path) -> std::io::Result<Self> {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new(exe)
            .arg("__guardian")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Self {
            stdin: Mutex::new(stdin),
            child: Mutex::new(child),
        })
    }

    pub fn watch(&self, pgid: i32) {
        self.send(&format!("+{pgid}\n"));
    }

    pub fn forget(&self, pgid: i32) {
        self.send(&format!("-{pgid}\n"));
    }

    fn send(&self, msg: &str) {
        let mut stdin = self.stdin.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = stdin.as_mut() {
            if let Err(e) = s.write_all(msg.as_bytes()) {
                tracing::warn!(error = %e, "guardian is gone; crash cleanup relies on restart recovery");
                *stdin = None;
            }
        }
    }

    /// Clean exit: the groups are already stopped; tell the guardian to leave.
    pub fn dismiss(&self) {
        self.send("exit\n");
        self.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Makes this process a guardian: a distinct name (so `pkill devenvd` does not hit
/// it) and deaf to the signals meant for the daemon. It ends on EOF or `exit`.
pub fn become_guardian() {
    let _ = nix::sys::prctl::set_name(c"devenv-guardian");
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        ignore(sig);
    }
}

#[allow(
    unsafe_code,
    reason = "installing SIG_IGN is the only way to ignore a signal"
)]
fn ignore(sig: Signal) {
    use nix::sys::signal::{signal, SigHandler};
    // SAFETY: SIG_IGN runs no code in the signal context.
    let _ = unsafe { signal(sig, SigHandler::SigIgn) };
}

/// The guardian's main loop: remember groups until stdin closes, then kill them.
pub fn run_guardian(input: impl BufRead) {
    let mut groups = BTreeSet::new();
    for line in input.lines() {
        let Ok(line) = line else { break };
        if line == "exit" {
            return;
        }
        if let Some(n) = line.strip_prefix('+').and_then(|n| n.parse::<i32>().ok()) {
            groups.insert(n);
        } else if let Some(n) = line.strip_prefix('-').and_then(|n| n.parse::<i32>().ok()) {
            groups.remove(&n);
        }
    }
    // The daemon died without dismissing us: take its services down with it.
    for &g in &groups {
        signal_group(g, Signal::SIGTERM);
    }
    wait_gone(
        || groups.iter().any(|&g| group_alive(g)),
        Duration::from_secs(3),
    );
    for &g in &groups {
        signal_group(g, Signal::SIGKILL);
    }
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

    /// A `sleep` leading its own process group.
    fn group_leader() -> (std::process::Child, i32) {
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        (child, pgid)
    }

    #[test]
    fn guardian_kills_remembered_groups_on_eof() {
        let (mut child, pgid) = group_leader();
        run_guardian(std::io::Cursor::new(format!("+{pgid}\n+999999\n-999999\n")));
        let status = child.wait().unwrap();
        assert!(!status.success(), "guardian must have killed the group");
    }

    #[test]
    fn guardian_exit_leaves_groups_alone() {
        let (mut child, pgid) = group_leader();
        run_guardian(std::io::Cursor::new(format!("+{pgid}\nexit\n")));
        assert!(group_alive(pgid));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
