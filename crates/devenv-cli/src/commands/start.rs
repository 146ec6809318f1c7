//! `devenv start SERVICE...`: an `up` of the services (progress and exit as `up`'s).

use devenv_api::pb::{service_service_client::ServiceServiceClient, StartRequest};

use crate::cli::StartArgs;
use crate::context::Ctx;
use crate::error::{CliError, Exit, Result};
use crate::render::progress::{self, Mode};

pub async fn run(ctx: &Ctx, args: StartArgs) -> Result {
    let environment = Some(ctx.env_ref()?);
    let mut client = ServiceServiceClient::new(ctx.channel().await?);
    let mut events = client
        .start(StartRequest {
            environment,
            services: args.services,
        })
        .await?
        .into_inner();
    let (result, view, mode) =
        super::up::progress_until_result(ctx, &mut events, "`start`").await?;
    if !result.ok {
        if mode != Mode::Json {
            eprint!(
                "{}",
                progress::failure_report(&result, &view, ctx.out.err_color)
            );
        }
        return Err(CliError::Silent(Exit::Failed));
    }
    if mode != Mode::Json && !ctx.out.quiet {
        outln!("{}", progress::success_line(&view, ctx.out.color));
    }
    Ok(())
}
