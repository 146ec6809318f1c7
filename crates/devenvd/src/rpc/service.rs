use std::sync::Arc;

use devenv_api::pb::{self, service_service_server::ServiceService};
use devenv_core::engine::{Engine, EngineError};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::environment::up_event;
use super::ResponseStream;
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
        let env = convert::env_request(&self.engine, req.environment)?;
        super::record(&env, &req.services);
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

    type DevStream = ResponseStream<pb::UpEvent>;

    async fn dev(&self, req: Request<pb::DevRequest>) -> Result<Response<Self::DevStream>, Status> {
        let req = req.into_inner();
        if req.services.is_empty() {
            return Err(Status::invalid_argument(
                "name the service(s) to run in dev mode",
            ));
        }
        let env = convert::env_request(&self.engine, req.environment)?;
        super::record(&env, &req.services);
        let (tx, rx) = mpsc::channel(64);
        match self.engine.dev(env, req.services) {
            Ok(mut session) => {
                tokio::spawn(async move {
                    let mut client_gone = false;
                    while let Some(ev) = session.events.recv().await {
                        if !client_gone && tx.send(Ok(up_event(ev))).await.is_err() {
                            client_gone = true;
                        }
                    }
                    // Dev mode lasts while the client listens (Ctrl-C ends it):
                    // dropping the session hands its end to the engine.
                    tx.closed().await;
                    drop(session);
                });
            }
            Err(EngineError::Config(errors)) => {
                let ev = pb::UpEvent {
                    event: Some(pb::up_event::Event::Invalid(convert::invalid(&errors))),
                };
                let _ = tx.send(Ok(ev)).await;
            }
            Err(e) => return Err(convert::status(e)),
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
