//! The local container engine (Docker, or Podman's Docker-compatible socket) through
//! its HTTP API (bollard): connecting, the per-environment network, finding devenv's
//! containers by label, and the engine half of `down`. What runs in a container, and
//! when, is the engine's container runner (`engine::containerrun`).

use std::collections::{BTreeMap, HashMap};

use bollard::errors::Error as ApiError;
use bollard::models::{ContainerSummary, NetworkCreateRequest};
use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
    RemoveVolumeOptions,
};
use bollard::Docker;
use md5::{Digest, Md5};

pub mod build;
pub mod exec;
pub mod volcopy;

/// The engine's address when neither the client nor the daemon sets `DOCKER_HOST`.
pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

/// Labels on everything devenv creates in the engine.
pub const LABEL_ENV_ID: &str = "dev.devenv.env-id";
pub const LABEL_ENV: &str = "dev.devenv.environment";
pub const LABEL_SERVICE: &str = "dev.devenv.service";
/// A digest of the container's configuration: a container found with another one is
/// replaced, one with the same is adopted (after a daemon restart).
pub const LABEL_CONFIG: &str = "dev.devenv.config";

/// Why the engine could not do something.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot reach a container engine at {host}: {source}; is dockerd running? \
         install docker.io and start it (`dockerd`, or `systemctl start docker`), or start \
         podman's socket (`systemctl --user start podman.socket`) and set \
         DOCKER_HOST=unix://$XDG_RUNTIME_DIR/podman/podman.sock"
    )]
    Unreachable {
        host: String,
        #[source]
        source: ApiError,
    },
    #[error(
        "image `{image}` is not in the local engine and could not be pulled ({source}); \
         build it (`docker build -t {image} DIR`) or import it (`docker import ROOTFS.tar {image}`)"
    )]
    ImageMissing {
        image: String,
        #[source]
        source: ApiError,
    },
    #[error("container engine: {what}: {source}")]
    Api {
        what: String,
        #[source]
        source: ApiError,
    },
}

impl DockerError {
    pub(crate) fn api(what: impl Into<String>) -> impl FnOnce(ApiError) -> Self {
        let what = what.into();
        move |source| Self::Api { what, source }
    }
}

/// The engine's address: the client's `DOCKER_HOST`, else the daemon's, else the
/// default socket.
pub fn host(vars: &BTreeMap<String, String>) -> String {
    vars.get("DOCKER_HOST")
        .filter(|h| !h.is_empty())
        .cloned()
        .or_else(|| std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| DEFAULT_HOST.to_owned())
}

/// Connects to the engine and agrees on an API version (Engine 20.10 speaks 1.41).
pub async fn connect(vars: &BTreeMap<String, String>) -> Result<Docker, DockerError> {
    let host = host(vars);
    let unreachable = |source| DockerError::Unreachable {
        host: host.clone(),
        source,
    };
    let docker = Docker::connect_with_host(&host).map_err(unreachable)?;
    let docker = docker.negotiate_version().await.map_err(unreachable)?;
    docker.ping().await.map_err(unreachable)?;
    Ok(docker)
}

/// A short stable digest of `text`, for names and labels.
pub fn digest(text: &str) -> String {
    let d = Md5::digest(text.as_bytes());
    d.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

/// The container's name: readable, and unique per environment (two projects may use
/// the same `metadata.name`).
pub fn container_name(env_id: &str, env_name: &str, service: &str) -> String {
    format!("devenv-{env_name}-{service}-{}", digest(env_id))
}

/// The environment's network: its services reach each other by service name on it.
pub fn network_name(env_id: &str, env_name: &str) -> String {
    format!("devenv-{env_name}-{}", digest(env_id))
}

/// A persistent volume of the environment: kept by `down` unless `--volumes`.
pub fn volume_name(env_id: &str, env_name: &str, volume: &str) -> String {
    format!("devenv-{env_name}-{volume}-{}", digest(env_id))
}

/// Creates the named volumes of `names` (labelled, so `down --volumes` finds them)
/// unless they exist.
pub async fn ensure_volumes(
    docker: &Docker,
    env_id: &str,
    env_name: &str,
    names: &[String],
) -> Result<(), DockerError> {
    for name in names {
        if docker.inspect_volume(name).await.is_ok() {
            continue;
        }
        docker
            .create_volume(bollard::models::VolumeCreateRequest {
                name: Some(name.clone()),
                labels: Some(env_labels(env_id, env_name)),
                ..Default::default()
            })
            .await
            .map_err(DockerError::api(format!("create volume {name}")))?;
    }
    Ok(())
}

pub fn env_labels(env_id: &str, env_name: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_ENV_ID.to_owned(), env_id.to_owned()),
        (LABEL_ENV.to_owned(), env_name.to_owned()),
    ])
}

