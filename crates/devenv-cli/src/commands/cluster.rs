//! `devenv cluster create|delete|ls|status`.

use devenv_api::pb::{
    cluster_service_client::ClusterServiceClient, ClusterListRequest, ClusterRequest,
};
use tonic::transport::Channel;

use crate::cli::ClusterCommand;
use crate::context::Ctx;
use crate::error::{CliError, Exit, Result};
use crate::render::cluster as render;
use crate::render::spinner::Spinner;

pub async fn run(ctx: &Ctx, cmd: ClusterCommand) -> Result {
    match cmd {
        ClusterCommand::Create(_) => create(ctx).await,
        ClusterCommand::Delete(_) => delete(ctx).await,
        ClusterCommand::Ls => ls(ctx).await,
        ClusterCommand::Status(_) => status(ctx).await,
    }
}

async fn client(ctx: &Ctx) -> Result<ClusterServiceClient<Channel>> {
    Ok(ClusterServiceClient::new(ctx.channel().await?))
}

/// What the external tool printed, for people (k3d's INFO lines).
fn print_output(ctx: &Ctx, output: &str) {
    if ctx.out.quiet {
        return;
    }
    for line in output.lines() {
        outln!("{line}");
    }
}

async fn create(ctx: &Ctx) -> Result {
    let environment = Some(ctx.env_ref()?);
    let mut client = client(ctx).await?;
    let spinner = Spinner::start(
        &ctx.out,
        "creating the k3d cluster (k3d cluster create --wait)",
    );
    let reply = client.create(ClusterRequest { environment }).await;
    let took = spinner.took();
    spinner.finish();
    let reply = reply?.into_inner();
    if ctx.out.json {
        outln!("{}", render::json(&reply, true));
        return Ok(());
    }
    print_output(ctx, &reply.output);
    if let Some(c) = reply.cluster.as_ref().filter(|_| !ctx.out.quiet) {
        if c.reachable {
            outln!(
                "k3d cluster `{}` is up ({took}): context {}, {}",
                c.name,
                c.context,
                c.message
            );
        } else {
            outln!(
                "k3d cluster `{}` ({took}): context {} does not answer yet: {}",
                c.name,
                c.context,
                c.message
            );
        }
    }
    Ok(())
}

async fn delete(ctx: &Ctx) -> Result {
    let environment = Some(ctx.env_ref()?);
    let mut client = client(ctx).await?;
    let spinner = Spinner::start(&ctx.out, "deleting the k3d cluster");
    let reply = client.delete(ClusterRequest { environment }).await;
    let took = spinner.took();
    spinner.finish();
    let reply = reply?.into_inner();
    if ctx.out.json {
        outln!("{}", render::json(&reply, true));
        return Ok(());
    }
    print_output(ctx, &reply.output);
    if let Some(c) = reply.cluster.as_ref().filter(|_| !ctx.out.quiet) {
        outln!("deleted k3d cluster `{}` ({took})", c.name);
    }
    Ok(())
}

async fn ls(ctx: &Ctx) -> Result {
    let reply = client(ctx)
        .await?
        .list(ClusterListRequest {})
        .await?
        .into_inner();
    if ctx.out.json {
        outln!("{}", render::list_json(&reply.clusters));
    } else if reply.clusters.is_empty() {
        if !ctx.out.quiet {
            outln!("no clusters created by devenv (create one with `devenv cluster create`)");
        }
    } else {
        print!(
            "{}",
            render::list_table(&reply.clusters, std::time::SystemTime::now(), ctx.out.color)
        );
    }
    Ok(())
}

/// Exit 1 when the API server does not answer, so that scripts can test it; the
/// reason is in the output (the table's MESSAGE, or `message` in JSON).
async fn status(ctx: &Ctx) -> Result {
    let environment = Some(ctx.env_ref()?);
    let reply = client(ctx)
        .await?
        .status(ClusterRequest { environment })
        .await?
        .into_inner();
    let cluster = reply.cluster.clone().unwrap_or_default();
    if ctx.out.json {
        outln!("{}", render::json(&reply, false));
    } else if !ctx.out.quiet {
        print!("{}", render::status_table(&cluster, ctx.out.color));
    }
    if cluster.reachable {
        Ok(())
    } else {
        Err(CliError::Silent(Exit::Failed))
    }
}
