//! `devenv snapshot save|restore|ls|rm|diff`.
//!
//! Save and restore stream the daemon's steps (stderr), a bar per data set with bytes
//! and rate on a terminal (else one line per data set when it is done), then a
//! summary. `--json`: one JSON object per line, `{"step": ..}`, `{"progress":
//! {"dataset", "doneBytes", "totalBytes"}}` (at most 4 a second), then `{"done":
//! SNAPSHOT}`; ls, rm and diff print one JSON document.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use devenv_api::pb::{
    self, snapshot_event::Event, snapshot_service_client::SnapshotServiceClient,
    SnapshotDiffRequest, SnapshotListRequest, SnapshotRemoveRequest, SnapshotRestoreRequest,
    SnapshotSaveRequest,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use tonic::transport::Channel;

use crate::cli::{SnapshotCommand, SnapshotNameArgs};
use crate::context::Ctx;
use crate::error::{CliError, Result};

pub async fn run(ctx: &Ctx, cmd: SnapshotCommand) -> Result {
    match cmd {
        SnapshotCommand::Save(a) => save(ctx, a).await,
        SnapshotCommand::Restore(a) => restore(ctx, a).await,
        SnapshotCommand::Ls(_) => ls(ctx).await,
        SnapshotCommand::Rm(a) => rm(ctx, a).await,
        SnapshotCommand::Diff(a) => diff(ctx, a).await,
    }
}

async fn client(ctx: &Ctx) -> Result<SnapshotServiceClient<Channel>> {
    Ok(SnapshotServiceClient::new(ctx.channel().await?))
}

fn required(a: SnapshotNameArgs, what: &str) -> Result<String> {
    a.name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| CliError::usage(anyhow::anyhow!("name the snapshot to {what}")))
}