fn label_filter(env_id: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("{LABEL_ENV_ID}={env_id}")])])
}

/// Creates the environment's network unless it exists; returns its name.
pub async fn ensure_network(
    docker: &Docker,
    env_id: &str,
    env_name: &str,
) -> Result<String, DockerError> {
    let name = network_name(env_id, env_name);
    if docker.inspect_network(&name, None).await.is_ok() {
        return Ok(name);
    }
    let created = docker
        .create_network(NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            labels: Some(env_labels(env_id, env_name)),
            ..Default::default()
        })
        .await;
    match created {
        Ok(_) => Ok(name),
        // Two services of one `up` race to create it: the other one won.
        Err(_) if docker.inspect_network(&name, None).await.is_ok() => Ok(name),
        Err(e) => Err(DockerError::api(format!("create network {name}"))(e)),
    }
}

/// devenv's containers of one environment, running or not.
pub async fn containers(
    docker: &Docker,
    env_id: &str,
) -> Result<Vec<ContainerSummary>, DockerError> {
    docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(label_filter(env_id)),
            ..Default::default()
        }))
        .await
        .map_err(DockerError::api("list containers"))
}

/// Removes a container and its anonymous volumes; a container already gone is fine.
pub async fn remove(docker: &Docker, id: &str) -> Result<(), DockerError> {
    match docker
        .remove_container(
            id,
            Some(RemoveContainerOptions {
                force: true,
                v: true,
                ..Default::default()
            }),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(ApiError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        // Removal already under way (a concurrent `down`).
        Err(ApiError::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(e) => Err(DockerError::api(format!("remove container {id}"))(e)),
    }
}

/// What the engine half of `down` removed.
#[derive(Debug, Default)]
pub struct Teardown {
    pub containers: Vec<String>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    /// Named volumes kept (no `--volumes`).
    pub kept_volumes: Vec<String>,
}

/// Removes every container and network devenv made for the environment, and its
/// named volumes too when `volumes` (kept otherwise, as `down` keeps claims).
pub async fn teardown(
    docker: &Docker,
    env_id: &str,
    volumes: bool,
) -> Result<Teardown, DockerError> {
    let mut out = Teardown::default();
    for c in containers(docker, env_id).await? {
        let Some(id) = c.id else { continue };
        remove(docker, &id).await?;
        let name = c
            .names
            .and_then(|n| n.into_iter().next())
            .map(|n| n.trim_start_matches('/').to_owned())
            .unwrap_or(id);
        out.containers.push(name);
    }
    let networks = docker
        .list_networks(Some(ListNetworksOptions {
            filters: Some(label_filter(env_id)),
        }))
        .await
        .map_err(DockerError::api("list networks"))?;
    for n in networks {
        let Some(name) = n.name else { continue };
        match docker.remove_network(&name).await {
            Ok(())
            | Err(ApiError::DockerResponseServerError {
                status_code: 404, ..
            }) => out.networks.push(name),
            Err(e) => return Err(DockerError::api(format!("remove network {name}"))(e)),
        }
    }
    let list = docker
        .list_volumes(Some(ListVolumesOptions {
            filters: Some(label_filter(env_id)),
        }))
        .await
        .map_err(DockerError::api("list volumes"))?;
    if !volumes {
        out.kept_volumes = list
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
    } else {
        for v in list.volumes.unwrap_or_default() {
            docker
                .remove_volume(&v.name, Some(RemoveVolumeOptions { force: true }))
                .await
                .map_err(DockerError::api(format!("remove volume {}", v.name)))?;
            out.volumes.push(v.name);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_per_environment() {
        let a = container_name("/p#", "shop", "db");
        assert_eq!(a, container_name("/p#", "shop", "db"));
        assert!(a.starts_with("devenv-shop-db-"), "{a}");
        assert_ne!(a, container_name("/q#", "shop", "db"));
        assert_ne!(
            network_name("/p#", "shop"),
            network_name("/p#staging", "shop")
        );
    }

    #[test]
    fn the_clients_docker_host_wins() {
        let vars = BTreeMap::from([("DOCKER_HOST".to_owned(), "unix:///tmp/x.sock".to_owned())]);
        assert_eq!(host(&vars), "unix:///tmp/x.sock");
    }
}
