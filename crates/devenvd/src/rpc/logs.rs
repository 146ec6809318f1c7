use std::sync::Arc;

use devenv_api::pb::{self, log_service_server::LogService};
use devenv_core::engine::Engine;
use devenv_core::logs::{LogLine, Received};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::ResponseStream;
use crate::convert;

/// Entries queued per client; past this the client's follower lags and it gets a
/// missed-lines marker, while services keep writing at full speed.
const CLIENT_BUFFER: usize = 1024;

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
        let env = convert::env_request(req.environment)?;
        let rt = self.engine.find(&env).map_err(convert::status)?;
        let grep = if req.grep.is_empty() {
            None
        } else {
            Some(
                regex::Regex::new(&req.grep)
                    .map_err(|e| Status::invalid_argument(format!("--grep: {e}")))?,
            )
        };
        let services = req.services;
        if let Some(cfg) = rt.config() {
            let unknown: Vec<&String> = services
                .iter()
                .filter(|s| cfg.service(s).is_none())
                .collect();
            if !unknown.is_empty() {
                let known: Vec<&str> = cfg.services.iter().map(|s| s.name.as_str()).collect();
                return Err(Status::not_found(format!(
                    "unknown service `{}`; services are: {}",
                    unknown
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join("`, `"),
                    known.join(", ")
                )));
            }
        }
        let since = req.since.as_ref().map(convert::system_time);
        let wanted = move |l: &LogLine| {
            (services.is_empty() || services.iter().any(|s| s.as_str() == &*l.service))
                && since.is_none_or(|s| l.time >= s)
                && grep.as_ref().is_none_or(|g| g.is_match(&l.text))
        };
        // Subscribe before the snapshot so nothing falls between them.
        let mut follower = req.follow.then(|| rt.shared.logs.follow());
        let snapshot: Vec<Arc<LogLine>> = rt
            .shared
            .logs
            .snapshot(&[], since, 0)
            .into_iter()
            .filter(|l| wanted(l))
            .collect();
        let skip = snapshot.len().saturating_sub(if req.tail == 0 {
            usize::MAX
        } else {
            req.tail as usize
        });
        let last = snapshot.last().cloned();
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        tokio::spawn(async move {
            for l in &snapshot[skip..] {
                if tx.send(Ok(convert::log_entry(l))).await.is_err() {
                    return;
                }
            }
            let Some(follower) = follower.as_mut() else {
                return;
            };
            // Lines pushed between subscribe and snapshot arrive twice: skip up to the
            // snapshot's last line.
            let mut catching_up = last.is_some();
            while let Some(item) = follower.recv().await {
                let entry = match item {
                    Received::Line(l) => {
                        if catching_up {
                            if let Some(last) = &last {
                                if l.time < last.time || Arc::ptr_eq(&l, last) {
                                    catching_up = !Arc::ptr_eq(&l, last);
                                    continue;
                                }
                            }
                            catching_up = false;
                        }
                        if !wanted(&l) {
                            continue;
                        }
                        convert::log_entry(&l)
                    }
                    Received::Missed(n) => pb::LogEntry {
                        missed: n,
                        ..Default::default()
                    },
                };
                if tx.send(Ok(entry)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
