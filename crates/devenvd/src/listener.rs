//! The socket: one daemon per socket (a lock file), a private directory, mode 0600,
//! systemd socket activation, and a peer uid check on every connection.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use devenv_api::Paths;
use nix::fcntl::{Flock, FlockArg};
use tokio::net::{UnixListener, UnixStream};

/// Holds the lock and, when we created it, removes the socket on drop.
#[derive(Debug)]
pub struct SocketGuard {
    socket: Option<PathBuf>,
    _lock: Flock<File>,
}

impl Drop for SocketGuard {
    fn drop(&mut self) {
        if let Some(s) = &self.socket {
            let _ = std::fs::remove_file(s);
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("another devenvd is already running on {socket}{}", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
pub struct AlreadyRunning {
    pub socket: PathBuf,
    pub pid: Option<u32>,
}

/// Takes the per-socket lock and returns the listener: the inherited one under
/// socket activation, else a freshly bound socket.
pub fn bind(paths: &Paths, activation_fds: i32) -> anyhow::Result<(UnixListener, SocketGuard)> {
    let activated = activated_listener(activation_fds)?;
    if activated.is_none() {
        if let Some(dir) = paths.socket.parent() {
            devenv_api::ensure_private_dir(dir)?;
        }
    }
    let lock = lock(paths)?;
    if let Some(l) = activated {
        tracing::info!("using the socket passed by the service manager (LISTEN_FDS)");
        return Ok((
            l,
            SocketGuard {
                socket: None,
                _lock: lock,
            },
        ));
    }
    remove_stale_socket(&paths.socket)?;
    let listener = UnixListener::bind(&paths.socket)
        .with_context(|| format!("binding {}", paths.socket.display()))?;
    std::fs::set_permissions(&paths.socket, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod 0600 {}", paths.socket.display()))?;
    Ok((
        listener,
        SocketGuard {
            socket: Some(paths.socket.clone()),
            _lock: lock,
        },
    ))
}

/// Something at the socket path that devenvd will not remove.
#[derive(Debug, thiserror::Error)]
#[error("{} exists and is {kind}, not a socket; devenvd only replaces a stale socket of its own, so it leaves it alone and does not start. Move it away, or choose another path with --socket or DEVENV_SOCKET", path.display())]
pub struct NotASocket {
    pub path: PathBuf,
    pub kind: &'static str,
}

/// We hold the lock, so a socket left at `path` is stale: remove it. Anything else
/// (a regular file, a directory, a symlink) is refused, never deleted.
fn remove_stale_socket(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt as _;
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    };
    let t = meta.file_type();
    if !t.is_socket() {
        let kind = if t.is_file() {
            "a regular file"
        } else if t.is_dir() {
            "a directory"
        } else if t.is_symlink() {
            "a symbolic link"
        } else {
            "a special file"
        };
        return Err(NotASocket {
            path: path.to_path_buf(),
            kind,
        }
        .into());
    }
    // The directory is private to us (checked above), so nothing can swap the socket
    // for another file between the check and the unlink.
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!(socket = %path.display(), "removed a stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("removing stale socket {}", path.display()))
        }
    }
    Ok(())
}

fn lock(paths: &Paths) -> anyhow::Result<Flock<File>> {
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = paths.lock_file();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .with_context(|| format!("opening lock file {}", path.display()))?;
    let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(l) => l,
        Err((mut file, _)) => {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            return Err(AlreadyRunning {
                socket: paths.socket.clone(),
                pid: pid.trim().parse().ok(),
            }
            .into());
        }
    };
    lock.set_len(0)?;
    lock.rewind()?;
    write!(lock, "{}", std::process::id())?;
    lock.flush()?;
    Ok(lock)
}

/// The listening socket passed by systemd (LISTEN_PID/LISTEN_FDS, fd 3), if any.
/// How many sockets the service manager passed us (LISTEN_PID/LISTEN_FDS). Reads
/// and removes the variables, so services never see them; call it before any other
/// thread exists, since changing the environment races with readers.
pub fn take_activation() -> i32 {
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let fds = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if for_us {
        fds
    } else {
        0
    }
}

fn activated_listener(fds: i32) -> anyhow::Result<Option<UnixListener>> {
    if fds < 1 {
        return Ok(None);
    }
    if fds > 1 {
        bail!("socket activation passed {fds} sockets; devenvd expects exactly one");
    }
    let std_listener = fd3_listener();
    std_listener.set_nonblocking(true)?;
    // Inherited fds lack close-on-exec: services must not hold our socket.
    nix::fcntl::fcntl(
        &std_listener,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )?;
    Ok(Some(UnixListener::from_std(std_listener)?))
}

#[allow(
    unsafe_code,
    reason = "adopting the inherited socket fd 3 requires FromRawFd"
)]
fn fd3_listener() -> std::os::unix::net::UnixListener {
    use std::os::fd::FromRawFd;
    // SAFETY: LISTEN_PID names this process, so fd 3 is the listening socket the
    // service manager passed to us, and nothing else in the process owns it.
    unsafe { std::os::unix::net::UnixListener::from_raw_fd(3) }
}

/// Accepted connections from our own uid only; others are logged and dropped.
pub fn incoming(
    listener: UnixListener,
) -> impl futures::Stream<Item = Result<UnixStream, std::io::Error>> + Send + 'static {
    let uid = nix::unistd::getuid().as_raw();
    futures::stream::unfold(listener, move |listener| async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => match stream.peer_cred() {
                    Ok(cred) if cred.uid() == uid => return Some((Ok(stream), listener)),
                    Ok(cred) => {
                        tracing::warn!(peer_uid = cred.uid(), peer_pid = ?cred.pid(), "refused a connection from another user");
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "refused a connection: cannot read peer credentials")
                    }
                },
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    })
}
