//! `devenv scale SERVICE N`: the replicas of a kubernetes service's workloads
//! (Deployments and StatefulSets). The count is kept (in memory and in the wanted
//! record) until `down`: the kube runner sets it again after each apply, so an `up`
//! that re-applies the service, or a recovery, keeps the user's scale. Status shows
//! desired and ready replicas while it is scaled.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use kube::runtime::{watcher, WatchStreamExt};

use super::board::lock;
use super::error::{EngineError, ScaleError, UnknownService};
use super::runtime::LiveEnv;
use super::{Engine, ProjectRef};
use crate::config::RuntimeKind;
use crate::kube::rollout::Workload;
use crate::kube::{scale, ClusterConn};
use crate::logs::Stream;
use crate::status::Replicas;

/// Kubernetes counts replicas in a signed 32-bit integer.
pub const MAX_REPLICAS: u32 = i32::MAX as u32;

impl Engine {
    /// Scales `service` to `replicas` and waits until that many are ready (within
    /// its start deadline). A local service is refused: it runs one instance.
    pub async fn scale(
        &self,
        req: &ProjectRef,
        service: &str,
        replicas: u32,
    ) -> Result<Arc<LiveEnv>, EngineError> {
        let loaded = self.load(req)?;
        UnknownService::check(&loaded.environment, &[service.to_owned()])?;
        let svc = loaded
            .environment
            .service(service)
            .cloned()
            .ok_or_else(|| ScaleError::NotRunning(service.to_owned()))?;
        check(service, svc.runtime, replicas)?;
        let rt = self.register(&loaded, req)?;
        self.tasks
            .track_future(rt.clone().scale(service, replicas, svc.start_deadline()))
            .await?;
        Ok(rt)
    }
}

/// The request is one `scale` can do: a kubernetes service and a count it accepts.
fn check(service: &str, runtime: RuntimeKind, replicas: u32) -> Result<(), ScaleError> {
    if runtime != RuntimeKind::Kubernetes {
        return Err(ScaleError::Local(service.to_owned()));
    }
    if !(1..=MAX_REPLICAS).contains(&replicas) {
        return Err(ScaleError::OutOfRange {
            service: service.to_owned(),
            replicas,
            max: MAX_REPLICAS,
        });
    }
    Ok(())
}

impl LiveEnv {
    async fn scale(
        self: Arc<Self>,
        name: &str,
        replicas: u32,
        deadline: std::time::Duration,
    ) -> Result<(), ScaleError> {
        let _op = self.ops.lock().await;
        let running = {
            let sups = self.supervisors.lock().unwrap_or_else(|p| p.into_inner());
            sups.get(name).is_some_and(|s| !s.task.is_finished())
        };
        let workloads = lock(&self.shared.workloads)
            .get(name)
            .cloned()
            .unwrap_or_default();
        let conn = self.kube.lock().await.clone();
        let (true, Some(conn)) = (running && !workloads.is_empty(), conn) else {
            return Err(ScaleError::NotRunning(name.to_owned()));
        };
        let scalable: Vec<Workload> = workloads
            .iter()
            .filter(|w| scale::scalable(w))
            .cloned()
            .collect();
        if scalable.is_empty() {
            let kinds = workloads
                .iter()
                .map(|w| format!("{}/{}", w.kind, w.name))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ScaleError::NotScalable {
                service: name.to_owned(),
                kinds,
            });
        }
        let kube_err = |source| ScaleError::Kube {
            service: name.to_owned(),
            source,
        };
        for w in &scalable {
            scale::set_replicas(&conn, w, replicas)
                .await
                .map_err(kube_err)?;
        }
        lock(&self.shared.scaled).insert(name.to_owned(), replicas);
        self.shared.persist_user_choices();
        self.shared.logs.push(
            &Arc::from(name),
            Stream::System,
            &format!("scaled to {replicas} replica(s)"),
        );
        let ready = follow_ready(&self, &conn, name, &scalable, replicas, deadline).await;
        if ready < replicas {
            return Err(ScaleError::NotReady {
                service: name.to_owned(),
                replicas,
                ready,
                secs: deadline.as_secs(),
            });
        }
        Ok(())
    }
}

/// Shows desired and ready replicas of `workloads` (summed) in the service's status
/// as they change, until `replicas` are ready or `deadline` passes; returns how many
/// were ready last. Watches the workloads (no polling).
async fn follow_ready(
    rt: &LiveEnv,
    conn: &ClusterConn,
    name: &str,
    workloads: &[Workload],
    replicas: u32,
    deadline: std::time::Duration,
) -> u32 {
    let until = Instant::now() + deadline;
    // Per workload: ready replicas, and whether it has settled at `replicas`.
    let mut seen: Vec<(u32, bool)> = vec![(0, false); workloads.len()];
    let streams = workloads.iter().enumerate().map(|(i, w)| {
        let api: kube::Api<kube::api::DynamicObject> =
            kube::Api::namespaced_with(conn.client.clone(), &w.namespace, &w.resource);
        let cfg = watcher::Config::default().fields(&format!("metadata.name={}", w.name));
        watcher::watcher(api, cfg)
            .applied_objects()
            .map(move |o| (i, o))
            .boxed()
    });
    let mut all = futures::stream::select_all(streams);
    let show = |ready: u32| {
        rt.shared.update(name, |s| {
            s.replicas = Some(Replicas {
                desired: replicas,
                ready,
            });
        });
    };
    loop {
        let next = tokio::select! {
            n = all.next() => n,
            _ = tokio::time::sleep_until(until.into()) => None,
            _ = rt.closing.cancelled() => None,
        };
        let Some((i, obj)) = next else { break };
        let Ok(obj) = obj else { continue };
        let (_, ready) = scale::counts(&obj.data);
        seen[i] = (ready, scale::settled(&obj, replicas));
        // The least ready workload is how far the service is.
        let least = seen.iter().map(|(r, _)| *r).min().unwrap_or(0);
        show(least);
        if seen.iter().all(|(_, settled)| *settled) {
            return replicas;
        }
    }
    seen.iter()
        .map(|(r, _)| *r)
        .min()
        .unwrap_or(0)
        .min(replicas.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_takes_kubernetes_services_and_counts_from_one() {
        assert!(matches!(
            check("api", RuntimeKind::Local, 3),
            Err(ScaleError::Local(_))
        ));
        assert!(matches!(
            check("web", RuntimeKind::Kubernetes, 0),
            Err(ScaleError::OutOfRange { .. })
        ));
        assert!(matches!(
            check("web", RuntimeKind::Kubernetes, MAX_REPLICAS + 1),
            Err(ScaleError::OutOfRange { .. })
        ));
        assert!(check("web", RuntimeKind::Kubernetes, 3).is_ok());
        assert!(ScaleError::Local("api".into())
            .to_string()
            .contains("runs one instance"));
    }
}
