//! Readiness of kubernetes workloads, watched (not polled): a task per workload follows
//! the object and its pods and publishes [`Health`]. Rollout complete and pods Ready
//! is `Ready`; a pod stuck in ImagePullBackOff, CrashLoopBackOff or unschedulable is
//! `Failed` at once, with the reason.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, LogParams};
use kube::core::ApiResource;
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::Value;
use tokio::sync::watch;

use super::ClusterConn;

/// Waiting reasons of a container that won't fix themselves.
const FATAL_WAITING: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "InvalidImageName",
    "CrashLoopBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];
/// An unschedulable pod gets this long to be scheduled (volumes binding, nodes joining).
const UNSCHEDULABLE_GRACE: Duration = Duration::from_secs(5);

/// A workload whose rollout gates readiness.
#[derive(Debug, Clone)]
pub struct Workload {
    pub resource: ApiResource,
    pub kind: String,
    pub name: String,
    pub namespace: String,
    /// Label selector of its pods (from `spec.selector.matchLabels`).
    pub pods: String,
}

impl Workload {
    /// From an object of a workload kind (Deployment, StatefulSet, DaemonSet).
    pub fn from_object(obj: &Value, resource: ApiResource, default_ns: &str) -> Option<Self> {
        let labels = obj.pointer("/spec/selector/matchLabels")?.as_object()?;
        let pods = labels
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(",");
        Some(Self {
            resource,
            kind: obj["kind"].as_str()?.to_owned(),
            name: obj.pointer("/metadata/name")?.as_str()?.to_owned(),
            namespace: obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(default_ns)
                .to_owned(),
            pods,
        })
    }
}

/// The pods of one workload: its namespace and the label selector of its
/// `spec.selector.matchLabels`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodSet {
    pub namespace: String,
    pub selector: String,
}

impl std::fmt::Display for PodSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} in namespace {}", self.selector, self.namespace)
    }
}

