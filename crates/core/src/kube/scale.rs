//! Replicas of workloads: `devenv scale` sets them, `devenv stop` of a kubernetes
//! service takes them to 0 and `start` puts them back. A merge patch of
//! `spec.replicas` (what `kubectl scale` does through the scale subresource).

use kube::api::{DynamicObject, Patch, PatchParams};
use serde_json::json;

use super::rollout::Workload;
use super::{error, ClusterConn, KubeError};

/// Whether the workload has a replica count (a DaemonSet runs one pod per node).
pub fn scalable(w: &Workload) -> bool {
    matches!(w.kind.as_str(), "Deployment" | "StatefulSet")
}

fn api(conn: &ClusterConn, w: &Workload) -> kube::Api<DynamicObject> {
    kube::Api::namespaced_with(conn.client.clone(), &w.namespace, &w.resource)
}

/// Sets the workload's desired replicas.
pub async fn set_replicas(conn: &ClusterConn, w: &Workload, n: u32) -> Result<(), KubeError> {
    let patch = json!({ "spec": { "replicas": n } });
    api(conn, w)
        .patch(&w.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(|_| ())
        .map_err(|e| error::explain(&e, &conn.context))
}

/// The workload's desired and ready replicas now.
pub async fn replicas(conn: &ClusterConn, w: &Workload) -> Result<(u32, u32), KubeError> {
    let obj = api(conn, w)
        .get(&w.name)
        .await
        .map_err(|e| error::explain(&e, &conn.context))?;
    Ok(counts(&obj.data))
}

/// `(spec.replicas, status.readyReplicas)` of a workload's JSON; a missing count is
/// Kubernetes' default (1 desired, 0 ready).
pub fn counts(data: &serde_json::Value) -> (u32, u32) {
    let n = |v: &serde_json::Value, default: u64| {
        u32::try_from(v.as_u64().unwrap_or(default)).unwrap_or(u32::MAX)
    };
    (
        n(&data["spec"]["replicas"], 1),
        n(&data["status"]["readyReplicas"], 0),
    )
}

/// Whether the workload's controller has seen its spec and runs exactly
/// `replicas` pods, all ready (a scale-down is done when the extra pods are gone).
pub fn settled(obj: &DynamicObject, replicas: u32) -> bool {
    let status = &obj.data["status"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let generation = obj.metadata.generation.unwrap_or(0).max(0) as u64;
    let (desired, ready) = counts(&obj.data);
    n(&status["observedGeneration"]) >= generation
        && desired == replicas
        && ready == replicas
        && n(&status["replicas"]) == u64::from(replicas)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_read_spec_and_status_with_kubernetes_defaults() {
        assert_eq!(
            counts(&json!({"spec": {"replicas": 3}, "status": {"readyReplicas": 2}})),
            (3, 2)
        );
        assert_eq!(counts(&json!({"spec": {}, "status": {}})), (1, 0));
        assert_eq!(counts(&json!({"spec": {"replicas": 0}})), (0, 0));
    }

    #[test]
    fn settled_needs_the_new_generation_and_no_extra_pods() {
        let obj = |generation: i64, status: serde_json::Value| {
            let mut o: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": "web", "generation": generation},
                "spec": {"replicas": 1},
                "status": status,
            }))
            .unwrap();
            o.metadata.generation = Some(generation);
            o
        };
        let done = json!({"observedGeneration": 2, "replicas": 1, "readyReplicas": 1});
        assert!(settled(&obj(2, done.clone()), 1));
        assert!(
            !settled(&obj(3, done), 1),
            "controller has not seen the spec"
        );
        let draining = json!({"observedGeneration": 2, "replicas": 3, "readyReplicas": 1});
        assert!(!settled(&obj(2, draining), 1), "old pods still there");
    }
}
