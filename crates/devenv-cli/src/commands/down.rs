//! `devenv down [--volumes]`.

use devenv_api::pb::{environment_service_client::EnvironmentServiceClient, DownRequest};

use crate::cli::DownArgs;
use crate::context::Ctx;
use crate::error::Result;

pub async fn run(ctx: &Ctx, args: DownArgs) -> Result {
    let environment = Some(ctx.env_ref()?);
    let mut client = EnvironmentServiceClient::new(ctx.channel().await?);
    let reply = client
        .down(DownRequest {
            environment,
            volumes: args.volumes,
        })
        .await?
        .into_inner();
    if ctx.out.json {
        outln!("{}", serde_json::json!({ "stopped": reply.stopped }));
    } else if ctx.out.quiet {
    } else if reply.stopped.is_empty() {
        outln!("nothing was running");
    } else {
        for name in &reply.stopped {
            outln!("stopped {name}");
        }
    }
    Ok(())
}