async fn save(ctx: &Ctx, a: SnapshotNameArgs) -> Result {
    let environment = Some(ctx.env_ref()?);
    let stream = client(ctx)
        .await?
        .save(SnapshotSaveRequest {
            environment,
            name: a.name.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let info = follow(ctx, stream).await?;
    if !ctx.out.json && !ctx.out.quiet {
        outln!(
            "saved snapshot {}: {} in {} data set(s), {} new in the store, {:.1}s",
            info.name,
            bytes(info.bytes),
            info.datasets.len(),
            bytes(info.stored_bytes),
            info.seconds
        );
        if !info.message.is_empty() {
            outln!("services stopped for the copy: {}", info.message);
        }
    }
    Ok(())
}

async fn restore(ctx: &Ctx, a: SnapshotNameArgs) -> Result {
    let name = required(a, "restore")?;
    let environment = Some(ctx.env_ref()?);
    let stream = client(ctx)
        .await?
        .restore(SnapshotRestoreRequest { environment, name })
        .await?
        .into_inner();
    let info = follow(ctx, stream).await?;
    if !ctx.out.json && !ctx.out.quiet {
        for note in info.notes.iter().filter(|n| n.contains("config changed")) {
            outln!("note: {note}");
        }
        outln!(
            "restored snapshot {} ({}) in {:.1}s; {}",
            info.name,
            bytes(info.bytes),
            info.seconds,
            info.message
        );
    }
    Ok(())
}

/// Renders a save's or restore's events; returns its summary.
async fn follow(
    ctx: &Ctx,
    mut stream: tonic::Streaming<pb::SnapshotEvent>,
) -> Result<pb::SnapshotInfo> {
    let tty = ctx.out.stderr_tty && !ctx.out.json && !ctx.out.quiet;
    let mut bars: HashMap<String, (ProgressBar, Instant, u64)> = HashMap::new();
    let mut last_json = Instant::now() - Duration::from_secs(1);
    let finish = |bars: &mut HashMap<String, (ProgressBar, Instant, u64)>, ctx: &Ctx| {
        for (id, (bar, started, done)) in bars.drain() {
            bar.finish_and_clear();
            if !ctx.out.json && !ctx.out.quiet {
                let secs = started.elapsed().as_secs_f64().max(0.001);
                eprintln!(
                    "  {id}: {} in {secs:.1}s ({}/s)",
                    bytes(done),
                    bytes((done as f64 / secs) as u64)
                );
            }
        }
    };
    while let Some(ev) = stream.message().await? {
        match ev.event {
            Some(Event::Step(step)) => {
                finish(&mut bars, ctx);
                if ctx.out.json {
                    outln!("{}", json!({ "step": step }));
                } else if !ctx.out.quiet {
                    eprintln!("{step}");
                }
            }
            Some(Event::Progress(p)) => {
                if ctx.out.json {
                    if last_json.elapsed() >= Duration::from_millis(250)
                        || p.done_bytes == p.total_bytes
                    {
                        last_json = Instant::now();
                        outln!(
                            "{}",
                            json!({ "progress": { "dataset": p.dataset, "doneBytes": p.done_bytes, "totalBytes": p.total_bytes } })
                        );
                    }
                    continue;
                }
                let entry = bars.entry(p.dataset.clone()).or_insert_with(|| {
                    let bar = if tty {
                        let bar = ProgressBar::with_draw_target(
                            Some(p.total_bytes),
                            ProgressDrawTarget::stderr(),
                        );
                        bar.set_style(
                            ProgressStyle::with_template(
                                "  {prefix} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} {eta}",
                            )
                            .unwrap_or_else(|_| ProgressStyle::default_bar())
                            .progress_chars("=> "),
                        );
                        bar.set_prefix(p.dataset.clone());
                        bar
                    } else {
                        ProgressBar::hidden()
                    };
                    (bar, Instant::now(), 0)
                });
                entry.0.set_position(p.done_bytes);
                entry.2 = p.done_bytes;
            }
            Some(Event::Done(info)) => {
                finish(&mut bars, ctx);
                if ctx.out.json {
                    outln!("{}", json!({ "done": info_json(&info) }));
                }
                return Ok(info);
            }
            None => {}
        }
    }
    Err(anyhow::anyhow!("the daemon ended the stream without a result").into())
}

fn info_json(i: &pb::SnapshotInfo) -> serde_json::Value {
    json!({
        "name": i.name,
        "created": i.created.as_ref().map(|t| t.seconds),
        "bytes": i.bytes,
        "storedBytes": i.stored_bytes,
        "datasets": i.datasets.iter().map(|d| json!({"id": d.id, "bytes": d.bytes, "entries": d.entries})).collect::<Vec<_>>(),
        "dev": i.dev,
        "notes": i.notes,
        "seconds": i.seconds,
        "message": i.message,
    })
}

async fn ls(ctx: &Ctx) -> Result {
    let environment = Some(ctx.env_ref()?);
    let reply = client(ctx)
        .await?
        .list(SnapshotListRequest { environment })
        .await?
        .into_inner();
    if ctx.out.json {
        let doc = json!({
            "snapshots": reply.snapshots.iter().map(info_json).collect::<Vec<_>>(),
            "storeBytes": reply.store_bytes,
        });
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(());
    }
    if reply.snapshots.is_empty() {
        outln!("no snapshots (`devenv snapshot save [NAME]` makes one)");
        return Ok(());
    }
    outln!(
        "{:<28} {:<20} {:>10} {:>10}  DATA SETS",
        "NAME",
        "CREATED",
        "DATA",
        "STORED"
    );
    for s in &reply.snapshots {
        let created = s
            .created
            .as_ref()
            .and_then(|t| u64::try_from(t.seconds).ok())
            .map(|secs| {
                humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(secs))
                    .to_string()
            })
            .unwrap_or_default();
        let sets: Vec<&str> = s.datasets.iter().map(|d| d.id.as_str()).collect();
        outln!(
            "{:<28} {:<20} {:>10} {:>10}  {}",
            s.name,
            created,
            bytes(s.bytes),
            bytes(s.stored_bytes),
            sets.join(", ")
        );
    }
    outln!(
        "store: {} on disk (chunks are shared between snapshots)",
        bytes(reply.store_bytes)
    );
    Ok(())
}

async fn rm(ctx: &Ctx, a: SnapshotNameArgs) -> Result {
    let name = required(a, "remove")?;
    let environment = Some(ctx.env_ref()?);
    let reply = client(ctx)
        .await?
        .remove(SnapshotRemoveRequest {
            environment,
            name: name.clone(),
        })
        .await?
        .into_inner();
    if ctx.out.json {
        outln!(
            "{}",
            json!({ "removed": name, "freedBytes": reply.freed_bytes })
        );
    } else if !ctx.out.quiet {
        outln!(
            "removed snapshot {name}; freed {}",
            bytes(reply.freed_bytes)
        );
    }
    Ok(())
}

async fn diff(ctx: &Ctx, a: SnapshotNameArgs) -> Result {
    let name = required(a, "compare with")?;
    let environment = Some(ctx.env_ref()?);
    let d = client(ctx)
        .await?
        .diff(SnapshotDiffRequest { environment, name })
        .await?
        .into_inner();
    if ctx.out.json {
        let doc = json!({
            "name": d.name,
            "config": d.config,
            "devThen": d.dev_then,
            "devNow": d.dev_now,
            "datasets": d.datasets.iter().map(|x| json!({
                "id": x.id, "added": x.added, "removed": x.removed, "changed": x.changed,
                "bytesThen": x.bytes_then, "bytesNow": x.bytes_now,
            })).collect::<Vec<_>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return Ok(());
    }
    if d.config.is_empty() {
        outln!("config: unchanged");
    } else {
        outln!("config:");
        for line in &d.config {
            outln!("  {line}");
        }
    }
    if d.dev_then != d.dev_now {
        outln!(
            "dev mode: then [{}], now [{}]",
            d.dev_then.join(", "),
            d.dev_now.join(", ")
        );
    }
    for x in &d.datasets {
        if x.added.is_empty() && x.removed.is_empty() && x.changed.is_empty() {
            outln!("{}: unchanged ({})", x.id, bytes(x.bytes_now));
            continue;
        }
        outln!(
            "{}: {} added, {} removed, {} changed ({} -> {})",
            x.id,
            x.added.len(),
            x.removed.len(),
            x.changed.len(),
            bytes(x.bytes_then),
            bytes(x.bytes_now)
        );
        if ctx.out.verbose > 0 {
            for (mark, list) in [("+", &x.added), ("-", &x.removed), ("~", &x.changed)] {
                for p in list {
                    outln!("  {mark} {p}");
                }
            }
        }
    }
    Ok(())
}

fn bytes(n: u64) -> String {
    indicatif::BinaryBytes(n).to_string()
}
