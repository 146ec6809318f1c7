//! A pseudo-terminal for `exec -t`: the master side as an async reader/writer, its
//! size, and the child's side made its controlling terminal.
//!
//! tokio has no terminal type; the master is a non-blocking descriptor registered
//! with the reactor (`AsyncFd`). Three calls have no safe wrapper (a `pre_exec` hook,
//! and the TIOCSCTTY and TIOCSWINSZ ioctls): each is a single syscall on a
//! descriptor we own.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::unix::AsyncFd;

use super::TermSize;

/// The master side of a terminal whose slave side a child holds.
#[derive(Debug)]
pub struct Master {
    fd: AsyncFd<OwnedFd>,
}

/// Opens a terminal of `size`: (master, slave).
pub fn open(size: Option<TermSize>) -> io::Result<(Master, OwnedFd)> {
    let ws = size.map(winsize);
    let pty = nix::pty::openpty(ws.as_ref(), None).map_err(io::Error::from)?;
    let flags = fcntl(&pty.master, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    fcntl(
        &pty.master,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(io::Error::from)?;
    Ok((
        Master {
            fd: watch(pty.master)?,
        },
        pty.slave,
    ))
}

#[allow(
    unsafe_code,
    reason = "AsyncFd::register is unsafe for descriptors the AsyncFd does not own"
)]
fn watch(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    // SAFETY: the AsyncFd owns the descriptor, so it stays open while registered.
    unsafe { AsyncFd::register(fd) }.map_err(io::Error::from)
}

fn winsize(s: TermSize) -> nix::pty::Winsize {
    nix::pty::Winsize {
        ws_row: s.rows,
        ws_col: s.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

impl Master {
    /// Up to `buf.len()` bytes of the command's output; 0 when every holder of the
    /// slave side has closed it (Linux reports that as EIO).
    pub async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| nix::unistd::read(fd.get_ref(), buf).map_err(io::Error::from)) {
                Ok(Ok(n)) => return Ok(n),
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => return Ok(0),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Writes all of `data` (the terminal's input: keys, pasted text).
    pub async fn write_all(&self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let mut guard = self.fd.writable().await?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(Ok(n)) => data = &data[n..],
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
        Ok(())
    }

    /// Sets the terminal's size; the kernel sends SIGWINCH to its foreground group.
    #[allow(
        unsafe_code,
        reason = "TIOCSWINSZ has no safe wrapper in std or nix; one ioctl on our descriptor"
    )]
    pub fn resize(&self, size: TermSize) -> io::Result<()> {
        let ws = winsize(size);
        // SAFETY: an open descriptor we own and a pointer to a live winsize.
        let r = unsafe {
            libc::ioctl(
                self.fd.get_ref().as_fd().as_raw_fd(),
                libc::TIOCSWINSZ,
                &ws as *const nix::pty::Winsize,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Makes the child of `cmd` a session leader whose controlling terminal is its
/// stdin (the slave side), so that Ctrl-C on the terminal signals its group and
/// job control works. Needs a `fork()` (not `posix_spawn`); only `exec -t` pays it.
#[allow(
    unsafe_code,
    reason = "setsid and TIOCSCTTY must run in the child between fork and exec"
)]
pub fn controlling_terminal(cmd: &mut tokio::process::Command) {
    // SAFETY: the hook calls only async-signal-safe syscalls (setsid, ioctl) and
    // touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
