//! `WorkspaceService`: a user's workspaces of an environment (`spec.workspaces`). The
//! logic is the engine's (`devenv_core::engine::workspace`); this maps requests and
//! replies. Shell and exec are `ServiceService.Exec` with `ExecStart.workspace`.

use std::sync::Arc;

use devenv_api::pb::{self, workspace_service_server::WorkspaceService};
use devenv_core::engine::{Engine, ProjectRef, WorkspaceInfo};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::ResponseStream;
use crate::convert;

#[derive(Debug)]
pub struct Workspaces {
    pub engine: Arc<Engine>,
}

fn status(w: WorkspaceInfo) -> pb::WorkspaceStatus {
    pb::WorkspaceStatus {
        name: w.name,
        owner: w.owner,
        namespace: w.namespace,
        state: w.state.as_str().to_owned(),
        pod: w.pod.unwrap_or_default(),
        ready: w.ready,
        ports: w.ports.into_iter().map(u32::from).collect(),
        idle_timeout_seconds: w.idle_timeout.map_or(0, |d| d.as_secs()),
        last_activity: w
            .last_activity
            .map(|(s, _)| s.as_str().to_owned())
            .unwrap_or_default(),
        last_activity_at: w.last_activity.map(|(_, t)| convert::timestamp(t)),
        stops_at: w.stops_at.map(convert::timestamp),
        open_sessions: w.open_sessions,
        idle: w.idle,
        volumes: w.volumes,
        cpu: w.cpu,
        volume_usage: w
            .volume_usage
            .into_iter()
            .map(|(claim, u)| pb::WorkspaceVolumeUsage {
                claim,
                used_bytes: u.used_bytes,
                capacity_bytes: u.capacity_bytes,
            })
            .collect(),
        volume_usage_note: w.volume_usage_note,
    }
}

impl Workspaces {
    /// The environment a request about workspace `name` names, recorded on its span.
    fn target(&self, name: &str, env: Option<pb::EnvironmentRef>) -> Result<ProjectRef, Status> {
        named(name)?;
        let env = convert::env_request(&self.engine, env)?;
        super::record(&env, &[]);
        Ok(env)
    }
}

fn named(name: &str) -> Result<(), Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument("name the workspace"));
    }
    Ok(())
}

#[tonic::async_trait]
impl WorkspaceService for Workspaces {
    async fn create(
        &self,
        req: Request<pb::WorkspaceRequest>,
    ) -> Result<Response<pb::WorkspaceStatus>, Status> {
        let r = req.into_inner();
        let env = self.target(&r.name, r.environment)?;
        let done = self.engine.workspace_create(&env, &r.name).await;
        done.map(|w| Response::new(status(w)))
            .map_err(convert::status)
    }

    async fn start(
        &self,
        req: Request<pb::WorkspaceRequest>,
    ) -> Result<Response<pb::WorkspaceStatus>, Status> {
        let r = req.into_inner();
        let env = self.target(&r.name, r.environment)?;
        let done = self.engine.workspace_start(&env, &r.name).await;
        done.map(|w| Response::new(status(w)))
            .map_err(convert::status)
    }

    async fn stop(
        &self,
        req: Request<pb::WorkspaceRequest>,
    ) -> Result<Response<pb::WorkspaceStatus>, Status> {
        let r = req.into_inner();
        let env = self.target(&r.name, r.environment)?;
        let done = self.engine.workspace_stop(&env, &r.name).await;
        done.map(|w| Response::new(status(w)))
            .map_err(convert::status)
    }

    async fn delete(
        &self,
        req: Request<pb::WorkspaceDeleteRequest>,
    ) -> Result<Response<pb::WorkspaceDeleteResponse>, Status> {
        let r = req.into_inner();
        let env = self.target(&r.name, r.environment)?;
        let kept = self
            .engine
            .workspace_delete(&env, &r.name, r.volumes)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::WorkspaceDeleteResponse {
            kept_volumes: kept,
        }))
    }

    async fn list(
        &self,
        req: Request<pb::WorkspaceListRequest>,
    ) -> Result<Response<pb::WorkspaceListResponse>, Status> {
        let r = req.into_inner();
        let env = convert::env_request(&self.engine, r.environment)?;
        super::record(&env, &[]);
        let all = self
            .engine
            .workspace_list(&env, r.all)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::WorkspaceListResponse {
            workspaces: all.into_iter().map(status).collect(),
        }))
    }

    async fn status(
        &self,
        req: Request<pb::WorkspaceRequest>,
    ) -> Result<Response<pb::WorkspaceStatus>, Status> {
        let r = req.into_inner();
        let env = self.target(&r.name, r.environment)?;
        let done = self.engine.workspace_status(&env, &r.name).await;
        done.map(|w| Response::new(status(w)))
            .map_err(convert::status)
    }

    type ForwardStream = ResponseStream<pb::WorkspaceForwardEvent>;

    async fn forward(
        &self,
        req: Request<pb::WorkspaceForwardRequest>,
    ) -> Result<Response<Self::ForwardStream>, Status> {
        let r = req.into_inner();
        named(&r.name)?;
        let port = |p: u32, what: &str| {
            u16::try_from(p)
                .map_err(|_| Status::invalid_argument(format!("{what} {p} is not a port")))
        };
        let local = port(r.local_port, "local port")?;
        let remote = port(r.remote_port, "remote port")?;
        if remote == 0 {
            return Err(Status::invalid_argument(
                "name the workspace's port to forward",
            ));
        }
        let env = convert::env_request(&self.engine, r.environment)?;
        super::record(&env, &[]);
        let fwd = self
            .engine
            .workspace_forward(&env, &r.name, local, remote)
            .await
            .map_err(convert::status)?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let first = pb::WorkspaceForwardEvent {
            local_port: u32::from(fwd.local_port),
            remote_port: u32::from(remote),
            pod: fwd.pod.clone(),
        };
        // The channel has room for this one.
        let _ = tx.try_send(Ok(first));
        // Serves until the client goes away (the stream's receiver is dropped).
        tokio::spawn(async move {
            let gone = tx.clone();
            fwd.serve(async move { gone.closed().await }).await;
            drop(tx);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type SyncStream = ResponseStream<pb::WorkspaceSyncEvent>;

    async fn sync(
        &self,
        req: Request<pb::WorkspaceRequest>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        let r = req.into_inner();
        let env = self.target(&r.name, r.environment)?;
        let sync = self
            .engine
            .workspace_sync(&env, &r.name)
            .await
            .map_err(convert::status)?;
        // Bounded: a client that does not read loses lines (counted), never holds
        // the sync back.
        let (tx, rx) = tokio::sync::mpsc::channel(SYNC_LINES);
        tokio::spawn(async move {
            let gone = tx.clone();
            let mut dropped = 0u64;
            sync.serve(async move { gone.closed().await }, |line| {
                let mut text = line.to_owned();
                if dropped > 0 {
                    text = format!("[{dropped} line(s) not shown] {text}");
                }
                match tx.try_send(Ok(pb::WorkspaceSyncEvent { line: text })) {
                    Ok(()) => {
                        dropped = 0;
                        true
                    }
                    Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                        dropped += 1;
                        true
                    }
                    Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
                }
            })
            .await;
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Lines of a `workspace sync` queued for a slow client before they are dropped.
const SYNC_LINES: usize = 256;
