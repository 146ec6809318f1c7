//! `devenv restart SERVICE...`.

use devenv_api::pb::{service_service_client::ServiceServiceClient, RestartRequest};

use crate::cli::RestartArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::render::status;

pub async fn run(ctx: &Ctx, args: RestartArgs) -> Result {
    let environment = Some(ctx.env_ref()?);
    let mut client = ServiceServiceClient::new(ctx.channel().await?);
    let reply = client
        .restart(RestartRequest {
            environment,
            services: args.services,
        })
        .await?
        .into_inner();
    status::print_services(&ctx.out, &reply.services);
    Ok(())
}
