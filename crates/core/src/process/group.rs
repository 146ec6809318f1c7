//! Process groups signalled only while their id is still theirs.
//!
//! A group's id is its leader's pid. Once the leader is reaped and the group is
//! empty the number is free, and the kernel may give it to an unrelated process
//! that starts a group of its own: a `killpg` after that hits a stranger. So the
//! daemon learns that a leader exited from a pidfd, which turns readable at exit
//! *without* reaping (a zombie still holds its pid, and with it the group id),
//! signals what is left of the group, and reaps last ([`Leader`]).
//!
//! The guardian is not the leaders' parent and cannot keep them unreaped; it holds
//! a pidfd per leader and signals the group through it
//! (`PIDFD_SIGNAL_PROCESS_GROUP`, Linux 6.9), which names the group by the kernel's
//! pid object, not by the number ([`GroupHandle`]).
//!
//! Without pidfds (Linux before 5.3, other systems) both fall back to the numbers,
//! as before: the leader is reaped first and the group signalled after, which leaves
//! a window the size of a pid-space wrap-around.

use std::os::fd::OwnedFd;
use std::time::Duration;

use nix::sys::signal::Signal;

/// A spawned group leader that the daemon has not reaped yet.
#[derive(Debug)]
pub struct Leader {
    pid: i32,
    #[cfg(target_os = "linux")]
    exit: Option<tokio::io::unix::AsyncFd<OwnedFd>>,
}

impl Leader {
    /// For `child`, just spawned as the leader of its own group and not waited for.
    /// Call inside a tokio runtime.
    pub fn of(child: &tokio::process::Child) -> Self {
        let pid = child.id().map_or(0, |p| p as i32);
        Self {
            pid,
            #[cfg(target_os = "linux")]
            exit: pidfd_open(pid).ok().and_then(watch_fd),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Resolves when the leader has exited. With a pidfd the leader stays unreaped
    /// (its group id stays ours) until the caller's `child.wait()`; without one this
    /// reaps it.
    pub async fn exited(&self, child: &mut tokio::process::Child) {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.exit {
            // A pidfd is readable from the leader's exit on; the guard is not
            // cleared, so asking again answers at once.
            if fd.readable().await.is_ok() {
                return;
            }
        }
        let _ = child.wait().await;
    }
}

/// Whether a process other than a zombie is in group `pgid`. A zombie leader keeps
/// `killpg(pgid, 0)` succeeding, so this looks at the members themselves. There is
/// no event for "the last member of a group exited": callers poll this, bounded.
pub fn group_running(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        // No procfs (not Linux): the group exists while a member (perhaps a zombie) does.
        return super::group_alive(pgid);
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .any(|pid| {
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                return false;
            };
            // pid (comm) state ppid pgrp ...: the name may hold spaces and parens.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                return false;
            };
            let mut fields = rest.split_whitespace();
            let state = fields.next().unwrap_or("Z");
            let pgrp = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
            pgrp == Some(pgid) && state != "Z" && state != "X"
        })
}

/// Polls [`group_running`] with a short backoff until the group has no running
/// member or `until` passes; true when it has none.
pub async fn group_gone_by(pgid: i32, until: tokio::time::Instant) -> bool {
    let mut step = Duration::from_millis(1);
    while group_running(pgid) {
        if tokio::time::Instant::now() >= until {
            return false;
        }
        tokio::time::sleep(step).await;
        step = (step * 2).min(Duration::from_millis(100));
    }
    true
}

/// The guardian's handle on a group it was told about: the number, and a pidfd of
/// the leader opened when it was told (the daemon had not reaped the leader then).
#[derive(Debug)]
pub struct GroupHandle {
    pub pgid: i32,
    leader: Option<OwnedFd>,
}

impl GroupHandle {
    pub fn new(pgid: i32) -> Self {
        #[cfg(target_os = "linux")]
        let leader = pidfd_open(pgid).ok();
        #[cfg(not(target_os = "linux"))]
        let leader = None;
        Self { pgid, leader }
    }

