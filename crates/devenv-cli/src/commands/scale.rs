//! `devenv scale SERVICE N`.

use devenv_api::pb::{service_service_client::ServiceServiceClient, ScaleRequest};

use crate::cli::ScaleArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::render::status;

pub async fn run(ctx: &Ctx, args: ScaleArgs) -> Result {
    let environment = Some(ctx.env_ref()?);
    let mut client = ServiceServiceClient::new(ctx.channel().await?);
    let reply = client
        .scale(ScaleRequest {
            environment,
            service: args.service,
            replicas: args.replicas,
        })
        .await?
        .into_inner();
    let services: Vec<_> = reply.service.into_iter().collect();
    status::print_services(&ctx.out, &services);
    Ok(())
}
