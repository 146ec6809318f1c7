//! `SnapshotService`: `devenv snapshot`. The logic is the engine's
//! (`devenv_core::engine::snapshot`); this maps requests and replies.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use devenv_api::pb::{self, snapshot_service_server::SnapshotService};
use devenv_core::engine::snapshot::{SnapshotEvent, SnapshotInfo, SnapshotMsg};
use devenv_core::engine::Engine;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status};

use super::ResponseStream;
use crate::convert;

#[derive(Debug)]
pub struct Snapshots {
    pub engine: Arc<Engine>,
}

fn info(i: SnapshotInfo) -> pb::SnapshotInfo {
    pb::SnapshotInfo {
        name: i.name,
        created: Some(convert::timestamp(
            UNIX_EPOCH + Duration::from_secs(i.created),
        )),
        bytes: i.bytes,
        stored_bytes: i.stored,
        datasets: i
            .datasets
            .into_iter()
            .map(|(id, bytes, entries)| pb::SnapshotDataset {
                id,
                bytes,
                entries: entries as u64,
            })
            .collect(),
        dev: i.dev,
        notes: i.notes,
        seconds: i.seconds,
        message: i.message,
    }
}

fn stream(rx: tokio::sync::mpsc::Receiver<SnapshotMsg>) -> ResponseStream<pb::SnapshotEvent> {
    use pb::snapshot_event::Event;
    Box::pin(ReceiverStream::new(rx).map(|msg| {
        let event = match msg {
            SnapshotMsg::Event(SnapshotEvent::Step(s)) => Event::Step(s),
            SnapshotMsg::Event(SnapshotEvent::Progress {
                dataset,
                done,
                total,
            }) => Event::Progress(pb::SnapshotProgress {
                dataset,
                done_bytes: done,
                total_bytes: total,
            }),
            SnapshotMsg::Done(Ok(i)) => Event::Done(info(i)),
            SnapshotMsg::Done(Err(e)) => return Err(convert::status(e)),
        };
        Ok(pb::SnapshotEvent { event: Some(event) })
    }))
}

#[tonic::async_trait]
impl SnapshotService for Snapshots {
    type SaveStream = ResponseStream<pb::SnapshotEvent>;

    async fn save(
        &self,
        req: Request<pb::SnapshotSaveRequest>,
    ) -> Result<Response<Self::SaveStream>, Status> {
        let req = req.into_inner();
        let env = convert::env_request(&self.engine, req.environment)?;
        super::record(&env, &[]);
        let name = Some(req.name).filter(|n| !n.is_empty());
        Ok(Response::new(stream(
            self.engine.snapshot_task(env, name, false),
        )))
    }

    type RestoreStream = ResponseStream<pb::SnapshotEvent>;

    async fn restore(
        &self,
        req: Request<pb::SnapshotRestoreRequest>,
    ) -> Result<Response<Self::RestoreStream>, Status> {
        let req = req.into_inner();
        if req.name.is_empty() {
            return Err(Status::invalid_argument("name the snapshot to restore"));
        }
        let env = convert::env_request(&self.engine, req.environment)?;
        super::record(&env, &[]);
        Ok(Response::new(stream(self.engine.snapshot_task(
            env,
            Some(req.name),
            true,
        ))))
    }

    async fn list(
        &self,
        req: Request<pb::SnapshotListRequest>,
    ) -> Result<Response<pb::SnapshotListResponse>, Status> {
        let env = convert::env_request(&self.engine, req.into_inner().environment)?;
        super::record(&env, &[]);
        let (list, store_bytes) = self
            .engine
            .snapshot_list(&env)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::SnapshotListResponse {
            snapshots: list.into_iter().map(info).collect(),
            store_bytes,
        }))
    }

    async fn remove(
        &self,
        req: Request<pb::SnapshotRemoveRequest>,
    ) -> Result<Response<pb::SnapshotRemoveResponse>, Status> {
        let req = req.into_inner();
        let env = convert::env_request(&self.engine, req.environment)?;
        super::record(&env, &[]);
        let freed_bytes = self
            .engine
            .snapshot_remove(&env, &req.name)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::SnapshotRemoveResponse { freed_bytes }))
    }

    async fn diff(
        &self,
        req: Request<pb::SnapshotDiffRequest>,
    ) -> Result<Response<pb::SnapshotDiffResponse>, Status> {
        let req = req.into_inner();
        let env = convert::env_request(&self.engine, req.environment)?;
        super::record(&env, &[]);
        let d = self
            .engine
            .snapshot_diff(&env, &req.name)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::SnapshotDiffResponse {
            name: d.name,
            config: d.config,
            dev_then: d.dev_then,
            dev_now: d.dev_now,
            datasets: d
                .datasets
                .into_iter()
                .map(|x| pb::SnapshotDatasetDiff {
                    id: x.id,
                    added: x.added,
                    removed: x.removed,
                    changed: x.changed,
                    bytes_then: x.bytes_then,
                    bytes_now: x.bytes_now,
                })
                .collect(),
        }))
    }
}
