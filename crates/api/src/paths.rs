//! Where the daemon's socket, data and log live: resolved in this one place for the
//! daemon and every client.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

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
    #[error("{path} is owned by uid {owner}, not by you (uid {uid}); refusing to use it")]
    NotOwned { path: PathBuf, owner: u32, uid: u32 },
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

/// Creates `dir` (and parents) as 0700 if missing; refuses a directory owned by
/// someone else, and tightens the mode of our own if it is looser.
pub fn ensure_private_dir(dir: &Path) -> Result<(), PathsError> {
    let create = |source| PathsError::Create {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.exists() {
        std::fs::create_dir_all(dir).map_err(create)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(create)?;
    }
    let meta = std::fs::metadata(dir).map_err(create)?;
    let uid = nix::unistd::getuid().as_raw();
    if meta.uid() != uid {
        return Err(PathsError::NotOwned {
            path: dir.to_path_buf(),
            owner: meta.uid(),
            uid,
        });
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(create)?;
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
}
