//! `devenv forward ls`: port forwards of the environment's kubernetes services.

use devenv_api::pb::{forward_service_client::ForwardServiceClient, ForwardListRequest};

use crate::context::Ctx;
use crate::error::Result;
use crate::render::forward as render;

pub async fn ls(ctx: &Ctx) -> Result {
    let environment = Some(ctx.env_ref()?);
    let reply = ForwardServiceClient::new(ctx.channel().await?)
        .list(ForwardListRequest { environment })
        .await?
        .into_inner();
    if ctx.out.json {
        outln!("{}", render::json(&reply.forwards));
    } else if reply.forwards.is_empty() {
        if !ctx.out.quiet {
            outln!("no port forwards (kubernetes services with `forward:` get them while up)");
        }
    } else {
        print!("{}", render::table(&reply.forwards, ctx.out.color));
    }
    Ok(())
}
