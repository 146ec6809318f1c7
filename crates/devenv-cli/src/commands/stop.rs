//! `devenv stop SERVICE...`.

use devenv_api::pb::{service_service_client::ServiceServiceClient, StopRequest};

use crate::cli::StopArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::render::status;

pub async fn run(ctx: &Ctx, args: StopArgs) -> Result {
    let environment = Some(ctx.env_ref()?);
    let mut client = ServiceServiceClient::new(ctx.channel().await?);
    let reply = client
        .stop(StopRequest {
            environment,
            services: args.services,
        })
        .await?
        .into_inner();
    // The changed services (stop: and the dependents now waiting for them).
    status::print_services(&ctx.out, &reply.services);
    Ok(())
}
