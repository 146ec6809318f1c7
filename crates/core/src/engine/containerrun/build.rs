//! The image of a container service with `build:`: built on the engine when the
//! context's content (its hash, in the tag) has no image yet, the build's output in
//! the service's log and its current step in the service's status (so `up` shows it).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bollard::Docker;

use super::super::board::Shared;
use crate::config::{Build, Service};
use crate::docker::build::{self as dbuild, BuildError};
use crate::docker::{self};
use crate::logs::Stream as LogStream;

/// Why a service's image could not be built, located at its Dockerfile.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the image of `{service}` (Dockerfile {}): {source}", .dockerfile.display())]
pub(super) struct ImageBuildFailed {
    service: String,
    dockerfile: std::path::PathBuf,
    #[source]
    source: BuildError,
}

fn dockerfile(build: &Build) -> std::path::PathBuf {
    build
        .dockerfile
        .clone()
        .unwrap_or_else(|| build.context.join("Dockerfile"))
}

async fn plan(svc: &Service, build: &Build) -> Result<dbuild::Plan, ImageBuildFailed> {
    let input = build.clone();
    let fail = |source| ImageBuildFailed {
        service: svc.name.clone(),
        dockerfile: dockerfile(build),
        source,
    };
    match tokio::task::spawn_blocking(move || dbuild::plan(&input)).await {
        Ok(r) => r.map_err(fail),
        Err(e) => Err(fail(BuildError::Failed {
            reason: format!("reading the context: {e}"),
        })),
    }
}

/// The image to run `svc` from: its `image`, or for `build:` the tag of its context's
/// content, built first unless the engine has it.
pub(super) async fn image_of(
    shared: &Arc<Shared>,
    svc: &Service,
    docker: &Docker,
) -> Result<String, ImageBuildFailed> {
    let Some(build) = &svc.build else {
        // A preset's image unless `image:` names another (the one table of them).
        return Ok(crate::kube::render::image_of(svc).unwrap_or_default());
    };
    let plan = plan(svc, build).await?;
    let tag = dbuild::tag(&shared.name, &svc.name, &plan.hash);
    let log: Arc<str> = Arc::from(svc.name.as_str());
    if dbuild::exists(docker, &tag).await {
        shared.logs.push(
            &log,
            LogStream::System,
            &format!("image {tag} is up to date (build context unchanged)"),
        );
        return Ok(tag);
    }
    shared.update(&svc.name, |s| s.message = format!("building {tag}"));
    shared
        .logs
        .push(&log, LogStream::System, &format!("building {tag}"));
    let started = Instant::now();
    let (board, name, hub, shown) = (
        shared.clone(),
        svc.name.clone(),
        shared.logs.clone(),
        tag.clone(),
    );
    let mut on_line = move |line: &str| {
        hub.push(&log, LogStream::Stdout, line);
        // The step in progress shows in status and in `up`.
        if line.starts_with("Step ") {
            let step: String = line.chars().take(120).collect();
            board.update(&name, |s| s.message = format!("building {shown}: {step}"));
        }
    };
    let labels = docker::env_labels(&shared.id, &shared.name);
    dbuild::build(docker, plan, build, &tag, labels, &mut on_line)
        .await
        .map_err(|source| ImageBuildFailed {
            service: svc.name.clone(),
            dockerfile: dockerfile(build),
            source,
        })?;
    shared.logs.push(
        &Arc::from(svc.name.as_str()),
        LogStream::System,
        &format!("built {tag} in {:.1}s", started.elapsed().as_secs_f64()),
    );
    Ok(tag)
}

/// Whether the running container of a `build:` service runs an image older than its
/// context (edited since): `up` replaces it then, as for a changed config.
pub(in crate::engine) async fn stale(
    shared: &Shared,
    svc: &Service,
    vars: &BTreeMap<String, String>,
) -> bool {
    let Some(build) = &svc.build else {
        return false;
    };
    let Ok(plan) = plan(svc, build).await else {
        // The runner reports it when it starts again.
        return true;
    };
    let Ok(docker) = docker::connect(vars).await else {
        return false;
    };
    let name = docker::container_name(&shared.id, &shared.name, &svc.name);
    let running = docker
        .inspect_container(&name, None)
        .await
        .ok()
        .and_then(|c| c.config)
        .and_then(|c| c.image);
    running.as_deref() != Some(dbuild::tag(&shared.name, &svc.name, &plan.hash).as_str())
}
