//! Host processes that never outlive the daemon.
//!
//! Three layers, because each alone has a hole:
//! 1. Every service runs in its own process group, spawned from one long-lived
//!    thread with `PR_SET_PDEATHSIG` (the signal fires when the *spawning thread*
//!    exits, so it must not be a pool thread that retires when idle).
//! 2. A guardian process (`devenvd __guardian`) is told every live process group
//!    over a pipe; when the daemon dies, even by SIGKILL, the pipe closes and the
//!    guardian kills those groups, grandchildren included.
//! 3. Each service's environment carries a marker; a restarted daemon finds and
//!    kills anything still carrying a marker of a service it had running.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tokio::sync::oneshot;

/// Environment variable holding the marker of a service's processes.
pub const MARKER_VAR: &str = "DEVENV_MARKER";

type Job = (
    tokio::process::Command,
    oneshot::Sender<std::io::Result<tokio::process::Child>>,
);

/// Spawns processes from one dedicated thread (see the module docs).
#[derive(Debug)]
pub struct Spawner {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Spawner {
    /// Starts the spawner thread. Must be called inside a tokio runtime, whose
    /// handle the thread uses to register children.
    pub fn start() -> std::io::Result<Self> {
        let handle = tokio::runtime::Handle::current();
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("devenv-spawner".into())
            .spawn(move || {
                let _guard = handle.enter();
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })?;
        Ok(Self { jobs: tx })
    }

    /// Spawns `cmd` in a new process group that dies with the daemon.
    pub async fn spawn(
        &self,
        mut cmd: tokio::process::Command,
    ) -> std::io::Result<tokio::process::Child> {
        cmd.process_group(0).kill_on_drop(false);
        die_with_parent(&mut cmd);
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send((cmd, tx))
            .map_err(|_| std::io::Error::other("spawner thread is gone"))?;
        rx.await
            .map_err(|_| std::io::Error::other("spawner thread is gone"))?
    }
}

#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "pre_exec is the only way to set PDEATHSIG in the child"
)]
fn die_with_parent(cmd: &mut tokio::process::Command) {
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only calls
    // async-signal-safe functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // The daemon may have died between fork and prctl.
            if libc::getppid() != parent {
                return Err(std::io::Error::other(
                    "devenvd exited while starting the service",
                ));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut tokio::process::Command) {}

/// Sends `sig` to a process group; false when the group no longer exists.
pub fn signal_group(pgid: i32, sig: Signal) -> bool {
    killpg(Pid::from_raw(pgid), sig).is_ok()
}

pub fn group_alive(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None).is_ok()
}

/// SIGTERM, then SIGKILL after `grace`, waiting (bounded) until the group is gone.
pub fn terminate_group_blocking(pgid: i32, grace: Duration) {
    if !signal_group(pgid, Signal::SIGTERM) {
        return;
    }
    if wait_gone(|| group_alive(pgid), grace) {
        return;
    }
    signal_group(pgid, Signal::SIGKILL);
    wait_gone(|| group_alive(pgid), Duration::from_secs(2));
}

/// Polls `alive` with a short backoff until it is false or `limit` passes. There is
/// no event for "a process that is not our child exited", so this is the one place
/// that polls, bounded, only during teardown.
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

/// Pids of live processes whose environment holds `DEVENV_MARKER=<marker>`.
pub fn find_marked(marker: &str) -> Vec<i32> {
    let needle = format!("{MARKER_VAR}={marker}\0").into_bytes();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.windows(needle.len()).any(|w| w == needle.as_slice()))
                .unwrap_or(false)
        })
        .collect()
}

/// Kills every process carrying `marker` (crash recovery). Returns how many.
pub fn kill_marked(marker: &str) -> usize {
    let pids = find_marked(marker);
    for &pid in &pids {
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
    pids.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spawned_child_gets_own_group_and_marker_is_found() {
        let spawner = Spawner::start().unwrap();
        let marker = format!("test-{}", std::process::id());
        let mut cmd = tokio::process::Command::new("sleep");
        cmd.arg("30").env(MARKER_VAR, &marker);
        let mut child = spawner.spawn(cmd).await.unwrap();
        let pid = child.id().unwrap() as i32;
        assert_eq!(
            nix::unistd::getpgid(Some(Pid::from_raw(pid)))
                .unwrap()
                .as_raw(),
            pid
        );
        assert_eq!(find_marked(&marker), vec![pid]);
        assert_eq!(kill_marked(&marker), 1);
        let status = child.wait().await.unwrap();
        assert!(!status.success());
    }

    #[test]
    fn guardian_kills_remembered_groups_on_eof() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        run_guardian(std::io::Cursor::new(format!("+{pgid}\n+999999\n-999999\n")));
        let status = child.wait().unwrap();
        assert!(!status.success(), "guardian must have killed the group");
    }

    #[test]
    fn guardian_exit_leaves_groups_alone() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        run_guardian(std::io::Cursor::new(format!("+{pgid}\nexit\n")));
        assert!(group_alive(pgid));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
