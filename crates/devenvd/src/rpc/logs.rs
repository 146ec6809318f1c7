//! `LogService.Stream`: a snapshot (from memory, or disk when it reaches further
//! back), then, with `follow`, new lines batch by batch. A slow client never slows a
//! service: its follower lags and it is told how many lines it missed.

use std::sync::Arc;

use devenv_api::pb::{self, log_service_server::LogService};
use devenv_core::engine::Engine;
use devenv_core::logs::{Query, Received};
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::ResponseStream;
use crate::convert;

/// Batches of entries queued per client; past this the client's follower lags.
const CLIENT_BATCHES: usize = 8;
/// Entries per queued batch (snapshots are cut into batches of this size).
const BATCH_ENTRIES: usize = 2048;

type Entries = Vec<Result<pb::LogEntry, Status>>;

#[derive(Debug)]
pub struct Logs {
    pub engine: Arc<Engine>,
}

#[tonic::async_trait]
impl LogService for Logs {
    type StreamStream = ResponseStream<pb::LogEntry>;

    async fn stream(
        &self,
        req: Request<pb::LogRequest>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        let req = req.into_inner();
        let env = convert::env_request(&self.engine, req.environment)?;
        super::record(&env, &req.services);
        let services = req.services;
        let hub = self.engine.logs(&env, &services).map_err(convert::status)?;
        let grep = if req.grep.is_empty() {
            None
        } else {
            Some(
                regex::Regex::new(&req.grep)
                    .map_err(|e| Status::invalid_argument(format!("--grep: {e}")))?,
            )
        };
        let min_level = pb::LogLevel::try_from(req.min_level)
            .map(convert::min_level)
            .map_err(|_| {
                Status::invalid_argument(format!("min_level: unknown level {}", req.min_level))
            })?;
        let query = Query {
            services,
            since: req.since.as_ref().map(convert::system_time),
            tail: req.tail as usize,
            grep,
            min_level,
        };
        let follow = req.follow;
        // May read segment files.
        let (snapshot, follower) = tokio::task::spawn_blocking({
            let query = query.clone();
            move || hub.snapshot_and_follow(&query, follow)
        })
        .await
        .map_err(|e| Status::internal(format!("reading logs: {e}")))?;

        let (tx, rx) = mpsc::channel::<Entries>(CLIENT_BATCHES);
        tokio::spawn(async move {
            for chunk in snapshot.chunks(BATCH_ENTRIES) {
                let entries = chunk.iter().map(|l| Ok(convert::log_entry(l))).collect();
                if tx.send(entries).await.is_err() {
                    return;
                }
            }
            let Some(mut follower) = follower else { return };
            while let Some(item) = follower.recv().await {
                let entries: Entries = match item {
                    Received::Lines(lines) => {
                        if !query.wants_service(lines.service()) {
                            continue;
                        }
                        lines
                            .iter()
                            .filter(|l| query.wants(l.time(), l.stream, l.text))
                            .map(|l| Ok(convert::log_entry_ref(&l)))
                            .collect()
                    }
                    Received::Missed(n) => vec![Ok(pb::LogEntry {
                        missed: n,
                        ..Default::default()
                    })],
                };
                if !entries.is_empty() && tx.send(entries).await.is_err() {
                    return;
                }
            }
        });
        let stream = ReceiverStream::new(rx).flat_map(futures::stream::iter);
        Ok(Response::new(Box::pin(stream)))
    }
}
