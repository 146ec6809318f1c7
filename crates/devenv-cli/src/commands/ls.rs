//! `devenv ls`: environments known to the daemon.

use devenv_api::pb::{environment_service_client::EnvironmentServiceClient, ListRequest};

use crate::context::Ctx;
use crate::error::Result;
use crate::render::table;

pub async fn run(ctx: &Ctx) -> Result {
    let mut client = EnvironmentServiceClient::new(ctx.channel().await?);
    let reply = client.list(ListRequest {}).await?.into_inner();
    if ctx.out.json {
        let envs: Vec<_> = reply
            .environments
            .iter()
            .map(|e| {
                serde_json::json!({
                    "name": e.name, "project": e.project, "env": e.env,
                    "services": e.services, "ready": e.ready, "running": e.running,
                    "version": (!e.version.is_empty()).then_some(&e.version),
                })
            })
            .collect();
        outln!("{:#}", serde_json::json!({ "environments": envs }));
        return Ok(());
    }
    if reply.environments.is_empty() {
        if !ctx.out.quiet {
            outln!("no environments (start one with `devenv up`)");
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = reply
        .environments
        .iter()
        .map(|e| {
            vec![
                e.name.clone(),
                e.project.clone(),
                if e.env.is_empty() {
                    "-".into()
                } else {
                    e.env.clone()
                },
                if e.version.is_empty() {
                    "-".into()
                } else {
                    e.version.clone()
                },
                e.services.to_string(),
                e.ready.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["NAME", "PROJECT", "ENV", "VERSION", "SERVICES", "READY"],
            &rows
        )
    );
    Ok(())
}
