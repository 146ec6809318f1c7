use std::time::SystemTime;

use devenv_api::pb::{self, daemon_service_server::DaemonService};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::convert::timestamp;
use crate::web::Dashboard;

#[derive(Debug)]
pub struct Daemon {
    pub started_at: SystemTime,
    pub data_dir: String,
    pub log_file: String,
    pub shutdown: CancellationToken,
    pub engine: std::sync::Arc<devenv_core::engine::Engine>,
    pub dashboard: crate::web::Dashboard,
}

#[tonic::async_trait]
impl DaemonService for Daemon {
    async fn version(
        &self,
        _: Request<pb::VersionRequest>,
    ) -> Result<Response<pb::VersionResponse>, Status> {
        let state = self.engine.state().health();
        let guardian = self.engine.guardian();
        Ok(Response::new(pb::VersionResponse {
            daemon_version: devenv_api::VERSION.into(),
            protocol_version: devenv_api::PROTOCOL_VERSION,
            pid: std::process::id(),
            data_dir: self.data_dir.clone(),
            log_file: self.log_file.clone(),
            started_at: Some(timestamp(self.started_at)),
            state_error: state.error.unwrap_or_default(),
            state_failing_since: state.failing_since.map(timestamp),
            state_flush_failures: state.failures,
            guardian_pid: guardian.pid,
            guardian_restarts: guardian.restarts,
        }))
    }

    async fn shutdown(
        &self,
        _: Request<pb::ShutdownRequest>,
    ) -> Result<Response<pb::ShutdownResponse>, Status> {
        tracing::info!("shutdown requested over the API");
        // `devenv daemon stop` takes everything down, for good: the next daemon starts
        // nothing (a SIGTERM from a service manager keeps what is wanted up).
        if let Err(e) = self.engine.forget_wanted() {
            tracing::error!(error = %e, "cannot forget which environments were up");
        }
        self.shutdown.cancel();
        Ok(Response::new(pb::ShutdownResponse {}))
    }

    async fn dashboard(
        &self,
        _: Request<pb::DashboardRequest>,
    ) -> Result<Response<pb::DashboardResponse>, Status> {
        Ok(Response::new(match &self.dashboard {
            Dashboard::Serving { port, .. } => pb::DashboardResponse {
                url: self.dashboard.login_url().unwrap_or_default(),
                port: u32::from(*port),
                error: String::new(),
            },
            Dashboard::Off(why) => pb::DashboardResponse {
                url: String::new(),
                port: 0,
                error: why.clone(),
            },
        }))
    }
}
