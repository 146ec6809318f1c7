//! `devenv scale SERVICE N`.

use devenv_api::pb::{service_service_client::ServiceServiceClient, ScaleRequest};

use crate::cli::ScaleArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::render::status::{self, ServiceJson};

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
    if ctx.out.json {
        let services: Vec<_> = services.iter().map(ServiceJson::from).collect();
        outln!("{}", serde_json::json!({ "services": services }));
    } else if !ctx.out.quiet {
        print!("{}", status::table(&services, ctx.out.color));
    }
    Ok(())
}
