//! A pseudo-terminal for tests that drive `devenv exec -t` / `shell` as a user's
//! terminal would: the client runs on the slave side, the test types into the master
//! and reads what it printed.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::wait_until;

/// The test's side of a terminal whose other side a client holds.
pub struct Term {
    master: std::fs::File,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Term {
    /// Runs `cmd` on a new terminal of `rows` x `cols` (its stdin, stdout and stderr).
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> (Term, Child) {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let master = std::fs::File::from(pty.master);
        set_size(&master, rows, cols);
        let slave = pty.slave;
        let child = cmd
            .stdin(Stdio::from(slave.try_clone().expect("dup the slave")))
            .stdout(Stdio::from(slave.try_clone().expect("dup the slave")))
            .stderr(Stdio::from(slave))
            .spawn()
            .expect("spawn the client on the terminal");
        // `cmd` holds the last copies of the slave side: dropped here, so the master
        // reads EIO once the client has exited.
        drop(cmd);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut reader = master.try_clone().expect("dup the master");
        let sink = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        (Term { master, seen }, child)
    }

    /// Everything the client printed so far.
    pub fn seen(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }

    pub fn type_in(&mut self, bytes: &[u8]) {
        self.master
            .write_all(bytes)
            .expect("type into the terminal");
    }

    /// Waits until the output after byte `from` holds `needle`; the index after it.
    pub fn expect(&self, from: usize, needle: &str, limit: Duration) -> usize {
        let mut at = None;
        let found = wait_until(limit, || {
            let seen = self.seen();
            at = seen
                .get(from..)
                .and_then(|s| s.find(needle))
                .map(|i| from + i + needle.len());
            at.is_some()
        });
        assert!(
            found,
            "no {needle:?} in the terminal after {limit:?}:\n{}",
            self.seen()
        );
        at.unwrap_or_default()
    }

    /// Resizes the terminal and tells `client` (SIGWINCH, sent by hand: the terminal
    /// is not its controlling one); then types `stty size` until the remote side
    /// reports the new size. The index after it.
    pub fn resize_until_seen(
        &mut self,
        client: &Child,
        from: usize,
        rows: u16,
        cols: u16,
        limit: Duration,
    ) -> usize {
        set_size(&self.master, rows, cols);
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(client.id() as i32),
            nix::sys::signal::SIGWINCH,
        )
        .expect("SIGWINCH the client");
        let needle = format!("{rows} {cols}");
        let mut at = None;
        let mut typed = 0usize;
        let resized = wait_until(limit, || {
            // Once per new prompt: the previous `stty size` has answered.
            let seen = self.seen();
            at = seen
                .get(from..)
                .and_then(|s| s.find(&needle))
                .map(|i| from + i + needle.len());
            if at.is_none() && seen.len() > typed {
                typed = seen.len();
                self.type_in(b"stty size\r");
            }
            at.is_some()
        });
        assert!(
            resized,
            "the remote size never became {needle}:\n{}",
            self.seen()
        );
        at.unwrap_or_default()
    }

    /// Waits (bounded) for `client` to exit; its exit code.
    pub fn wait_exit(&self, client: &mut Child, limit: Duration) -> Option<i32> {
        let mut status = None;
        let exited = wait_until(limit, || {
            status = client.try_wait().expect("wait for the client");
            status.is_some()
        });
        assert!(exited, "the client did not exit:\n{}", self.seen());
        status.and_then(|s| s.code())
    }
}

#[allow(
    unsafe_code,
    reason = "TIOCSWINSZ has no safe wrapper; one ioctl on the test's own terminal"
)]
fn set_size(master: &std::fs::File, rows: u16, cols: u16) {
    use std::os::fd::AsRawFd;
    let ws = nix::pty::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: an open descriptor and a pointer to a live winsize.
    let r = unsafe { nix::libc::ioctl(master.as_raw_fd(), nix::libc::TIOCSWINSZ, &ws) };
    assert_eq!(r, 0, "TIOCSWINSZ: {}", std::io::Error::last_os_error());
}
