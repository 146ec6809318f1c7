//! Pod logs of a kubernetes service into the environment's log hub: every container of
//! every pod of the workload, following new pods (rollouts, scale-up) and restarted
//! containers as the pod watch reports them.

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::task::JoinSet;
use tokio_util::compat::FuturesAsyncReadCompatExt;
use tokio_util::sync::CancellationToken;

use super::ClusterConn;
use crate::logs::{copy_pipe, LogHub, Stream};

/// Follows the logs of pods matching `selector` in `namespace` until `cancel`.
/// Containers that were already running when this started are followed from now
/// (their earlier output is already in the hub, or predates this `up`).
pub async fn follow(
    kenv: ClusterConn,
    namespace: String,
    selector: String,
    hub: LogHub,
    service: Arc<str>,
    cancel: CancellationToken,
) {
    let since = jiff_now();
    let api: Api<Pod> = Api::namespaced(kenv.client.clone(), &namespace);
    let events = watcher(api.clone(), watcher::Config::default().labels(&selector))
        .default_backoff()
        .applied_objects();
    let mut events = std::pin::pin!(events);
    let mut seen: HashSet<(String, String, i32)> = HashSet::new();
    let mut followers = JoinSet::new();
    loop {
        let pod = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = followers.join_next(), if !followers.is_empty() => continue,
            ev = events.next() => match ev {
                Some(Ok(pod)) => pod,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "pod watch error (retrying)");
                    continue;
                }
                None => break,
            },
        };
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let Some(status) = &pod.status else { continue };
        let statuses = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for cs in statuses {
            let state = cs.state.as_ref();
            let started_at = state
                .and_then(|s| s.running.as_ref().and_then(|r| r.started_at.clone()))
                .or_else(|| {
                    state.and_then(|s| s.terminated.as_ref().and_then(|t| t.started_at.clone()))
                });
            // Nothing to read before the container has started.
            let Some(started_at) = started_at else {
                continue;
            };
            if !seen.insert((uid.clone(), cs.name.clone(), cs.restart_count)) {
                continue;
            }
            let params = LogParams {
                container: Some(cs.name.clone()),
                follow: true,
                since_time: (started_at.0 < since).then_some(since),
                ..Default::default()
            };
            let api = api.clone();
            let hub = hub.clone();
            let service = service.clone();
            let cancel = cancel.clone();
            let pod_name = name.clone();
            followers.spawn(async move {
                let stream = match api.log_stream(&pod_name, &params).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, pod = %pod_name, "cannot stream pod logs");
                        return;
                    }
                };
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = copy_pipe(hub, stream.compat(), service, Stream::Stdout) => {}
                }
            });
        }
    }
    followers.shutdown().await;
}

fn jiff_now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}
