//! Volumes of local services: a host process has no mount namespace, so each volume it
//! mounts is a directory whose path it gets in `DEVENV_VOLUME_<NAME>` (the name upper-
//! cased, `-` as `_`). One config runs in both runtimes: what a pod sees at the mount
//! path, the process finds in the variable.
//!
//! - `persistent`: `<env dir>/volumes/<name>`, kept by `down`, removed by `down --volumes`.
//! - `ephemeral`: `<env dir>/ephemeral/<name>`, removed by every `down`.
//! - `tmpfs`: a directory on /dev/shm (a tmpfs every Linux mounts for its users, so no
//!   root is needed), removed by every `down`; where there is none (macOS), a directory
//!   beside the ephemeral ones, on disk, and the service's log says so. `size` is not
//!   enforced for a process.
//! - `configmap`: the source directory itself; a single file is linked into
//!   `<env dir>/configmaps/<name>/` so the variable names a directory in both cases.
//! - `host`: the host path itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::config::{Environment, Service, Volume, VolumeKind};

/// Where the in-memory directories go on Linux.
const SHM: &str = "/dev/shm";

/// The variable a local process finds volume `name` in.
pub fn var_name(name: &str) -> String {
    format!(
        "DEVENV_VOLUME_{}",
        name.to_ascii_uppercase().replace('-', "_")
    )
}

/// The environment's volumes that `svc` mounts, in its order.
pub fn mounted(env: &Environment, svc: &Service) -> Vec<Volume> {
    svc.volumes
        .iter()
        .filter_map(|m| env.volumes.iter().find(|v| v.name == m.name).cloned())
        .collect()
}

#[derive(Debug, thiserror::Error)]
#[error("cannot prepare volume `{volume}` at {}: {source}", .path.display())]
pub struct VolumeError {
    pub volume: String,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The in-memory directory of the environment whose directory is `env_dir`, or `None`
/// where the machine has no /dev/shm.
fn shm_dir(env_dir: &Path) -> Option<PathBuf> {
    let shm = Path::new(SHM);
    if !shm.is_dir() {
        return None;
    }
    let uid = nix::unistd::geteuid();
    let tag = crate::docker::digest(&env_dir.display().to_string());
    Some(shm.join(format!("devenv-{uid}")).join(tag))
}

fn tmpfs_dir(env_dir: &Path) -> (PathBuf, bool) {
    match shm_dir(env_dir) {
        Some(d) => (d, true),
        None => (env_dir.join("tmpfs"), false),
    }
}

/// Creates the directories of `volumes` and returns the variables naming them, with
/// lines for the service's log. Blocking (a few `mkdir`s).
pub fn prepare(
    volumes: &[Volume],
    env_dir: &Path,
) -> Result<(BTreeMap<String, String>, Vec<String>), VolumeError> {
    let mut vars = BTreeMap::new();
    let mut notes = Vec::new();
    for vol in volumes {
        let fail = |path: &Path| {
            let (volume, path) = (vol.name.clone(), path.to_path_buf());
            move |source| VolumeError {
                volume,
                path,
                source,
            }
        };
        let dir = match &vol.kind {
            VolumeKind::Persistent { .. } => env_dir.join("volumes").join(&vol.name),
            VolumeKind::Ephemeral => env_dir.join("ephemeral").join(&vol.name),
            VolumeKind::Tmpfs => {
                let (base, in_memory) = tmpfs_dir(env_dir);
                if !in_memory {
                    notes.push(format!(
                        "volume `{}`: this machine has no {SHM}, so the tmpfs volume is a directory on disk",
                        vol.name
                    ));
                }
                base.join(&vol.name)
            }
            VolumeKind::Configmap { source, .. } if source.is_dir() => source.clone(),
            VolumeKind::Configmap { source, .. } => {
                let dir = env_dir.join("configmaps").join(&vol.name);
                std::fs::create_dir_all(&dir).map_err(fail(&dir))?;
                let file = source.file_name().unwrap_or_default();
                let link = dir.join(file);
                match std::fs::remove_file(&link) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(fail(&link)(e)),
                }
                std::os::unix::fs::symlink(source, &link).map_err(fail(&link))?;
                dir
            }
            VolumeKind::Host { path, .. } => path.clone(),
        };
        std::fs::create_dir_all(&dir).map_err(fail(&dir))?;
        vars.insert(var_name(&vol.name), dir.display().to_string());
    }
    Ok((vars, notes))
}

/// What every `down` removes: the ephemeral and tmpfs directories (the services are
/// stopped by then).
pub async fn remove_transient(env_dir: &Path) -> std::io::Result<()> {
    let mut dirs = vec![env_dir.join("ephemeral"), env_dir.join("tmpfs")];
    dirs.extend(shm_dir(env_dir));
    for d in dirs {
        match tokio::fs::remove_dir_all(&d).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The persistent volumes kept in the environment's dir (what `down` without
/// `--volumes` leaves), sorted.
pub fn kept(env_dir: &Path) -> Vec<String> {
    subdirectories(&env_dir.join("volumes"))
}

/// The names of the directories in `dir` (none if it can't be read), sorted.
pub(crate) fn subdirectories(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `down --volumes`: removes the persistent volumes' directories. Returns their names.
pub async fn remove_persistent(env_dir: &Path) -> std::io::Result<Vec<String>> {
    let names = kept(env_dir);
    match tokio::fs::remove_dir_all(env_dir.join("volumes")).await {
        Ok(()) => Ok(names),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vol(name: &str, kind: VolumeKind) -> Volume {
        Volume {
            name: name.into(),
            kind,
            size: None,
        }
    }

    #[tokio::test]
    async fn each_kind_is_a_directory_named_by_a_variable() {
        let env_dir = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        std::fs::write(src.path().join("app.conf"), "x").unwrap();
        let volumes = [
            vol(
                "db-data",
                VolumeKind::Persistent {
                    storage_class: None,
                    access_mode: "ReadWriteOnce".into(),
                },
            ),
            vol("scratch", VolumeKind::Ephemeral),
            vol("cache", VolumeKind::Tmpfs),
            vol(
                "conf",
                VolumeKind::Configmap {
                    source: src.path().join("app.conf"),
                    digest: String::new(),
                },
            ),
            vol(
                "host",
                VolumeKind::Host {
                    path: src.path().to_path_buf(),
                    force: false,
                },
            ),
        ];
        let (vars, _) = prepare(&volumes, env_dir.path()).unwrap();
        let data = PathBuf::from(&vars["DEVENV_VOLUME_DB_DATA"]);
        assert_eq!(data, env_dir.path().join("volumes/db-data"));
        assert!(data.is_dir());
        let conf = PathBuf::from(&vars["DEVENV_VOLUME_CONF"]);
        assert_eq!(std::fs::read_to_string(conf.join("app.conf")).unwrap(), "x");
        assert_eq!(vars["DEVENV_VOLUME_HOST"], src.path().display().to_string());
        let cache = PathBuf::from(&vars["DEVENV_VOLUME_CACHE"]);
        if Path::new(SHM).is_dir() {
            assert!(cache.starts_with(SHM), "{cache:?}");
        }
        assert!(cache.is_dir());

        remove_transient(env_dir.path()).await.unwrap();
        assert!(!cache.exists() && !PathBuf::from(&vars["DEVENV_VOLUME_SCRATCH"]).exists());
        assert!(data.is_dir(), "persistent data outlives down");
        assert_eq!(kept(env_dir.path()), ["db-data"]);
        assert_eq!(
            remove_persistent(env_dir.path()).await.unwrap(),
            ["db-data"]
        );
        assert!(!data.exists());
    }
}
