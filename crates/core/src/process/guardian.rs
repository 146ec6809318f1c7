//! The guardian: a process (`devenvd __guardian`, named `devenv-guardian`) told every
//! live service group over a pipe. When the daemon dies, even by SIGKILL, the pipe
//! closes and the guardian kills those groups, grandchildren included. It ignores
//! the signals a `pkill devenvd` or a terminal would send, and exits only when told
//! or on EOF.
//!
//! The daemon keeps the set of live groups itself and a thread blocked in
//! `waitpid` on the guardian: when the guardian dies (OOM killer, a stray
//! `kill -9`), that wait returns at once, and the thread starts a new guardian and
//! tells it every live group again. Between the death and the re-registration
//! (a fork and a pipe write, about a millisecond) a daemon crash would leave the
//! services to the next daemon's marker sweep.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::group::GroupHandle;

/// Longest wait between two attempts to start a guardian that failed to start.
const MAX_RETRY: Duration = Duration::from_secs(5);

/// Client side of the guardian process; replaces it when it dies.
#[derive(Debug)]
pub struct Guardian {
    shared: Arc<Shared>,
    monitor: Mutex<Option<std::thread::JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    exe: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    stdin: Option<std::process::ChildStdin>,
    pid: u32,
    /// Every group told and not forgotten: what a new guardian is told again.
    groups: BTreeSet<i32>,
    dismissed: bool,
    restarts: u32,
}

/// What `devenv daemon status` shows of the guardian.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardianInfo {
    pub pid: u32,
    /// How many times it died and was replaced.
    pub restarts: u32,
    pub groups: usize,
}

impl Guardian {
    /// Starts `exe __guardian` and the thread that replaces it when it dies.
    pub fn start(exe: &Path) -> std::io::Result<Self> {
        let mut child = spawn(exe)?;
        let shared = Arc::new(Shared {
            exe: exe.to_path_buf(),
            state: Mutex::new(State {
                stdin: child.stdin.take(),
                pid: child.id(),
                groups: BTreeSet::new(),
                dismissed: false,
                restarts: 0,
            }),
        });
        let monitor = std::thread::Builder::new()
            .name("guardian-monitor".into())
            .spawn({
                let shared = shared.clone();
                move || monitor(&shared, child)
            })?;
        Ok(Self {
            shared,
            monitor: Mutex::new(Some(monitor)),
        })
    }

    pub fn watch(&self, pgid: i32) {
        let mut s = self.shared.lock();
        s.groups.insert(pgid);
        s.send(&format!("+{pgid}\n"));
    }

    pub fn forget(&self, pgid: i32) {
        let mut s = self.shared.lock();
        s.groups.remove(&pgid);
        s.send(&format!("-{pgid}\n"));
    }

    pub fn info(&self) -> GuardianInfo {
        let s = self.shared.lock();
        GuardianInfo {
            pid: s.pid,
            restarts: s.restarts,
            groups: s.groups.len(),
        }
    }

    /// Clean exit: the groups are already stopped; tell the guardian to leave, and
    /// kill it if it has not within two seconds.
    pub fn dismiss(&self) {
        let pid = {
            let mut s = self.shared.lock();
            s.dismissed = true;
            s.send("exit\n");
            s.stdin.take();
            s.pid
        };
        let Some(monitor) = self
            .monitor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        let deadline = Instant::now() + Duration::from_secs(2);
        while !monitor.is_finished() {
            if Instant::now() >= deadline {
                let _ =
                    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), Signal::SIGKILL);
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = monitor.join();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    fn send(&mut self, msg: &str) {
        if let Some(s) = self.stdin.as_mut() {
            if s.write_all(msg.as_bytes()).is_err() {
                // It died; the monitor starts a new one and tells it every group.
                self.stdin = None;
            }
        }
    }
}

/// Starts `exe __guardian` in its own process group (terminal signals meant for the
/// daemon must not reach it).
fn spawn(exe: &Path) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(exe)
        .arg("__guardian")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .spawn()
}

/// Waits for the guardian to exit; unless dismissed, starts a new one and tells it
/// every live group. Ends when the daemon dismisses the guardian.
fn monitor(shared: &Shared, mut child: std::process::Child) {
    loop {
        let status = child.wait();
        let died = Instant::now();
        let mut retry = Duration::from_millis(50);
        child = loop {
            let mut s = shared.lock();
            if s.dismissed {
                return;
            }
            let old = s.pid;
            match spawn(&shared.exe) {
                Ok(mut new) => {
                    s.stdin = new.stdin.take();
                    s.pid = new.id();
                    s.restarts += 1;
                    let all: String = s.groups.iter().map(|g| format!("+{g}\n")).collect();
                    s.send(&all);
                    tracing::warn!(
                        old_pid = old,
                        new_pid = s.pid,
                        status = ?status.as_ref().ok(),
                        groups = s.groups.len(),
                        took_ms = died.elapsed().as_secs_f64() * 1000.0,
                        "the process guardian died; started a new one and told it every live process group"
                    );
                    break new;
                }
                Err(e) => {
                    drop(s);
                    tracing::error!(error = %e, exe = %shared.exe.display(), retry_in = ?retry,
                        "the process guardian died and a new one cannot start; services would outlive a daemon crash until it does");
                    std::thread::sleep(retry);
                    retry = (retry * 2).min(MAX_RETRY);
                }
            }
        };
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
    let mut groups = BTreeMap::new();
    for line in input.lines() {
        let Ok(line) = line else { break };
        if line == "exit" {
            return;
        }
        if let Some(n) = line.strip_prefix('+').and_then(|n| n.parse::<i32>().ok()) {
            groups.insert(n, GroupHandle::new(n));
        } else if let Some(n) = line.strip_prefix('-').and_then(|n| n.parse::<i32>().ok()) {
            groups.remove(&n);
        }
    }
    // The daemon died without dismissing us: take its services down with it.
    for g in groups.values() {
        g.signal(Some(Signal::SIGTERM));
    }
    super::wait_gone(
        || groups.values().any(|g| g.signal(None)),
        Duration::from_secs(3),
    );
    for g in groups.values() {
        g.signal(Some(Signal::SIGKILL));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(super::super::group_alive(pgid));
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
