//! `devenv validate`: located errors and exit 2, or `ok: name (n services)`.

use devenv_api::pb::{environment_service_client::EnvironmentServiceClient, ValidateRequest};

use crate::context::Ctx;
use crate::error::{CliError, Exit, Result};
use crate::render::config_errors;

pub async fn run(ctx: &Ctx) -> Result {
    let environment = Some(ctx.env_ref()?);
    let mut client = EnvironmentServiceClient::new(ctx.channel().await?);
    let reply = client
        .validate(ValidateRequest { environment })
        .await?
        .into_inner();
    if ctx.out.json {
        outln!("{}", config_errors::json(&reply));
    } else if reply.valid {
        if !reply.warnings.is_empty() {
            eprint!(
                "{}",
                config_errors::warnings(&reply.warnings, ctx.out.err_color)
            );
        }
        if !ctx.out.quiet {
            let n = reply.services.len();
            outln!(
                "ok: {} ({n} service{})",
                reply.name,
                if n == 1 { "" } else { "s" }
            );
        }
    } else {
        eprint!(
            "{}",
            config_errors::located(&reply.errors, ctx.out.err_color)
        );
    }
    if reply.valid {
        Ok(())
    } else {
        Err(CliError::Silent(Exit::Usage))
    }
}
