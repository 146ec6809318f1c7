//! Where the daemon's socket, data and log live: resolved in this one place for the
//! daemon and every client.

use std::os::unix::fs::{DirBuilderExt as _, MetadataExt, OpenOptionsExt as _, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::trust::{self, TrustError};

/// Environment lookups, injectable so that tests need not touch the process env.
pub trait Env {
    fn var(&self, key: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl<F: Fn(&str) -> Option<String>> Env for F {
    fn var(&self, key: &str) -> Option<String> {
        self(key)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not a private directory of ours (owner, type or mode); the reason is in the
    /// message, so it is not a `#[source]` too.
    #[error("{0}; refusing to use it")]
    NotPrivate(TrustError),
    #[error("{path} was replaced while it was being checked; refusing to use it")]
    Replaced { path: PathBuf },
    #[error("no home directory found; set DEVENV_DATA_DIR")]
    NoDataDir,
}

/// Resolved locations for one daemon instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub socket: PathBuf,
    pub data_dir: PathBuf,
}

impl Paths {
    /// Socket: `$DEVENV_SOCKET`, else `$XDG_RUNTIME_DIR/devenv/devenvd.sock`, else
    /// `/tmp/devenv-$UID/devenvd.sock` (macOS: the per-user `$TMPDIR`).
    /// Data: `$DEVENV_DATA_DIR`, else the platform data dir.
    pub fn resolve(env: &impl Env) -> Result<Self, PathsError> {
        let uid = nix::unistd::getuid().as_raw();
        let socket = match env.var("DEVENV_SOCKET") {
            Some(p) => PathBuf::from(p),
            None => default_socket_dir(env, uid).join("devenvd.sock"),
        };
        let data_dir = match env.var("DEVENV_DATA_DIR") {
            Some(p) => PathBuf::from(p),
            None => directories::ProjectDirs::from("dev", "devenv", "devenv")
                .ok_or(PathsError::NoDataDir)?
                .data_dir()
                .to_path_buf(),
        };
        Ok(Self { socket, data_dir })
    }

    /// Like [`Paths::resolve`], with an explicit socket taking precedence.
    pub fn resolve_with(env: &impl Env, socket: Option<PathBuf>) -> Result<Self, PathsError> {
        let mut paths = Self::resolve(env)?;
        if let Some(s) = socket {
            paths.socket = s;
        }
        Ok(paths)
    }

    /// The daemon's own log (when it was started in the background).
    pub fn log_file(&self) -> PathBuf {
        self.data_dir.join("devenvd.log")
    }

    /// Lock file guarding one daemon per socket.
    pub fn lock_file(&self) -> PathBuf {
        let mut name = self.socket.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        self.socket.with_file_name(name)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.data_dir.join("state")
    }

    /// Private temp files (helm values, image tarballs): 0700, swept on daemon start.
    pub fn tmp_dir(&self) -> PathBuf {
        self.data_dir.join("tmp")
    }
}

fn default_socket_dir(env: &impl Env, uid: u32) -> PathBuf {
    if let Some(dir) = env.var("XDG_RUNTIME_DIR") {
        return PathBuf::from(dir).join("devenv");
    }
    if cfg!(target_os = "macos") {
        if let Some(tmp) = env.var("TMPDIR") {
            return PathBuf::from(tmp).join("devenv");
        }
    }
    PathBuf::from(format!("/tmp/devenv-{uid}"))
}

/// Makes `dir` a private directory of ours: created with mode 0700 (parents as
/// usual) when missing, then what is there (made or found) is verified through a
/// handle that cannot follow a symlink: a directory, owned by us, not writable by
/// group or others (refused: someone else may have planted entries). Read/search bits
/// for group/others on our own directory are taken away. No check-then-create race:
/// the mkdir is attempted first, and the checks apply to the object actually opened.
pub fn ensure_private_dir(dir: &Path) -> Result<(), PathsError> {
    let create = |source| PathsError::Create {
        path: dir.to_path_buf(),
        source,
    };
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(create)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(create(e)),
    }
    let linked = std::fs::symlink_metadata(dir).map_err(create)?;
    trust::check_dir_owner(dir, &linked).map_err(PathsError::NotPrivate)?;
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(dir)
        .map_err(create)?;
    let meta = handle.metadata().map_err(create)?;
    if (meta.dev(), meta.ino()) != (linked.dev(), linked.ino()) {
        return Err(PathsError::Replaced {
            path: dir.to_path_buf(),
        });
    }
    trust::check_dir_owner(dir, &meta).map_err(PathsError::NotPrivate)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(PathsError::NotPrivate(TrustError::DirMode {
            dir: dir.to_path_buf(),
            mode,
        }));
    }
    if mode & 0o077 != 0 {
        handle
            .set_permissions(std::fs::Permissions::from_mode(0o700))
            .map_err(create)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Env {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn explicit_socket_wins() {
        let p = Paths::resolve(&env(&[
            ("DEVENV_SOCKET", "/x/s.sock"),
            ("XDG_RUNTIME_DIR", "/run/user/1"),
            ("DEVENV_DATA_DIR", "/d"),
        ]))
        .unwrap();
        assert_eq!(p.socket, PathBuf::from("/x/s.sock"));
        assert_eq!(p.data_dir, PathBuf::from("/d"));
        assert_eq!(p.lock_file(), PathBuf::from("/x/s.sock.lock"));
    }

    #[test]
    fn xdg_runtime_dir_then_tmp() {
        let p = Paths::resolve(&env(&[
            ("XDG_RUNTIME_DIR", "/run/user/1"),
            ("DEVENV_DATA_DIR", "/d"),
        ]))
        .unwrap();
        assert_eq!(p.socket, PathBuf::from("/run/user/1/devenv/devenvd.sock"));
        let p = Paths::resolve(&env(&[("DEVENV_DATA_DIR", "/d")])).unwrap();
        let uid = nix::unistd::getuid().as_raw();
        if !cfg!(target_os = "macos") {
            assert_eq!(
                p.socket,
                PathBuf::from(format!("/tmp/devenv-{uid}/devenvd.sock"))
            );
        }
    }

    #[test]
    fn private_dir_is_created_0700_and_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        ensure_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_private_dir(&dir).unwrap();
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn private_dir_refuses_group_writable_symlink_and_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("shared");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
        let err = ensure_private_dir(&dir).unwrap_err();
        assert!(
            matches!(
                err,
                PathsError::NotPrivate(TrustError::DirMode { mode: 0o770, .. })
            ),
            "{err}"
        );
        // Left as it was: we do not take over a directory others could write to.
        assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o770);

        let real = tmp.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let err = ensure_private_dir(&link).unwrap_err();
        assert!(
            matches!(err, PathsError::NotPrivate(TrustError::DirSymlink { .. })),
            "{err}"
        );

        let file = tmp.path().join("file");
        std::fs::write(&file, "keep").unwrap();
        let err = ensure_private_dir(&file).unwrap_err();
        assert!(
            matches!(
                err,
                PathsError::NotPrivate(TrustError::NotADirectory { .. })
            ),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "keep");
    }
}