/// Where a service's pods are: the pods of each of its workloads (the ones devenv
/// applied from an image, manifests or a chart, or the one it was pointed at), by
/// their own selectors, once each, in order; `fallback` (devenv's labels) when it
/// has no workload. Readiness watches these pods (`spawn`); logs, port forwards,
/// `devenv exec` and `exec` hooks find them here.
pub fn pod_sets(workloads: &[Workload], fallback: impl FnOnce() -> PodSet) -> Vec<PodSet> {
    let mut out: Vec<PodSet> = Vec::new();
    for w in workloads {
        let set = PodSet {
            namespace: w.namespace.clone(),
            selector: w.pods.clone(),
        };
        if !out.contains(&set) {
            out.push(set);
        }
    }
    if out.is_empty() {
        out.push(fallback());
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Rolling out; what it waits for.
    Progressing(String),
    Ready,
    /// Will not become ready by itself.
    Failed(Failure),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    /// The pod and container at fault, to show its last log lines.
    pub pod: Option<String>,
    pub container: Option<String>,
    /// Whether the interesting logs are the previous (crashed) container's.
    pub previous: bool,
}

/// Watches `w` until the returned sender's receivers are gone; publishes its health.
pub fn spawn(
    kenv: &ClusterConn,
    w: Workload,
) -> (watch::Receiver<Health>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(Health::Progressing("waiting for the rollout".into()));
    let client = kenv.client.clone();
    let task = tokio::spawn(async move {
        let objs: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &w.namespace, &w.resource);
        let pods: Api<Pod> = Api::namespaced(client, &w.namespace);
        let obj_events = watcher(
            objs,
            watcher::Config::default().fields(&format!("metadata.name={}", w.name)),
        )
        .default_backoff()
        .map(Either::Object);
        let pod_events = watcher(pods, watcher::Config::default().labels(&w.pods))
            .default_backoff()
            .map(Either::Pod);
        let mut events = std::pin::pin!(futures::stream::select(obj_events, pod_events));
        let mut object: Option<DynamicObject> = None;
        let mut pod_map: HashMap<String, Pod> = HashMap::new();
        let mut unschedulable_since: HashMap<String, Instant> = HashMap::new();
        loop {
            // Re-evaluate when the unschedulable grace of some pod ends.
            let next_deadline = unschedulable_since
                .values()
                .map(|t| *t + UNSCHEDULABLE_GRACE)
                .min();
            let ev = tokio::select! {
                ev = events.next() => ev,
                _ = async {
                    match next_deadline {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                } => Some(Either::Tick),
                _ = tx.closed() => return,
            };
            match ev {
                None => return,
                Some(Either::Object(Ok(e))) => match e {
                    watcher::Event::Apply(o) | watcher::Event::InitApply(o) => object = Some(o),
                    watcher::Event::Delete(_) => object = None,
                    _ => {}
                },
                Some(Either::Pod(Ok(e))) => match e {
                    watcher::Event::Apply(p) | watcher::Event::InitApply(p) => {
                        let name = p.metadata.name.clone().unwrap_or_default();
                        pod_map.insert(name, p);
                    }
                    watcher::Event::Delete(p) => {
                        let name = p.metadata.name.clone().unwrap_or_default();
                        pod_map.remove(&name);
                        unschedulable_since.remove(&name);
                    }
                    watcher::Event::Init => pod_map.clear(),
                    watcher::Event::InitDone => {}
                },
                Some(Either::Object(Err(e))) | Some(Either::Pod(Err(e))) => {
                    tracing::debug!(error = %e, workload = %w.name, "watch error (retrying)");
                    continue;
                }
                Some(Either::Tick) => {}
            }
            let health = evaluate(&w, object.as_ref(), &pod_map, &mut unschedulable_since);
            tx.send_if_modified(|h| {
                if *h != health {
                    *h = health;
                    true
                } else {
                    false
                }
            });
        }
    });
    (rx, task)
}

enum Either<A, B> {
    Object(A),
    Pod(B),
    Tick,
}

fn evaluate(
    w: &Workload,
    object: Option<&DynamicObject>,
    pods: &HashMap<String, Pod>,
    unschedulable_since: &mut HashMap<String, Instant>,
) -> Health {
    if let Some(f) = pod_failure(pods, unschedulable_since) {
        return Health::Failed(f);
    }
    let Some(obj) = object else {
        return Health::Progressing(format!("waiting for {} {}", w.kind, w.name));
    };
    rollout_status(&w.kind, obj)
}

/// kubectl's `rollout status` logic, on the object's JSON.
pub fn rollout_status(kind: &str, obj: &DynamicObject) -> Health {
    let spec = &obj.data["spec"];
    let status = &obj.data["status"];
    let n = |v: &Value| v.as_i64().unwrap_or(0);
    let generation = obj.metadata.generation.unwrap_or(0);
    if n(&status["observedGeneration"]) < generation {
        return Health::Progressing("waiting for the controller to see the new spec".into());
    }
    match kind {
        "Deployment" => {
            if let Some(conds) = status["conditions"].as_array() {
                if conds.iter().any(|c| {
                    c["type"] == "Progressing" && c["reason"] == "ProgressDeadlineExceeded"
                }) {
                    return Health::Failed(Failure {
                        reason: format!(
                            "rollout exceeded its progress deadline ({})",
                            spec["progressDeadlineSeconds"].as_i64().unwrap_or(600)
                        ),
                        pod: None,
                        container: None,
                        previous: false,
                    });
                }
                // The ReplicaSet could not create a pod: the API server refused it (a
                // LimitRange's max, a ResourceQuota, an admission policy). It retries,
                // but the same spec is refused the same way.
                if let Some(c) = conds
                    .iter()
                    .find(|c| c["type"] == "ReplicaFailure" && c["status"] == "True")
                {
                    return Health::Failed(Failure {
                        reason: format!(
                            "the cluster refused its pods: {}",
                            c["message"].as_str().unwrap_or("(no message)")
                        ),
                        pod: None,
                        container: None,
                        previous: false,
                    });
                }
            }
            let want = spec["replicas"].as_i64().unwrap_or(1);
            let updated = n(&status["updatedReplicas"]);
            let total = n(&status["replicas"]);
            let available = n(&status["availableReplicas"]);
            if updated < want {
                Health::Progressing(format!("{updated} of {want} pods updated"))
            } else if total > updated {
                Health::Progressing(format!("{} old pods terminating", total - updated))
            } else if available < updated {
                Health::Progressing(format!("{available} of {want} pods ready"))
            } else {
                Health::Ready
            }
        }
        "StatefulSet" => {
            let want = spec["replicas"].as_i64().unwrap_or(1);
            let ready = n(&status["readyReplicas"]);
            let updated = n(&status["updatedReplicas"]);
            if ready < want {
                Health::Progressing(format!("{ready} of {want} pods ready"))
            } else if spec["updateStrategy"]["type"] != "OnDelete"
                && (updated < want || status["currentRevision"] != status["updateRevision"])
            {
                Health::Progressing(format!("{updated} of {want} pods updated"))
            } else {
                Health::Ready
            }
        }
        "DaemonSet" => {
            let want = n(&status["desiredNumberScheduled"]);
            let updated = n(&status["updatedNumberScheduled"]);
            let available = n(&status["numberAvailable"]);
            if updated < want {
                Health::Progressing(format!("{updated} of {want} pods updated"))
            } else if available < want {
                Health::Progressing(format!("{available} of {want} pods ready"))
            } else {
                Health::Ready
            }
        }
        _ => Health::Ready,
    }
}

/// A pod that will not become ready by itself.
fn pod_failure(
    pods: &HashMap<String, Pod>,
    unschedulable_since: &mut HashMap<String, Instant>,
) -> Option<Failure> {
    let mut names: Vec<&String> = pods.keys().collect();
    names.sort();
    for name in names {
        let pod = &pods[name];
        if pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(status) = &pod.status else { continue };
        let statuses = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for cs in statuses {
            // A container that exited with an error will crash-loop (restartPolicy
            // Always): report it now rather than after the back-off.
            if let Some(t) = cs.state.as_ref().and_then(|s| s.terminated.as_ref()) {
                if t.exit_code != 0
                    && pod.spec.as_ref().and_then(|s| s.restart_policy.as_deref()) != Some("Never")
                {
                    return Some(Failure {
                        reason: format!(
                            "pod {name}: container {} exited with code {}{}",
                            cs.name,
                            t.exit_code,
                            t.reason
                                .as_deref()
                                .filter(|r| *r != "Error")
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        ),
                        pod: Some(name.clone()),
                        container: Some(cs.name.clone()),
                        previous: false,
                    });
                }
            }
            let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if FATAL_WAITING.contains(&reason) {
                let detail = waiting
                    .message
                    .as_deref()
                    .map(|m| m.lines().next().unwrap_or_default().to_owned())
                    .unwrap_or_default();
                let crashed = reason == "CrashLoopBackOff";
                let exit = cs
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .map(|t| {
                        format!(
                            " (exit code {}{})",
                            t.exit_code,
                            t.reason
                                .as_deref()
                                .map(|r| format!(", {r}"))
                                .unwrap_or_default()
                        )
                    })
                    .unwrap_or_default();
                let reason_text = if crashed {
                    format!(
                        "pod {name}: container {} is in CrashLoopBackOff{exit}",
                        cs.name
                    )
                } else if detail.is_empty() {
                    format!("pod {name}: container {}: {reason}", cs.name)
                } else {
                    format!("pod {name}: container {}: {reason}: {detail}", cs.name)
                };
                return Some(Failure {
                    reason: reason_text,
                    pod: Some(name.clone()),
                    container: Some(cs.name.clone()),
                    previous: crashed,
                });
            }
        }
        let unschedulable = status.conditions.iter().flatten().find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        });
        match unschedulable {
            Some(c) => {
                let since = *unschedulable_since
                    .entry(name.clone())
                    .or_insert_with(Instant::now);
                if since.elapsed() >= UNSCHEDULABLE_GRACE {
                    return Some(Failure {
                        reason: format!(
                            "pod {name} cannot be scheduled: {}",
                            c.message.as_deref().unwrap_or("Unschedulable")
                        ),
                        pod: None,
                        container: None,
                        previous: false,
                    });
                }
            }
            None => {
                unschedulable_since.remove(name);
            }
        }
    }
    None
}

