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
        outln!(
            "{}",
            serde_json::json!({
                "stopped": reply.stopped,
                "deleted": reply.deleted,
                "keptVolumes": reply.kept_volumes,
                "restored": reply.restored,
                "removedData": reply.removed_data,
                "namespaceRemoved": (!reply.namespace_removed.is_empty()).then_some(&reply.namespace_removed),
            })
        );
    } else if ctx.out.quiet {
    } else {
        if reply.stopped.is_empty() && reply.deleted.is_empty() && reply.removed_data.is_empty() {
            outln!("nothing was running");
        }
        for name in &reply.stopped {
            outln!("stopped {name}");
        }
        for w in &reply.restored {
            outln!("restored {w} from dev mode");
        }
        if !reply.deleted.is_empty() {
            outln!("deleted {} cluster object(s)", reply.deleted.len());
        }
        if !reply.removed_data.is_empty() {
            outln!(
                "removed the local data of {}",
                reply.removed_data.join(", ")
            );
        }
        if !reply.namespace_removed.is_empty() {
            outln!("removed namespace {}", reply.namespace_removed);
        }
        if !reply.kept_volumes.is_empty() {
            outln!(
                "kept volume(s) {} (use `devenv down --volumes` to delete them)",
                reply.kept_volumes.join(", ")
            );
        }
    }
    Ok(())
}
