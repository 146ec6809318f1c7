use std::sync::Arc;

use devenv_api::pb::{self, service_service_server::ServiceService};
use devenv_core::engine::{
    Engine, EngineError, ExecInput, ExecOutput, ExecSpec, TermSize, STDIN_MAX,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status, Streaming};

use super::environment::{up_event, up_stream};
use super::ResponseStream;
use crate::convert;

#[derive(Debug)]
pub struct Services {
    pub engine: Arc<Engine>,
    /// Where the local router listens, for the services' URLs in progress events.
    pub router: crate::router::RouterState,
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

    async fn stop(
        &self,
        req: Request<pb::StopRequest>,
    ) -> Result<Response<pb::StopResponse>, Status> {
        let req = req.into_inner();
        if req.services.is_empty() {
            return Err(Status::invalid_argument(
                "name at least one service to stop",
            ));
        }
        let env = convert::env_request(&self.engine, req.environment)?;
        super::record(&env, &req.services);
        let rt = self
            .engine
            .stop(&env, &req.services)
            .await
            .map_err(convert::status)?;
        let waiting = rt.waiting_for_any(&req.services);
        let services = rt
            .statuses()
            .iter()
            .filter(|s| req.services.contains(&s.name) || waiting.contains(&s.name))
            .map(convert::service_status)
            .collect();
        Ok(Response::new(pb::StopResponse { services }))
    }

    type StartStream = ResponseStream<pb::UpEvent>;

    async fn start(
        &self,
        req: Request<pb::StartRequest>,
    ) -> Result<Response<Self::StartStream>, Status> {
        let req = req.into_inner();
        if req.services.is_empty() {
            return Err(Status::invalid_argument(
                "name at least one service to start",
            ));
        }
        let env = convert::env_request(&self.engine, req.environment)?;
        super::record(&env, &req.services);
        let started = self.engine.start_services(env, req.services);
        Ok(Response::new(up_stream(started, self.router.clone())?))
    }

    async fn scale(
        &self,
        req: Request<pb::ScaleRequest>,
    ) -> Result<Response<pb::ScaleResponse>, Status> {
        let req = req.into_inner();
        if req.service.is_empty() {
            return Err(Status::invalid_argument("name the service to scale"));
        }
        let env = convert::env_request(&self.engine, req.environment)?;
        super::record(&env, std::slice::from_ref(&req.service));
        let rt = self
            .engine
            .scale(&env, &req.service, req.replicas)
            .await
            .map_err(convert::status)?;
        let service = rt
            .shared
            .status_of(&req.service)
            .map(|s| convert::service_status(&s));
        Ok(Response::new(pb::ScaleResponse { service }))
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
                let router = self.router.clone();
                tokio::spawn(async move {
                    let mut client_gone = false;
                    while let Some(ev) = session.events.recv().await {
                        let config = session.env.config();
                        let ev = up_event(ev, config.as_deref(), &router);
                        if !client_gone && tx.send(Ok(ev)).await.is_err() {
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

    type ExecStream = ResponseStream<pb::ExecOutput>;

    async fn exec(
        &self,
        req: Request<Streaming<pb::ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let mut inbound = req.into_inner();
        let first = inbound.message().await?;
        let Some(pb::ExecInput {
            input: Some(pb::exec_input::Input::Start(start)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the first message of Exec must be an ExecStart",
            ));
        };
        if start.service.is_empty() && start.workspace.is_empty() {
            return Err(Status::invalid_argument(
                "name the service (or workspace) to exec into",
            ));
        }
        let env = convert::env_request(&self.engine, start.environment)?;
        super::record(&env, std::slice::from_ref(&start.service));
        let workspace = start.workspace;
        let spec = ExecSpec {
            service: start.service,
            command: start.command,
            tty: start.tty,
            stdin: start.stdin,
            container: (!start.container.is_empty()).then_some(start.container),
            pod: (!start.pod.is_empty()).then_some(start.pod),
            size: start.size.map(term_size),
        };
        let session = if workspace.is_empty() {
            self.engine.exec(&env, spec).await
        } else {
            self.engine.workspace_exec(&env, &workspace, spec).await
        }
        .map_err(convert::status)?;
        let input = session.input;
        // Ends with the client's stream or with the session (its input dropped).
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = inbound.message() => m,
                    () = input.closed() => return,
                };
                let msg = match msg {
                    Ok(Some(pb::ExecInput { input: Some(m) })) => m,
                    Ok(Some(_)) => continue,
                    // The client half-closed: end of input. A reset client is seen by
                    // the session as its output going away.
                    Ok(None) | Err(_) => return,
                };
                let to = match msg {
                    pb::exec_input::Input::Stdin(b) if b.len() > STDIN_MAX => {
                        tracing::warn!(
                            bytes = b.len(),
                            "exec: stdin message over {STDIN_MAX} bytes; input ends"
                        );
                        return;
                    }
                    pb::exec_input::Input::Stdin(b) => ExecInput::Stdin(b),
                    pb::exec_input::Input::Resize(s) => ExecInput::Resize(term_size(s)),
                    pb::exec_input::Input::CloseStdin(_) => ExecInput::Eof,
                    pb::exec_input::Input::Start(_) => continue,
                };
                if input.send(to).await.is_err() {
                    return;
                }
            }
        });
        let output = ReceiverStream::new(session.output).map(|o| {
            let output = match o {
                ExecOutput::Stdout(b) => pb::exec_output::Output::Stdout(b),
                ExecOutput::Stderr(b) => pb::exec_output::Output::Stderr(b),
                ExecOutput::Exit { code, message } => pb::exec_output::Output::Exit(pb::ExecExit {
                    code,
                    message: message.unwrap_or_default(),
                }),
            };
            Ok(pb::ExecOutput {
                output: Some(output),
            })
        });
        Ok(Response::new(Box::pin(output)))
    }
}

fn term_size(s: pb::TerminalSize) -> TermSize {
    let clamp = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
    TermSize {
        rows: clamp(s.rows),
        cols: clamp(s.cols),
    }
}
