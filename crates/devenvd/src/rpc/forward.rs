use std::sync::Arc;

use devenv_api::pb::{self, forward_service_server::ForwardService};
use devenv_core::engine::Engine;
use tonic::{Request, Response, Status};

use crate::convert;

#[derive(Debug)]
pub struct Forwards {
    pub engine: Arc<Engine>,
}

#[tonic::async_trait]
impl ForwardService for Forwards {
    /// Like `Status`: an environment the daemon has not started yet has no forwards
    /// (an empty list, not an error); a broken config is INVALID_ARGUMENT.
    async fn list(
        &self,
        req: Request<pb::ForwardListRequest>,
    ) -> Result<Response<pb::ForwardListResponse>, Status> {
        let rt = super::runtime(&self.engine, req.into_inner().environment)?;
        let forwards = rt.forwards().iter().map(convert::forward).collect();
        Ok(Response::new(pb::ForwardListResponse { forwards }))
    }
}