/// The last `n` lines a failed container wrote (its previous run after a crash).
pub async fn last_lines(kenv: &ClusterConn, namespace: &str, f: &Failure, n: i64) -> Vec<String> {
    let (Some(pod), Some(container)) = (&f.pod, &f.container) else {
        return Vec::new();
    };
    let api: Api<Pod> = Api::namespaced(kenv.client.clone(), namespace);
    let params = LogParams {
        container: Some(container.clone()),
        previous: f.previous,
        tail_lines: Some(n),
        ..Default::default()
    };
    match api.logs(pod, &params).await {
        Ok(text) => text.lines().map(str::to_owned).collect(),
        Err(_) => Vec::new(),
    }
}

/// Combined health of several workloads: failed if any failed, ready if all are.
pub fn combine(all: &[Health]) -> Health {
    if let Some(f) = all.iter().find(|h| matches!(h, Health::Failed(_))) {
        return f.clone();
    }
    match all.iter().find(|h| matches!(h, Health::Progressing(_))) {
        Some(p) => p.clone(),
        None => Health::Ready,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(spec: Value, status: Value, generation: i64) -> DynamicObject {
        let mut o = DynamicObject::new(
            "web",
            &ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&()),
        );
        o.metadata.generation = Some(generation);
        o.data = serde_json::json!({ "spec": spec, "status": status });
        o
    }

    #[test]
    fn a_services_pods_are_found_by_its_workloads_own_selectors() {
        use serde_json::json;
        let res = ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&());
        // A manifests service's Deployment, which devenv did not label, in its own
        // namespace; a StatefulSet of the same service in the default one.
        let web = Workload::from_object(
            &json!({"kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
                    "spec": {"selector": {"matchLabels": {"app": "web", "tier": "front"}}}}),
            res.clone(),
            "devenv-x",
        )
        .expect("a workload");
        let db = Workload::from_object(
            &json!({"kind": "StatefulSet", "metadata": {"name": "db"},
                    "spec": {"selector": {"matchLabels": {"app": "db"}}}}),
            res.clone(),
            "devenv-x",
        )
        .expect("a workload");
        // No selector: not a workload whose pods can be found.
        assert!(Workload::from_object(
            &json!({"kind": "Deployment", "metadata": {"name": "odd"}, "spec": {}}),
            res,
            "devenv-x"
        )
        .is_none());
        let fallback = || PodSet {
            namespace: "devenv-x".into(),
            selector: "app.kubernetes.io/managed-by=devenv".into(),
        };
        let sets = pod_sets(&[web.clone(), db, web], fallback);
        assert_eq!(
            sets,
            [
                PodSet {
                    namespace: "shop".into(),
                    selector: "app=web,tier=front".into()
                },
                PodSet {
                    namespace: "devenv-x".into(),
                    selector: "app=db".into()
                },
            ],
            "each workload's pods once, in its namespace"
        );
        assert_eq!(sets[0].to_string(), "app=web,tier=front in namespace shop");
        // Nothing deployed (yet): devenv's labels.
        assert_eq!(pod_sets(&[], fallback), [fallback()]);
    }

    #[test]
    fn deployment_rollout_follows_kubectl() {
        use serde_json::json;
        let d = deployment(json!({"replicas": 2}), json!({"observedGeneration": 1}), 2);
        assert!(matches!(
            rollout_status("Deployment", &d),
            Health::Progressing(_)
        ));
        let d = deployment(
            json!({"replicas": 2}),
            json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 2, "availableReplicas": 2}),
            2,
        );
        assert_eq!(
            rollout_status("Deployment", &d),
            Health::Progressing("1 old pods terminating".into())
        );
        let d = deployment(
            json!({"replicas": 2}),
            json!({"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2}),
            2,
        );
        assert_eq!(rollout_status("Deployment", &d), Health::Ready);
        let d = deployment(
            json!({"replicas": 1}),
            json!({"observedGeneration": 2, "conditions": [{"type": "Progressing", "reason": "ProgressDeadlineExceeded"}]}),
            2,
        );
        assert!(matches!(
            rollout_status("Deployment", &d),
            Health::Failed(_)
        ));
        // A pod the API server refuses (LimitRange, quota) fails it with the reason.
        let d = deployment(
            json!({"replicas": 1}),
            json!({"observedGeneration": 2, "conditions": [{"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate",
                "message": "pods \"web-1\" is forbidden: maximum memory usage per Container is 64Mi, but limit is 128Mi"}]}),
            2,
        );
        match rollout_status("Deployment", &d) {
            Health::Failed(f) => assert_eq!(
                f.reason,
                "the cluster refused its pods: pods \"web-1\" is forbidden: maximum memory usage per Container is 64Mi, but limit is 128Mi"
            ),
            h => panic!("{h:?}"),
        }
    }

    #[test]
    fn image_pull_backoff_fails_fast() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web-1"},
            "status": {"containerStatuses": [{
                "name": "web", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope:1\""}}
            }]}
        }))
        .unwrap();
        let pods = HashMap::from([("web-1".to_owned(), pod)]);
        let f = pod_failure(&pods, &mut HashMap::new()).unwrap();
        assert_eq!(
            f.reason,
            "pod web-1: container web: ImagePullBackOff: Back-off pulling image \"nope:1\""
        );
    }
}
