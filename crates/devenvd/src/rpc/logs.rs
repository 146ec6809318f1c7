//! `LogService`: `Stream` sends a snapshot (from memory, or disk when it reaches
//! further back), then, with `follow`, new lines; or, with `resume_after`, every
//! line after a position the client had. The client's follower reads at the
//! client's pace, from memory or disk: a slow client never slows a service and
//! misses nothing that is still retained. `Stats` says what is retained.

use std::sync::Arc;

use devenv_api::pb::{self, log_service_server::LogService};
use devenv_core::engine::Engine;
use devenv_core::logs::{Follower, LogStats, Query, Received};
use futures::StreamExt as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::ResponseStream;
use crate::convert;

/// Batches of entries queued per client, beyond what the follower holds: the
/// follower waits (not the services) when the client does not read.
const CLIENT_BATCHES: usize = 2;
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
        let resume = req.resume_after > 0;
        let query = Query {
            services,
            since: req
                .since
                .as_ref()
                .filter(|_| !resume)
                .map(convert::system_time),
            tail: req.tail as usize,
            grep,
            min_level,
        };
        let follow = req.follow;
        let (snapshot, follower) = if resume {
            let only = (!query.services.is_empty()).then(|| {
                query
                    .services
                    .iter()
                    .map(|s| Arc::from(s.as_str()))
                    .collect()
            });
            let f = hub.resume(req.resume_after.saturating_add(1), only);
            (Vec::new(), Some(if follow { f } else { f.until_now() }))
        } else {
            // May read segment files.
            tokio::task::spawn_blocking({
                let query = query.clone();
                move || hub.snapshot_and_follow(&query, follow)
            })
            .await
            .map_err(|e| Status::internal(format!("reading logs: {e}")))?
        };

        let (tx, rx) = mpsc::channel::<Entries>(CLIENT_BATCHES);
        tokio::spawn(async move {
            let mut snapshot = snapshot.into_iter();
            loop {
                let entries: Entries = snapshot
                    .by_ref()
                    .take(BATCH_ENTRIES)
                    .map(|l| Ok(convert::log_entry(l)))
                    .collect();
                if entries.is_empty() {
                    break;
                }
                if tx.send(entries).await.is_err() {
                    return;
                }
            }
            if let Some(follower) = follower {
                send_followed(follower, &query, &tx).await;
            }
        });
        let stream = ReceiverStream::new(rx).flat_map(futures::stream::iter);
        Ok(Response::new(Box::pin(stream)))
    }

    async fn stats(
        &self,
        req: Request<pb::LogStatsRequest>,
    ) -> Result<Response<pb::LogStatsResponse>, Status> {
        let env = convert::env_request(&self.engine, req.into_inner().environment)?;
        super::record(&env, &[]);
        let hub = self.engine.logs(&env, &[]).map_err(convert::status)?;
        // Reads the first line of each service's oldest segment.
        let stats = tokio::task::spawn_blocking(move || hub.stats())
            .await
            .map_err(|e| Status::internal(format!("reading log stats: {e}")))?;
        Ok(Response::new(stats_response(&stats)))
    }
}

/// Lines as the follower hands them out (it waits while the client does not read),
/// filtered by the query at the edge.
async fn send_followed(mut follower: Follower, query: &Query, tx: &mpsc::Sender<Entries>) {
    while let Some(item) = follower.recv().await {
        let entries: Entries = match item {
            Received::Lines(lines) => lines
                .into_iter()
                .filter(|l| query.wants(l.time, l.stream, &l.text))
                .map(|l| Ok(convert::log_entry(l)))
                .collect(),
            Received::Missed(m) => vec![Ok(convert::missed_entry(&m))],
        };
        if !entries.is_empty() && tx.send(entries).await.is_err() {
            return;
        }
    }
}

fn stats_response(stats: &LogStats) -> pb::LogStatsResponse {
    let limits = stats.limits.unwrap_or(devenv_core::logs::SegmentLimits {
        segment_bytes: 0,
        service_bytes: 0,
        env_bytes: 0,
    });
    pb::LogStatsResponse {
        services: stats
            .services
            .iter()
            .map(|s| pb::ServiceLogStats {
                service: s.service.to_string(),
                disk_bytes: s.disk_bytes,
                disk_lines: s.disk_lines.unwrap_or(0),
                has_disk_lines: s.disk_lines.is_some(),
                oldest: s.oldest.as_ref().map(|l| convert::timestamp(l.time)),
                memory_lines: s.memory_lines as u64,
            })
            .collect(),
        segment_bytes: limits.segment_bytes,
        service_bytes: limits.service_bytes,
        env_bytes: limits.env_bytes,
    }
}
