//! A command in a container of one of a service's pods (`devenv exec`, `shell`):
//! which pod (a ready one, the newest, unless named), which container (the first,
//! unless named), and the attach over the API server's exec endpoint.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess, ListParams};

use super::error::explain;
use super::rollout::PodSet;
use super::{ClusterConn, KubeError};

/// Bytes the attach buffers per stream between the socket and its reader/writer.
const ATTACH_BUFFER: usize = 32 * 1024;

/// Where a command was asked to run.
#[derive(Debug, Clone, Default)]
pub struct PodTarget {
    /// Where the service's pods are ([`super::rollout::pod_sets`]).
    pub pods: Vec<PodSet>,
    pub pod: Option<String>,
    pub container: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PodExecError {
    #[error("no ready pod matches {selector}")]
    NoReadyPod { selector: String },
    #[error("no pod `{pod}` among the service's pods")]
    PodNotFound { pod: String, pods: Vec<String> },
    #[error("pod `{pod}` has no container `{container}`")]
    ContainerNotFound {
        pod: String,
        container: String,
        containers: Vec<String>,
    },
    #[error(transparent)]
    Kube(#[from] KubeError),
}

/// A command attached in `pod`'s `container`.
pub struct PodExec {
    pub pod: String,
    pub container: String,
    pub process: AttachedProcess,
}

impl std::fmt::Debug for PodExec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodExec")
            .field("pod", &self.pod)
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

/// Starts `argv` in the target's pod and container.
pub async fn exec(
    conn: &ClusterConn,
    target: &PodTarget,
    argv: Vec<String>,
    tty: bool,
    stdin: bool,
) -> Result<PodExec, PodExecError> {
    let mut pods = Vec::new();
    for set in &target.pods {
        let api: Api<Pod> = Api::namespaced(conn.client.clone(), &set.namespace);
        let mut found = api
            .list(&ListParams::default().labels(&set.selector))
            .await
            .map_err(|e| explain(&e, &conn.context))?
            .items;
        for p in &mut found {
            // A list's items may come without it; the exec needs it.
            p.metadata
                .namespace
                .get_or_insert_with(|| set.namespace.clone());
        }
        pods.extend(found);
    }
    let pod = pick_pod(&pods, target)?;
    let container = pick_container(pod, target.container.as_deref())?;
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| conn.namespace.clone());
    let api: Api<Pod> = Api::namespaced(conn.client.clone(), &namespace);
    let params = AttachParams::default()
        .container(container.clone())
        .stdin(stdin)
        .stdout(true)
        // A terminal merges stderr into its output (the API refuses both).
        .stderr(!tty)
        .tty(tty)
        .max_stdin_buf_size(ATTACH_BUFFER)
        .max_stdout_buf_size(ATTACH_BUFFER)
        .max_stderr_buf_size(ATTACH_BUFFER);
    let process = api
        .exec(&name, argv, &params)
        .await
        .map_err(|e| explain(&e, &conn.context))?;
    Ok(PodExec {
        pod: name,
        container,
        process,
    })
}

/// Running, Ready and not being deleted: a pod exec may pick.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    let running = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .is_some_and(|p| p == "Running");
    let ready = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    running && ready && pod.metadata.deletion_timestamp.is_none()
}

/// The named pod (among the service's), else the newest ready one.
pub fn pick_pod<'a>(pods: &'a [Pod], target: &PodTarget) -> Result<&'a Pod, PodExecError> {
    if let Some(wanted) = &target.pod {
        return pods
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(wanted))
            .ok_or_else(|| PodExecError::PodNotFound {
                pod: wanted.clone(),
                pods: pods
                    .iter()
                    .filter_map(|p| p.metadata.name.clone())
                    .collect(),
            });
    }
    pods.iter()
        .filter(|p| is_ready(p))
        .max_by(|a, b| {
            (&a.metadata.creation_timestamp, &a.metadata.name)
                .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
        })
        .ok_or_else(|| PodExecError::NoReadyPod {
            selector: target
                .pods
                .iter()
                .map(PodSet::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// The named container, else the pod's first.
pub fn pick_container(pod: &Pod, wanted: Option<&str>) -> Result<String, PodExecError> {
    let names: Vec<String> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    match wanted {
        Some(w) if names.iter().any(|n| n == w) => Ok(w.to_string()),
        Some(w) => Err(PodExecError::ContainerNotFound {
            pod: pod_name,
            container: w.to_string(),
            containers: names,
        }),
        None => names
            .into_iter()
            .next()
            .ok_or_else(|| PodExecError::ContainerNotFound {
                pod: pod_name,
                container: String::new(),
                containers: Vec::new(),
            }),
    }
}

/// The exit code in an exec's final status: 0 on success, the code the runtime
/// reports (`NonZeroExitCode`, cause `ExitCode`), else `None` (unknown).
pub fn exit_code(status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> Option<i32> {
    if status.status.as_deref() == Some("Success") {
        return Some(0);
    }
    status
        .details
        .as_ref()?
        .causes
        .as_ref()?
        .iter()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))?
        .message
        .as_deref()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
        Status, StatusCause, StatusDetails, Time,
    };

    fn pod(name: &str, secs: i64, ready: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.metadata.creation_timestamp = Some(Time(
            k8s_openapi::jiff::Timestamp::from_second(secs).unwrap(),
        ));
        p.spec = Some(PodSpec {
            containers: vec![
                Container {
                    name: "app".into(),
                    ..Default::default()
                },
                Container {
                    name: "sidecar".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        p
    }

    #[test]
    fn the_newest_ready_pod_unless_one_is_named() {
        let pods = vec![pod("a", 10, true), pod("b", 30, false), pod("c", 20, true)];
        let t = PodTarget::default();
        assert_eq!(
            pick_pod(&pods, &t).unwrap().metadata.name.as_deref(),
            Some("c")
        );
        let named = PodTarget {
            pod: Some("b".into()),
            ..Default::default()
        };
        assert_eq!(
            pick_pod(&pods, &named).unwrap().metadata.name.as_deref(),
            Some("b")
        );
        let missing = PodTarget {
            pod: Some("z".into()),
            ..Default::default()
        };
        match pick_pod(&pods, &missing) {
            Err(PodExecError::PodNotFound { pods, .. }) => assert_eq!(pods, ["a", "b", "c"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            pick_pod(&[pod("b", 1, false)], &t),
            Err(PodExecError::NoReadyPod { .. })
        ));
    }

    #[test]
    fn the_first_container_unless_one_is_named() {
        let p = pod("a", 1, true);
        assert_eq!(pick_container(&p, None).unwrap(), "app");
        assert_eq!(pick_container(&p, Some("sidecar")).unwrap(), "sidecar");
        match pick_container(&p, Some("db")) {
            Err(PodExecError::ContainerNotFound { containers, .. }) => {
                assert_eq!(containers, ["app", "sidecar"])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn exit_codes_come_from_the_status_causes() {
        let ok = Status {
            status: Some("Success".into()),
            ..Default::default()
        };
        assert_eq!(exit_code(&ok), Some(0));
        let three = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("3".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(exit_code(&three), Some(3));
        assert_eq!(exit_code(&Status::default()), None);
    }
}
