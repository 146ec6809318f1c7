//! `devenv sync status` and `devenv sync verify`.
//!
//! `--json` contracts (add fields, never rename):
//! status: `{"sessions": [{"service", "pod", "container", "local_dir", "remote_dir",
//! "phase", "connected", "last_sync" (RFC 3339 or null), "last_latency_ms", "files",
//! "bytes", "deleted", "errors", "last_error" (or null), "notice" (or null)}]}`;
//! verify: `{"in_sync": bool, "results": [{"service", "pod", "local_dir", "remote_dir",
//! "in_sync", "difference_count", "differences": [..], "error" (or null)}]}`.

use devenv_api::pb::{
    sync_service_client::SyncServiceClient, SyncStatusRequest, SyncVerifyRequest,
};
use serde_json::json;

use crate::cli::SyncVerifyArgs;
use crate::context::Ctx;
use crate::error::{CliError, Exit, Result};
use crate::render::color::{paint, GREEN, RED, YELLOW};
use crate::render::{table, time};

fn opt(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

pub async fn status(ctx: &Ctx) -> Result {
    let environment = Some(ctx.env_ref()?);
    let reply = SyncServiceClient::new(ctx.channel().await?)
        .status(SyncStatusRequest { environment })
        .await?
        .into_inner();
    if ctx.out.json {
        let sessions: Vec<_> = reply
            .sessions
            .iter()
            .map(|s| {
                json!({
                    "service": s.service, "pod": s.pod, "container": s.container,
                    "local_dir": s.local_dir, "remote_dir": s.remote_dir, "phase": s.phase,
                    "connected": s.connected,
                    "last_sync": s.last_sync.as_ref().map(|t| time::rfc3339(Some(t))),
                    "last_latency_ms": s.last_latency_ms, "files": s.files, "bytes": s.bytes,
                    "deleted": s.deleted, "errors": s.errors, "last_error": opt(&s.last_error),
                    "notice": opt(&s.notice),
                })
            })
            .collect();
        outln!("{}", json!({ "sessions": sessions }));
        return Ok(());
    }
    if reply.sessions.is_empty() {
        if !ctx.out.quiet {
            outln!("no sync sessions (services with `dev.sync` get them in dev mode: `devenv dev SERVICE` or `devenv up --dev`)");
        }
        return Ok(());
    }
    let now = std::time::SystemTime::now();
    let rows: Vec<Vec<String>> = reply
        .sessions
        .iter()
        .map(|s| {
            let phase = match s.phase.as_str() {
                "watching" if s.connected => paint(ctx.out.color, GREEN, "watching"),
                "watching" | "connecting" | "syncing" => paint(ctx.out.color, YELLOW, &s.phase),
                other => paint(ctx.out.color, RED, other),
            };
            let last = s
                .last_sync
                .as_ref()
                .and_then(time::to_system_time)
                .and_then(|t| now.duration_since(t).ok())
                .map(|d| format!("{} ago", time::short_duration(d)))
                .unwrap_or_else(|| "-".into());
            vec![
                s.service.clone(),
                s.pod.clone(),
                format!("{} -> {}", s.local_dir, s.remote_dir),
                phase,
                last,
                format!("{:.0} ms", s.last_latency_ms),
                s.files.to_string(),
                s.bytes.to_string(),
                s.deleted.to_string(),
                s.errors.to_string(),
                [&s.last_error, &s.notice]
                    .into_iter()
                    .filter(|m| !m.is_empty())
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &[
                "SERVICE",
                "POD",
                "SYNC",
                "STATE",
                "LAST SYNC",
                "LATENCY",
                "FILES",
                "BYTES",
                "DELETED",
                "ERRORS",
                "LAST ERROR / NOTICE"
            ],
            &rows
        )
    );
    Ok(())
}

pub async fn verify(ctx: &Ctx, args: SyncVerifyArgs) -> Result {
    let environment = Some(ctx.env_ref()?);
    let reply = SyncServiceClient::new(ctx.channel().await?)
        .verify(SyncVerifyRequest {
            environment,
            services: args.services,
        })
        .await?
        .into_inner();
    let all = !reply.results.is_empty() && reply.results.iter().all(|r| r.in_sync);
    if ctx.out.json {
        let results: Vec<_> = reply
            .results
            .iter()
            .map(|r| {
                json!({
                    "service": r.service, "pod": r.pod, "local_dir": r.local_dir,
                    "remote_dir": r.remote_dir, "in_sync": r.in_sync,
                    "difference_count": r.difference_count, "differences": r.differences,
                    "error": opt(&r.error),
                })
            })
            .collect();
        outln!("{}", json!({ "in_sync": all, "results": results }));
    } else if reply.results.is_empty() {
        eprintln!("nothing to verify: no pod is syncing yet");
    } else {
        for r in &reply.results {
            let what = format!(
                "{} pod {}: {} -> {}",
                r.service, r.pod, r.local_dir, r.remote_dir
            );
            if !r.error.is_empty() {
                outln!(
                    "{what}: {}",
                    paint(ctx.out.color, RED, &format!("error: {}", r.error))
                );
            } else if r.in_sync {
                outln!("{what}: {}", paint(ctx.out.color, GREEN, "in sync"));
            } else {
                outln!(
                    "{what}: {}",
                    paint(
                        ctx.out.color,
                        RED,
                        &format!("{} difference(s)", r.difference_count)
                    )
                );
                for d in &r.differences {
                    outln!("  {d}");
                }
                if r.difference_count as usize > r.differences.len() {
                    outln!(
                        "  ... and {} more",
                        r.difference_count as usize - r.differences.len()
                    );
                }
            }
        }
    }
    if all {
        Ok(())
    } else {
        Err(CliError::Silent(Exit::Failed))
    }
}
