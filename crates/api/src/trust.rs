//! Whether a socket can be trusted to be our own daemon: checked by every client
//! before it sends a byte. A socket in a directory another user controls, or a
//! listener run by another user, could be an impostor collecting what the client
//! sends (the whole process environment, with its secrets, on `up`).

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// Why a socket is not trusted. One line each, naming the path and who owns it.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{dir} is owned by {owner}, not by you, {you}")]
    DirNotOwned {
        dir: PathBuf,
        owner: String,
        you: String,
    },
    #[error("{dir} is a symbolic link, not a directory of your own")]
    DirSymlink { dir: PathBuf },
    #[error("{dir} is not a directory")]
    NotADirectory { dir: PathBuf },
    #[error("{dir} has mode {mode:04o}; it must be 0700 (only you)")]
    DirMode { dir: PathBuf, mode: u32 },
    #[error("cannot check {dir}: {source}")]
    DirUnreadable {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the process listening on it runs as {peer}{pid}, not as you, {you}", pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    PeerNotOwned {
        peer: String,
        pid: Option<i32>,
        you: String,
    },
    #[error("cannot read the credentials of the process listening on it: {source}")]
    PeerUnknown {
        #[source]
        source: std::io::Error,
    },
}

/// The directory a socket lives in (`.` for a bare file name).
pub fn socket_dir(socket: &Path) -> &Path {
    match socket.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Checks the socket's directory: ours, 0700, not a symlink. `Ok(false)` when the
/// directory does not exist (nothing can listen there; a daemon may create it).
pub fn check_socket_dir(socket: &Path) -> Result<bool, TrustError> {
    let dir = socket_dir(socket);
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(source) => {
            return Err(TrustError::DirUnreadable {
                dir: dir.to_path_buf(),
                source,
            })
        }
    };
    check_dir_meta(dir, &meta)?;
    Ok(true)
}

/// The checks on a directory's own metadata (from lstat or fstat): a directory, not a
/// symlink, ours, and no group/other bits.
fn check_dir_meta(dir: &Path, meta: &std::fs::Metadata) -> Result<(), TrustError> {
    check_dir_owner(dir, meta)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(TrustError::DirMode {
            dir: dir.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// A directory (not a symlink to one) owned by us.
pub(crate) fn check_dir_owner(dir: &Path, meta: &std::fs::Metadata) -> Result<(), TrustError> {
    let dir = dir.to_path_buf();
    if meta.file_type().is_symlink() {
        return Err(TrustError::DirSymlink { dir });
    }
    if !meta.is_dir() {
        return Err(TrustError::NotADirectory { dir });
    }
    let uid = my_uid();
    if meta.uid() != uid {
        return Err(TrustError::DirNotOwned {
            dir,
            owner: user_label(meta.uid()),
            you: user_label(uid),
        });
    }
    Ok(())
}

/// Checks that the process at the other end of a connected socket runs as us.
pub fn check_peer(stream: &tokio::net::UnixStream) -> Result<(), TrustError> {
    let cred = stream
        .peer_cred()
        .map_err(|source| TrustError::PeerUnknown { source })?;
    let uid = my_uid();
    if cred.uid() == uid {
        return Ok(());
    }
    Err(TrustError::PeerNotOwned {
        peer: user_label(cred.uid()),
        pid: cred.pid(),
        you: user_label(uid),
    })
}

pub(crate) fn my_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// `name (uid N)`, or `uid N` when the user database has no name for it.
pub(crate) fn user_label(uid: u32) -> String {
    match nix::unistd::User::from_uid(uid.into()) {
        Ok(Some(u)) => format!("{} (uid {uid})", u.name),
        _ => format!("uid {uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn chmod(p: &Path, mode: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn private_dir_passes_and_a_missing_one_is_not_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        chmod(tmp.path(), 0o700);
        assert!(check_socket_dir(&tmp.path().join("s.sock")).unwrap());
        assert!(!check_socket_dir(&tmp.path().join("gone/s.sock")).unwrap());
    }

    #[test]
    fn group_or_other_bits_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        for mode in [0o770, 0o750, 0o701, 0o1777] {
            chmod(tmp.path(), mode);
            let err = check_socket_dir(&tmp.path().join("s.sock")).unwrap_err();
            assert!(
                matches!(err, TrustError::DirMode { mode: m, .. } if m == mode),
                "{mode:o}: {err}"
            );
        }
        chmod(tmp.path(), 0o700);
    }

    #[test]
    fn a_symlinked_dir_and_a_file_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        chmod(&real, 0o700);
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = check_socket_dir(&link.join("s.sock")).unwrap_err();
        assert!(matches!(err, TrustError::DirSymlink { .. }), "{err}");
        let file = tmp.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = check_socket_dir(&file.join("s.sock")).unwrap_err();
        assert!(matches!(err, TrustError::NotADirectory { .. }), "{err}");
    }

    #[test]
    fn bare_file_name_is_in_the_current_dir() {
        assert_eq!(socket_dir(Path::new("s.sock")), Path::new("."));
        assert_eq!(socket_dir(Path::new("/r/s.sock")), Path::new("/r"));
    }

    #[tokio::test]
    async fn our_own_listener_is_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("s.sock");
        let _l = tokio::net::UnixListener::bind(&path).unwrap();
        let s = tokio::net::UnixStream::connect(&path).await.unwrap();
        check_peer(&s).unwrap();
    }
}
