//! `devenv status [--watch]`. The one-shot path is the hot path: one RPC, no extras.

use std::io::Write as _;

use devenv_api::pb::{
    self, environment_service_client::EnvironmentServiceClient, ListRequest, StatusRequest,
    WatchRequest,
};

use crate::cli::StatusArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::render::color::{paint, BOLD};
use crate::render::status;
use crate::stream::now_or_never;

/// Name column width for a line per change, so early lines line up with later ones.
const MIN_WIDTH: usize = 8;

pub async fn run(ctx: &Ctx, args: StatusArgs) -> Result {
    if args.all || (!args.watch && !ctx.in_project()) {
        return all(ctx).await;
    }
    let environment = Some(ctx.env_ref()?);
    let mut client = EnvironmentServiceClient::new(ctx.channel().await?);
    if args.watch {
        return watch(ctx, client, WatchRequest { environment }).await;
    }
    let reply = client
        .status(StatusRequest { environment })
        .await?
        .into_inner();
    let text = if ctx.out.json {
        format!("{}\n", status::json(&reply))
    } else if reply.services.is_empty() {
        if ctx.out.quiet {
            return Ok(());
        }
        let name = if reply.environment.is_empty() {
            "this project"
        } else {
            &reply.environment
        };
        format!("{name}: nothing running (start it with `devenv up`)\n")
    } else {
        status::table(&reply.services, ctx.out.color)
    };
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(())
}

/// `status --all`: each environment the daemon knows, a heading and its table.
async fn all(ctx: &Ctx) -> Result {
    let mut client = EnvironmentServiceClient::new(ctx.channel().await?);
    let list = client.list(ListRequest {}).await?.into_inner();
    let mut text = String::new();
    let mut docs = Vec::new();
    for e in &list.environments {
        let environment = Some(ctx.env_ref_at(&e.project, &e.env));
        let reply = client.status(StatusRequest { environment }).await;
        let heading = if e.env.is_empty() {
            format!("{} ({})", e.name, e.project)
        } else {
            format!("{} ({}, env {})", e.name, e.project, e.env)
        };
        match reply {
            Ok(reply) => {
                let reply = reply.into_inner();
                if ctx.out.json {
                    docs.push(serde_json::json!({
                        "env": e.env,
                        "status": serde_json::from_str::<serde_json::Value>(&status::json(&reply))
                            .unwrap_or_default(),
                    }));
                    continue;
                }
                text.push_str(&paint(ctx.out.color, BOLD, &heading));
                text.push('\n');
                if reply.services.is_empty() {
                    text.push_str("  nothing running\n");
                } else {
                    text.push_str(&status::table(&reply.services, ctx.out.color));
                }
            }
            // Its config may have broken since; say so and go on with the others.
            Err(e) if !ctx.out.json => {
                text.push_str(&paint(ctx.out.color, BOLD, &heading));
                text.push_str(&format!("\n  cannot show: {}\n", e.message()));
            }
            Err(_) => {}
        }
        text.push('\n');
    }
    if ctx.out.json {
        text = format!("{:#}\n", serde_json::json!({ "environments": docs }));
    } else if list.environments.is_empty() {
        if ctx.out.quiet {
            return Ok(());
        }
        text = "no environments (start one with `devenv up` in a project)\n".into();
    }
    std::io::stdout()
        .lock()
        .write_all(text.trim_end().as_bytes())?;
    std::io::stdout().lock().write_all(b"\n")?;
    Ok(())
}

async fn watch(
    ctx: &Ctx,
    mut client: EnvironmentServiceClient<tonic::transport::Channel>,
    request: WatchRequest,
) -> Result {
    let mut changes = client.watch(request).await?.into_inner();
    let redraw = ctx.out.stdout_tty && !ctx.out.json;
    let mut services: Vec<pb::ServiceStatus> = Vec::new();
    let mut dirty = false;
    let mut stdout = std::io::stdout().lock();
    loop {
        let next = match now_or_never(changes.message()) {
            Some(next) => next?,
            None => {
                if dirty {
                    // Home, clear, then the whole table: one frame per burst of changes.
                    let table = status::table(&services, ctx.out.color);
                    write!(stdout, "\x1b[H\x1b[2J{table}")?;
                    dirty = false;
                }
                stdout.flush()?;
                changes.message().await?
            }
        };
        let Some(change) = next else { break };
        let width = services
            .iter()
            .map(|s| s.name.len())
            .max()
            .unwrap_or(0)
            .max(MIN_WIDTH);
        if ctx.out.json {
            writeln!(stdout, "{}", status::json_line(&change))?;
        } else if redraw {
            dirty = true;
        } else {
            let width = width.max(change.name.len());
            writeln!(
                stdout,
                "{}",
                status::change_line(&change, width, ctx.out.color)
            )?;
        }
        match services.iter_mut().find(|s| s.name == change.name) {
            Some(slot) => *slot = change,
            None => services.push(change),
        }
    }
    stdout.flush()?;
    Ok(())
}
