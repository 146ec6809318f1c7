use std::sync::Arc;

use devenv_api::pb::{self, sync_service_server::SyncService};
use devenv_core::engine::Engine;
use tonic::{Request, Response, Status};

use crate::convert;

/// Differences listed per pod and rule, at most (the count says how many in all).
const LISTED: usize = 100;

#[derive(Debug)]
pub struct Syncs {
    pub engine: Arc<Engine>,
}

#[tonic::async_trait]
impl SyncService for Syncs {
    async fn status(
        &self,
        req: Request<pb::SyncStatusRequest>,
    ) -> Result<Response<pb::SyncStatusResponse>, Status> {
        let env = convert::env_request(&self.engine, req.into_inner().environment)?;
        super::record(&env, &[]);
        let sessions = self
            .engine
            .sync_status(&env)
            .map_err(convert::status)?
            .into_iter()
            .map(|p| {
                let s = p.session;
                pb::SyncSession {
                    service: p.service,
                    pod: s.pod,
                    container: s.container.unwrap_or_default(),
                    local_dir: s.local_dir.display().to_string(),
                    remote_dir: s.remote_dir,
                    phase: p.phase,
                    connected: s.connected,
                    last_sync: s.last_sync.map(convert::timestamp),
                    last_latency_ms: s
                        .last_latency
                        .map(|d| d.as_secs_f64() * 1000.0)
                        .unwrap_or(0.0),
                    files: s.files,
                    bytes: s.bytes,
                    deleted: s.deleted,
                    errors: s.errors,
                    last_error: s.last_error.unwrap_or_default(),
                    notice: s.notice.unwrap_or_default(),
                }
            })
            .collect();
        Ok(Response::new(pb::SyncStatusResponse { sessions }))
    }

    async fn verify(
        &self,
        req: Request<pb::SyncVerifyRequest>,
    ) -> Result<Response<pb::SyncVerifyResponse>, Status> {
        let req = req.into_inner();
        let env = convert::env_request(&self.engine, req.environment)?;
        super::record(&env, &req.services);
        let results = self
            .engine
            .sync_verify(&env, &req.services)
            .await
            .map_err(convert::status)?
            .into_iter()
            .map(|(service, v)| {
                let (in_sync, differences, count, error) = match v.differences {
                    Ok(d) => (
                        d.is_empty(),
                        d.iter().take(LISTED).cloned().collect(),
                        d.len(),
                        String::new(),
                    ),
                    Err(e) => (false, Vec::new(), 0, e),
                };
                pb::SyncVerified {
                    service,
                    pod: v.pod,
                    local_dir: v.local_dir.display().to_string(),
                    remote_dir: v.remote_dir,
                    in_sync,
                    differences,
                    difference_count: u32::try_from(count).unwrap_or(u32::MAX),
                    error,
                }
            })
            .collect();
        Ok(Response::new(pb::SyncVerifyResponse { results }))
    }
}
