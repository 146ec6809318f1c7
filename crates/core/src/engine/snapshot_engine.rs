//! `devenv snapshot` of container engine volumes: the persistent volumes that
//! `runtime: container` services mount (the engine's named volumes,
//! `docker::volume_name`). They are read and written through a helper container
//! that mounts the volume and is never started (`docker::volcopy`), so the image
//! needs no shell: the engine streams the tar.
//!
//! Save: the tar is cut into the chunk store as it arrives (`snapshot::tarstream`).
//! Restore: the snapshot goes into a fresh staging volume first, every chunk checked
//! on the way, while the environment runs; after `down`, each volume is copied to a
//! backup volume, emptied (removed and made again: a volume can't be renamed) and
//! filled from the staging one. A failure puts the backups back; the backups and the
//! staging volumes are removed once everything is in place.

use std::collections::HashMap;
use std::io::{BufReader, BufWriter};
use std::sync::Arc;

use bollard::Docker;
use tokio_util::io::{ReaderStream, StreamReader, SyncIoBridge};

use super::EngineError;
use crate::config::{Environment, RuntimeKind};
use crate::docker::{self, volcopy, volcopy::Helper, DockerError};
use crate::snapshot::{tarstream, Chunks, Dataset};

/// The prefix of a container engine volume's data set id (`cvol/<volume>`).
const PREFIX: &str = "cvol/";
/// Bytes in flight between the tar writer and the engine's upload.
const STREAM_BUFFER: usize = 256 * 1024;

/// One persistent volume mounted by container services.
#[derive(Debug, Clone)]
pub(super) struct VolumePlan {
    /// `cvol/<volume>`.
    pub id: String,
    /// The engine's volume name.
    pub volume: String,
    /// The container services that mount it.
    pub users: Vec<String>,
}

/// The environment's persistent volumes that container services mount.
pub(super) fn volumes(env: &Environment, env_id: &str) -> Vec<VolumePlan> {
    env.volumes
        .iter()
        .filter(|v| v.persistent())
        .filter_map(|v| {
            let users: Vec<String> = env
                .services
                .iter()
                .filter(|s| s.runtime == RuntimeKind::Container && s.preset.is_none())
                .filter(|s| s.volumes.iter().any(|m| m.name == v.name))
                .map(|s| s.name.clone())
                .collect();
            (!users.is_empty()).then(|| VolumePlan {
                id: format!("{PREFIX}{}", v.name),
                volume: docker::volume_name(env_id, &env.name, &v.name),
                users,
            })
        })
        .collect()
}

