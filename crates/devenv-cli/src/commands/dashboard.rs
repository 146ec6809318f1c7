//! `devenv dashboard [--no-open]`: the web dashboard's URL (with this daemon's
//! token, which the page exchanges for a session cookie), opened in the browser.

use std::process::{Command, Stdio};

use anyhow::anyhow;
use devenv_api::pb::daemon_service_client::DaemonServiceClient;
use devenv_api::pb::DashboardRequest;

use crate::cli::DashboardArgs;
use crate::context::Ctx;
use crate::error::Result;

pub async fn run(ctx: &Ctx, args: DashboardArgs) -> Result {
    let reply = DaemonServiceClient::new(ctx.channel().await?)
        .dashboard(DashboardRequest {})
        .await?
        .into_inner();
    if reply.url.is_empty() {
        if ctx.out.json {
            outln!(
                "{:#}",
                serde_json::json!({"url": null, "port": null, "error": reply.error})
            );
        }
        return Err(anyhow!("{}", reply.error).into());
    }
    if ctx.out.json {
        outln!(
            "{:#}",
            serde_json::json!({"url": reply.url, "port": reply.port})
        );
    } else {
        outln!("{}", reply.url);
    }
    if !args.no_open {
        if let Err(e) = open(&reply.url) {
            eprintln!("could not open a browser ({e}); open the URL above yourself");
        }
    }
    Ok(())
}

/// Hands the URL to the desktop's opener, without waiting for the browser.
fn open(url: &str) -> std::io::Result<()> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    // Not waited for: the opener may live as long as the browser it starts; when
    // this process exits, init reaps it.
    Command::new(opener)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{opener}: {e}")))
}
