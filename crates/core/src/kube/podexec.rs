//! A command in a ready pod of a service, its output as two streams and its exit
//! code: what a service's `exec` hook runs. (Dev sync's `onSync` exec keeps its own
//! bounded, collected form in `engine/dev/sync/pod.rs`.)

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, AttachedProcess, ListParams};

use super::error::{explain, KubeError};
use super::ClusterConn;

/// A command started in a pod.
pub struct PodExec {
    pub pod: String,
    pub container: String,
    proc: AttachedProcess,
}

impl PodExec {
    /// Runs `argv` in the first container of a running, ready pod matching `selector`.
    pub async fn start(
        conn: &ClusterConn,
        selector: &str,
        argv: Vec<String>,
    ) -> Result<Self, KubeError> {
        let api: Api<Pod> = Api::namespaced(conn.client.clone(), &conn.namespace);
        let pods = api
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|e| explain(&e, &conn.context))?;
        let ready = pods.items.iter().find(|p| is_ready(p)).ok_or_else(|| {
            KubeError::new(
                format!(
                    "no ready pod matches `{selector}` in namespace {}",
                    conn.namespace
                ),
                "the service's pods must carry devenv's labels and be ready",
            )
        })?;
        let pod = ready.metadata.name.clone().unwrap_or_default();
        let container = ready
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let params = AttachParams::default()
            .container(container.clone())
            .stdin(false)
            .stdout(true)
            .stderr(true);
        let proc = api
            .exec(&pod, argv, &params)
            .await
            .map_err(|e| explain(&e, &conn.context))?;
        Ok(Self {
            pod,
            container,
            proc,
        })
    }

    pub fn stdout(&mut self) -> Option<impl tokio::io::AsyncRead + Unpin + use<>> {
        self.proc.stdout()
    }

    pub fn stderr(&mut self) -> Option<impl tokio::io::AsyncRead + Unpin + use<>> {
        self.proc.stderr()
    }

    /// Waits for the command to end: its exit code (0 on success; `None` when the
    /// server did not say).
    pub async fn exit_code(mut self) -> Option<i32> {
        let status = self.proc.take_status()?.await?;
        if status.status.as_deref() == Some("Success") {
            return Some(0);
        }
        status
            .details
            .and_then(|d| d.causes)
            .into_iter()
            .flatten()
            .find(|c| c.reason.as_deref() == Some("ExitCode"))
            .and_then(|c| c.message)
            .and_then(|m| m.parse().ok())
    }
}

fn is_ready(p: &Pod) -> bool {
    let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    let ready = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    running && ready && p.metadata.deletion_timestamp.is_none()
}