    /// Sends `sig` (`None`: only asks) to the group if it is still the one we were
    /// told about; false when it has no member left.
    pub fn signal(&self, sig: Option<Signal>) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(fd) = &self.leader {
            use std::os::fd::AsFd;
            match pidfd_signal(fd.as_fd(), sig, PIDFD_SIGNAL_PROCESS_GROUP) {
                Ok(()) => return true,
                Err(nix::errno::Errno::ESRCH) => return false,
                // Before Linux 6.9 the flag is unknown (EINVAL): use the number, if
                // it still is ours: the leader unreaped holds it; reaped, and a
                // process now has that pid, it belongs to someone else.
                Err(_) => {
                    let leader_unreaped = pidfd_signal(fd.as_fd(), None, 0).is_ok();
                    if !leader_unreaped
                        && std::path::Path::new(&format!("/proc/{}", self.pgid)).exists()
                    {
                        return false;
                    }
                }
            }
        }
        match sig {
            Some(sig) => super::signal_group(self.pgid, sig),
            None => super::group_alive(self.pgid),
        }
    }
}

#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "AsyncFd::register is unsafe for descriptors the AsyncFd does not own"
)]
fn watch_fd(fd: OwnedFd) -> Option<tokio::io::unix::AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the descriptor, so it stays open while registered.
    unsafe { tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
        .ok()
}

#[cfg(target_os = "linux")]
const PIDFD_SIGNAL_PROCESS_GROUP: libc::c_uint = 1 << 2;

#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "pidfd_open has no safe wrapper in std or nix; the call takes two integers"
)]
fn pidfd_open(pid: i32) -> std::io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    if pid <= 0 {
        return Err(std::io::Error::from(std::io::ErrorKind::InvalidInput));
    }
    // SAFETY: plain integer arguments; on success the result is a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(target_os = "linux")]
#[allow(
    unsafe_code,
    reason = "pidfd_send_signal with flags has no safe wrapper in std or nix"
)]
fn pidfd_signal(
    fd: std::os::fd::BorrowedFd<'_>,
    sig: Option<Signal>,
    flags: libc::c_uint,
) -> Result<(), nix::errno::Errno> {
    use std::os::fd::AsRawFd;
    let sig = sig.map_or(0, |s| s as libc::c_int);
    // SAFETY: a borrowed (open) descriptor, a signal number, a null siginfo (the
    // kernel fills it as for kill(2)) and flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            fd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            flags,
        )
    };
    if r < 0 {
        Err(nix::errno::Errno::last())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// `sh` leading its own group with a `sleep` beside it; the leader exits at once.
    fn wrapper_with_orphan() -> tokio::process::Child {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "sleep 30 & exit 0"]).process_group(0);
        cmd.spawn().unwrap()
    }

    #[tokio::test]
    async fn a_leader_that_exited_keeps_its_group_id_until_reaped() {
        let mut child = wrapper_with_orphan();
        let leader = Leader::of(&child);
        let pgid = leader.pid();
        tokio::time::timeout(Duration::from_secs(10), leader.exited(&mut child))
            .await
            .expect("the leader exits at once");
        // Not reaped: still a zombie holding its pid, so the number is still this
        // group's and signalling it is safe.
        let stat = std::fs::read_to_string(format!("/proc/{pgid}/stat")).unwrap();
        let state = stat.rsplit_once(')').unwrap().1.split_whitespace().next();
        assert_eq!(state, Some("Z"), "leader is unreaped: {stat}");
        assert!(group_running(pgid), "the sleep is still in the group");
        assert!(super::super::signal_group(pgid, Signal::SIGKILL));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        assert!(group_gone_by(pgid, deadline).await, "the sleep was killed");
        let status = child.wait().await.unwrap();
        assert!(status.success(), "the leader's own exit status is kept");
    }

    #[test]
    fn the_guardian_handle_signals_the_group_it_was_told_about() {
        let mut leader = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & exec sleep 30"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = leader.id() as i32;
        let handle = GroupHandle::new(pgid);
        assert!(handle.signal(None));
        assert!(handle.signal(Some(Signal::SIGKILL)));
        leader.wait().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while group_running(pgid) {
            assert!(
                std::time::Instant::now() < deadline,
                "group outlived SIGKILL"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // Leader reaped, group empty (once init has reaped the orphaned sleep): the
        // handle knows the group is gone (and would not hit a new group that got
        // the same number).
        while handle.signal(None) {
            assert!(
                std::time::Instant::now() < deadline,
                "the group never emptied"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
