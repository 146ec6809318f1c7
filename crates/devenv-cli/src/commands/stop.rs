//! `devenv stop SERVICE...`.

use devenv_api::pb::{service_service_client::ServiceServiceClient, StopRequest};

use crate::cli::StopArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::render::status::{self, ServiceJson};

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
    if ctx.out.json {
        let services: Vec<_> = reply.services.iter().map(ServiceJson::from).collect();
        outln!("{}", serde_json::json!({ "services": services }));
    } else if !ctx.out.quiet {
        // The stopped services and the dependents now waiting for them.
        print!("{}", status::table(&reply.services, ctx.out.color));
    }
    Ok(())
}