/// The config's volume name of a `cvol/<volume>` data set.
pub(super) fn volume_of(id: &str) -> Option<&str> {
    id.strip_prefix(PREFIX)
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

fn engine_error(e: DockerError) -> EngineError {
    EngineError::SnapshotEngine(e)
}

fn worker_failed(e: tokio::task::JoinError) -> EngineError {
    EngineError::Snapshot(crate::snapshot::SnapshotError::Io {
        path: "the snapshot worker".into(),
        source: std::io::Error::other(e.to_string()),
    })
}

pub(super) async fn connect(
    vars: &std::collections::BTreeMap<String, String>,
) -> Result<Docker, EngineError> {
    docker::connect(vars).await.map_err(engine_error)
}

/// An image for the helper container (never run, so any will do): the one the
/// first user's container runs, else the first user's `image:`.
pub(super) async fn helper_image(
    docker: &Docker,
    env: &Environment,
    env_id: &str,
    users: &[String],
) -> Result<String, EngineError> {
    for u in users {
        let name = docker::container_name(env_id, &env.name, u);
        if let Ok(found) = docker.inspect_container(&name, None).await {
            if let Some(image) = found.image.filter(|i| !i.is_empty()) {
                return Ok(image);
            }
        }
    }
    for svc in users.iter().filter_map(|u| env.service(u)) {
        if let (Some(image), None) = (&svc.image, &svc.build) {
            if docker.inspect_image(image).await.is_ok() {
                return Ok(image.clone());
            }
        }
    }
    Err(EngineError::SnapshotNoImage(users.join(", ")))
}

fn labels(env_id: &str, env_name: &str) -> HashMap<String, String> {
    docker::env_labels(env_id, env_name)
}

/// Whether the engine has the volume.
pub(super) async fn exists(docker: &Docker, volume: &str) -> bool {
    docker.inspect_volume(volume).await.is_ok()
}

/// Copies the volume into the store: its data set and the bytes newly stored.
pub(super) async fn save(
    docker: &Docker,
    image: &str,
    plan: &VolumePlan,
    (env_id, env_name): (&str, &str),
    chunks: Chunks,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<(Dataset, u64), EngineError> {
    let helper = Helper::create(docker, image, &plan.volume, labels(env_id, env_name))
        .await
        .map_err(engine_error)?;
    let reader = StreamReader::new(helper.download());
    let captured = tokio::task::spawn_blocking(move || {
        let reader = BufReader::with_capacity(STREAM_BUFFER, SyncIoBridge::new(reader));
        tarstream::capture(reader, Vec::new(), &chunks, &*progress)
    })
    .await;
    let removed = helper.remove().await;
    let (mut entries, written) = captured.map_err(worker_failed)??;
    removed.map_err(engine_error)?;
    // The archive holds the mount point's directory: its files are the volume's.
    let top = volcopy::MOUNT.trim_start_matches('/');
    entries.retain_mut(|e| {
        if e.path == top {
            e.path = ".".into();
        } else if let Some(rest) = e.path.strip_prefix(top).and_then(|r| r.strip_prefix('/')) {
            e.path = rest.to_owned();
        } else {
            return false;
        }
        true
    });
    Ok((
        Dataset {
            id: plan.id.clone(),
            redis_rdb: false,
            skip: Vec::new(),
            entries,
            claim: None,
            listed_at: None,
            // Read whole each time: the engine's archive API has no cheap listing.
            fingerprint: None,
        },
        written,
    ))
}

/// A data set written into a fresh staging volume, waiting for [`swap`].
#[derive(Debug)]
pub(super) struct Staged {
    volume: String,
    staging: String,
    /// Where the volume's files were kept during the swap.
    backup: Option<String>,
}

/// Writes `dataset` into a fresh volume beside `volume`; on failure nothing of it
/// is left and `volume` was not touched.
pub(super) async fn stage(
    docker: &Docker,
    image: &str,
    volume: &str,
    dataset: &Dataset,
    (env_id, env_name): (&str, &str),
    chunks: Chunks,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<Staged, EngineError> {
    let staging = format!("{volume}.restore-{}", std::process::id());
    let labels = labels(env_id, env_name);
    volcopy::remove_volume(docker, &staging)
        .await
        .map_err(engine_error)?;
    volcopy::create_volume(docker, &staging, labels.clone())
        .await
        .map_err(engine_error)?;
    let filled = async {
        let helper = Helper::create(docker, image, &staging, labels)
            .await
            .map_err(engine_error)?;
        let (writer, reader) = tokio::io::duplex(STREAM_BUFFER);
        let entries = dataset.entries.clone();
        let writing = tokio::task::spawn_blocking(move || {
            let mut bridge = SyncIoBridge::new(writer);
            let mut out = BufWriter::with_capacity(STREAM_BUFFER, &mut bridge);
            let r = tarstream::write(&mut out, &entries, &chunks, &*progress);
            drop(out);
            // Dropping the writer ends the stream, whatever the outcome: a failed
            // write is reported below, and the staging volume is then removed.
            drop(bridge);
            r
        });
        let uploaded = helper
            .upload(volcopy::MOUNT, ReaderStream::new(reader))
            .await;
        let written = writing.await;
        let removed = helper.remove().await;
        written.map_err(worker_failed)??;
        uploaded.map_err(engine_error)?;
        removed.map_err(engine_error)
    };
    match filled.await {
        Ok(()) => Ok(Staged {
            volume: volume.to_owned(),
            staging,
            backup: None,
        }),
        Err(e) => {
            let _ = volcopy::remove_volume(docker, &staging).await;
            Err(e)
        }
    }
}

/// Copies the files of volume `from` into volume `to` through two helpers.
async fn copy(
    docker: &Docker,
    image: &str,
    from: &str,
    to: &str,
    labels: &HashMap<String, String>,
) -> Result<(), DockerError> {
    let a = Helper::create(docker, image, from, labels.clone()).await?;
    let b = match Helper::create(docker, image, to, labels.clone()).await {
        Ok(b) => b,
        Err(e) => {
            let _ = a.remove().await;
            return Err(e);
        }
    };
    let r = volcopy::copy(&a, &b).await;
    let (ra, rb) = (a.remove().await, b.remove().await);
    r.and(ra).and(rb)
}

/// Puts each staged data set in place of its volume (no container uses them: after
/// `down`). On failure the volumes already replaced get their files back.
pub(super) async fn swap(
    docker: &Docker,
    image: &str,
    staged: &mut [Staged],
    (env_id, env_name): (&str, &str),
) -> Result<(), EngineError> {
    let labels = labels(env_id, env_name);
    let mut result = Ok(());
    for s in staged.iter_mut() {
        let step = async {
            if exists(docker, &s.volume).await {
                let backup = format!("{}.previous-{}", s.volume, std::process::id());
                volcopy::remove_volume(docker, &backup).await?;
                volcopy::create_volume(docker, &backup, labels.clone()).await?;
                s.backup = Some(backup.clone());
                copy(docker, image, &s.volume, &backup, &labels).await?;
            }
            volcopy::remove_volume(docker, &s.volume).await?;
            volcopy::create_volume(docker, &s.volume, labels.clone()).await?;
            copy(docker, image, &s.staging, &s.volume, &labels).await
        };
        if let Err(e) = step.await {
            result = Err(engine_error(e));
            break;
        }
    }
    if result.is_err() {
        undo(docker, image, staged, (env_id, env_name)).await;
    }
    result
}

/// Gives each volume swapped so far its backup's files again (best effort: the
/// backups are kept when this fails, for the user to copy by hand).
pub(super) async fn undo(
    docker: &Docker,
    image: &str,
    staged: &mut [Staged],
    (env_id, env_name): (&str, &str),
) {
    let labels = labels(env_id, env_name);
    for s in staged.iter_mut() {
        let Some(backup) = s.backup.take() else {
            continue;
        };
        let back = async {
            volcopy::remove_volume(docker, &s.volume).await?;
            volcopy::create_volume(docker, &s.volume, labels.clone()).await?;
            copy(docker, image, &backup, &s.volume, &labels).await
        };
        if back.await.is_ok() {
            let _ = volcopy::remove_volume(docker, &backup).await;
        }
    }
}

/// Removes the staging volumes and the backups.
pub(super) async fn finish(docker: &Docker, staged: Vec<Staged>) {
    for s in staged {
        let _ = volcopy::remove_volume(docker, &s.staging).await;
        if let Some(b) = &s.backup {
            let _ = volcopy::remove_volume(docker, b).await;
        }
    }
}
