//! `TerraformService`: `devenv tf plan|apply`. The logic is the engine's
//! (`devenv_core::engine::tfcmd`); this maps the stream both ways.

use std::sync::Arc;

use devenv_api::pb::{self, terraform_service_server::TerraformService};
use devenv_core::engine::tfcmd::{TfDone, TfMsg};
use devenv_core::engine::Engine;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;
use tonic::{Request, Response, Status, Streaming};

use super::ResponseStream;
use crate::convert;

#[derive(Debug)]
pub struct Terraform {
    pub engine: Arc<Engine>,
}

fn done(d: TfDone) -> pb::TerraformDone {
    pb::TerraformDone {
        ok: d.ok,
        applied: d.applied,
        message: d.message,
        services: d.services.iter().map(convert::service_status).collect(),
    }
}

#[tonic::async_trait]
impl TerraformService for Terraform {
    type RunStream = ResponseStream<pb::TerraformOutput>;

    async fn run(
        &self,
        req: Request<Streaming<pb::TerraformInput>>,
    ) -> Result<Response<Self::RunStream>, Status> {
        let mut inbound = req.into_inner();
        let Some(pb::TerraformInput {
            input: Some(pb::terraform_input::Input::Start(start)),
        }) = inbound.message().await?
        else {
            return Err(Status::invalid_argument(
                "the first message of Run must be a TerraformStart",
            ));
        };
        if start.service.is_empty() {
            return Err(Status::invalid_argument("name the terraform service"));
        }
        let env = convert::env_request(&self.engine, start.environment)?;
        super::record(&env, std::slice::from_ref(&start.service));
        let session = self
            .engine
            .terraform(env, start.service, start.apply)
            .map_err(convert::status)?;
        let confirm = session.confirm;
        // The answer: the first `confirm`; a client that closes or goes away without
        // one declines (the sender dropped).
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(pb::TerraformInput {
                        input: Some(pb::terraform_input::Input::Confirm(yes)),
                    })) => {
                        let _ = confirm.send(yes);
                        return;
                    }
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return,
                }
            }
        });
        use pb::terraform_output::Output;
        let stream = ReceiverStream::new(session.events).map(|m| {
            let output = match m {
                TfMsg::Line(l) => Output::Line(l),
                TfMsg::Plan { summary, changes } => Output::Plan(pb::TerraformPlan {
                    summary: summary.describe(),
                    add: summary.add,
                    change: summary.change,
                    destroy: summary.destroy,
                    outputs: summary.outputs,
                    changes,
                }),
                TfMsg::Done(d) => Output::Done(done(d)),
            };
            Ok(pb::TerraformOutput {
                output: Some(output),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
