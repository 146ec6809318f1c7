use std::sync::Arc;

use devenv_api::pb::{self, service_service_server::ServiceService};
use devenv_core::engine::Engine;
use tonic::{Request, Response, Status};

use crate::convert;

#[derive(Debug)]
pub struct Services {
    pub engine: Arc<Engine>,
}

#[tonic::async_trait]
impl ServiceService for Services {
    async fn restart(
        &self,
        req: Request<pb::RestartRequest>,
    ) -> Result<Response<pb::RestartResponse>, Status> {
        let req = req.into_inner();
        if req.services.is_empty() {
            return Err(Status::invalid_argument(
                "name at least one service to restart",
            ));
        }
        let env = convert::env_request(req.environment)?;
        let rt = self
            .engine
            .restart(&env, &req.services)
            .await
            .map_err(convert::status)?;
        let services = rt
            .statuses()
            .iter()
            .filter(|s| req.services.contains(&s.name))
            .map(convert::service_status)
            .collect();
        Ok(Response::new(pb::RestartResponse { services }))
    }
}
