//! A command in a ready pod of a service, its output as two streams and its exit
//! code: what a service's `exec` hook runs. (Dev sync's `onSync` exec keeps its own
//! bounded, collected form in `engine/dev/sync/pod.rs`.)

use kube::api::AttachedProcess;

use super::error::KubeError;
use super::exec::{PodExecError, PodTarget};
use super::rollout::PodSet;
use super::ClusterConn;

/// A command started in a pod.
pub struct PodExec {
    pub pod: String,
    pub container: String,
    proc: AttachedProcess,
}

impl PodExec {
    /// Runs `argv` in the first container of a running, ready pod among `pods` (the
    /// service's, [`super::rollout::pod_sets`]; picked as `devenv exec` picks them,
    /// `kube::exec`).
    pub async fn start(
        conn: &ClusterConn,
        pods: Vec<PodSet>,
        argv: Vec<String>,
    ) -> Result<Self, KubeError> {
        let target = PodTarget {
            pods,
            ..Default::default()
        };
        let started = super::exec::exec(conn, &target, argv, false, false)
            .await
            .map_err(|e| match e {
                PodExecError::Kube(k) => k,
                other => KubeError::new(
                    format!("{other} in namespace {}", conn.namespace),
                    "the service's workloads must have a running, ready pod",
                ),
            })?;
        Ok(Self {
            pod: started.pod,
            container: started.container,
            proc: started.process,
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
        super::exec::exit_code(&status)
    }
}
