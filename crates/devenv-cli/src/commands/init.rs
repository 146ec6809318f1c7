//! `devenv init`: ask the daemon for a starter config, write it into the project.

use anyhow::{anyhow, Context as _};
use devenv_api::pb::{environment_service_client::EnvironmentServiceClient, InitRequest};

use crate::cli::InitArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result};

pub async fn run(ctx: &Ctx, args: InitArgs) -> Result {
    let dir = ctx.project_dir()?;
    let target = dir.join(".devenv").join("config.yml");
    if target.exists() && !args.force {
        return Err(CliError::usage(anyhow!(
            "{} already exists; use --force to overwrite it",
            target.display()
        )));
    }
    let mut client = EnvironmentServiceClient::new(ctx.channel().await?);
    let reply = client
        .init(InitRequest {
            dir: dir.to_string_lossy().into_owned(),
        })
        .await?
        .into_inner();
    let parent = target.parent().expect("has .devenv");
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    std::fs::write(&target, &reply.yaml)
        .with_context(|| format!("cannot write {}", target.display()))?;

    if ctx.out.json {
        let doc = serde_json::json!({ "path": target, "detected": reply.detected });
        outln!("{doc}");
    } else if !ctx.out.quiet {
        let detected = if reply.detected.is_empty() {
            "generic"
        } else {
            &reply.detected
        };
        outln!("detected: {detected} project");
        outln!("wrote {}", target.display());
        outln!();
        outln!("next steps:");
        outln!("  edit .devenv/config.yml to describe your services");
        outln!("  devenv validate    check it");
        outln!("  devenv up          start everything");
    }
    Ok(())
}
