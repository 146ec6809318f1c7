//! A named volume's files through the engine's archive API (what `docker cp` uses):
//! a helper container that mounts the volume and is never started, read and written
//! as tar streams. Nothing runs in it, so any image the engine has will do (the
//! service's own, which needs no shell or tar); the engine does the copying.

use bollard::query_parameters::{
    CreateContainerOptions, DownloadFromContainerOptions, RemoveVolumeOptions,
    UploadToContainerOptions,
};
use bollard::Docker;
use bytes::Bytes;
use futures::{Stream, StreamExt as _};

use super::DockerError;

/// Where a helper container mounts its volume.
pub const MOUNT: &str = "/devenv-volume";

/// A created (never started) container mounting one volume at [`MOUNT`]; removed
/// by [`Helper::remove`] (and by `down`, by its environment labels, if a daemon dies
/// first).
pub struct Helper {
    docker: Docker,
    id: String,
}

impl Helper {
    pub async fn create(
        docker: &Docker,
        image: &str,
        volume: &str,
        labels: std::collections::HashMap<String, String>,
    ) -> Result<Self, DockerError> {
        let body = bollard::models::ContainerCreateBody {
            image: Some(image.to_owned()),
            // Never run; the engine refuses to create a container with no command.
            cmd: Some(vec!["/devenv-volume-helper".to_owned()]),
            entrypoint: Some(vec![]),
            labels: Some(labels),
            network_disabled: Some(true),
            host_config: Some(bollard::models::HostConfig {
                mounts: Some(vec![bollard::models::Mount {
                    target: Some(MOUNT.to_owned()),
                    source: Some(volume.to_owned()),
                    typ: Some(bollard::models::MountType::VOLUME),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = docker
            .create_container(None::<CreateContainerOptions>, body)
            .await
            .map_err(DockerError::api(format!(
                "create a helper container for volume {volume}"
            )))?;
        Ok(Self {
            docker: docker.clone(),
            id: created.id,
        })
    }

    /// The volume as a tar stream: one directory `devenv-volume` holding its files.
    pub fn download(&self) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        self.docker
            .download_from_container(
                &self.id,
                Some(DownloadFromContainerOptions {
                    path: MOUNT.to_owned(),
                }),
            )
            .map(|r| r.map_err(std::io::Error::other))
    }

    /// Extracts `tar` into `path` of the helper (`MOUNT` for entries relative to the
    /// volume, `/` for a [`Helper::download`] of another volume).
    pub async fn upload(
        &self,
        path: &str,
        tar: impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static,
    ) -> Result<(), DockerError> {
        self.docker
            .upload_to_container(
                &self.id,
                Some(UploadToContainerOptions {
                    path: path.to_owned(),
                    ..Default::default()
                }),
                bollard::body_try_stream(tar),
            )
            .await
            .map_err(DockerError::api("write into a volume"))
    }

    pub async fn remove(self) -> Result<(), DockerError> {
        super::remove(&self.docker, &self.id).await
    }
}

/// Creates the volume `name` (it must not exist).
pub async fn create_volume(
    docker: &Docker,
    name: &str,
    labels: std::collections::HashMap<String, String>,
) -> Result<(), DockerError> {
    docker
        .create_volume(bollard::models::VolumeCreateRequest {
            name: Some(name.to_owned()),
            labels: Some(labels),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(DockerError::api(format!("create volume {name}")))
}

/// Removes the volume `name`; one already gone is fine.
pub async fn remove_volume(docker: &Docker, name: &str) -> Result<(), DockerError> {
    match docker
        .remove_volume(name, Some(RemoveVolumeOptions { force: false }))
        .await
    {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(DockerError::api(format!("remove volume {name}"))(e)),
    }
}

/// Copies the files of the volume mounted by `from` into the one mounted by `to`.
pub async fn copy(from: &Helper, to: &Helper) -> Result<(), DockerError> {
    to.upload("/", from.download()).await
}
