//! `devenv workspace create|start|stop|delete|ls|status|shell|exec|forward|sync NAME`.
//! Shell and exec are `devenv exec`'s stream with the workspace named
//! (`commands/exec.rs`). `--json`: one workspace object (`create`, `start`, `stop`,
//! `status`), `{"workspaces": [..]}` (`ls`), `{"deleted", "keptVolumes"}` (`delete`),
//! `{"localPort", "remotePort", "pod"}` (`forward`, first line), `{"line"}` per line
//! (`sync`).

use devenv_api::pb::{
    self, workspace_service_client::WorkspaceServiceClient, WorkspaceDeleteRequest,
    WorkspaceForwardRequest, WorkspaceListRequest, WorkspaceRequest,
};
use serde_json::json;
use tonic::transport::Channel;

use crate::cli::{WorkspaceArgs, WorkspaceCommand};
use crate::context::Ctx;
use crate::error::{CliError, Exit, Result};
use crate::render::spinner::Spinner;
use crate::render::table;
use crate::render::time::{rfc3339, short_duration, to_system_time};

pub async fn run(ctx: &Ctx, cmd: WorkspaceCommand) -> Result {
    match cmd {
        WorkspaceCommand::Create(a) => one(ctx, a, Op::Create).await,
        WorkspaceCommand::Start(a) => one(ctx, a, Op::Start).await,
        WorkspaceCommand::Stop(a) => one(ctx, a, Op::Stop).await,
        WorkspaceCommand::Status(a) => one(ctx, a, Op::Status).await,
        WorkspaceCommand::Delete(a) => delete(ctx, a.target, a.volumes).await,
        WorkspaceCommand::Ls(a) => ls(ctx, a.all).await,
        WorkspaceCommand::Shell(a) => {
            super::exec::in_workspace(ctx, a.name, Vec::new(), true, None).await
        }
        WorkspaceCommand::Exec(a) => {
            super::exec::in_workspace(ctx, a.target.name, a.command, a.interactive, Some(a.tty))
                .await
        }
        WorkspaceCommand::Forward(a) => forward(ctx, a.target, &a.ports).await,
        WorkspaceCommand::Sync(a) => sync(ctx, a).await,
    }
}

async fn client(ctx: &Ctx) -> Result<WorkspaceServiceClient<Channel>> {
    Ok(WorkspaceServiceClient::new(ctx.channel().await?))
}

#[derive(Clone, Copy)]
enum Op {
    Create,
    Start,
    Stop,
    Status,
}

async fn one(ctx: &Ctx, args: WorkspaceArgs, op: Op) -> Result {
    let req = WorkspaceRequest {
        environment: Some(ctx.env_ref()?),
        name: args.name.clone(),
    };
    let mut c = client(ctx).await?;
    let doing = match op {
        Op::Create => Some(format!("creating workspace `{}`", args.name)),
        Op::Start => Some(format!("starting workspace `{}`", args.name)),
        Op::Stop | Op::Status => None,
    };
    let spinner = doing.map(|d| Spinner::start(&ctx.out, &d));
    let reply = match op {
        Op::Create => c.create(req).await,
        Op::Start => c.start(req).await,
        Op::Stop => c.stop(req).await,
        Op::Status => c.status(req).await,
    };
    let took = spinner.map(|s| {
        let t = s.took();
        s.finish();
        t
    });
    let w = reply?.into_inner();
    if ctx.out.json {
        outln!("{}", pretty(&to_json(&w)));
        return Ok(());
    }
    if ctx.out.quiet {
        return Ok(());
    }
    match op {
        Op::Create | Op::Start => outln!(
            "workspace `{}` is running ({}) in {}: `devenv workspace shell {}`",
            w.name,
            took.unwrap_or_default(),
            w.namespace,
            w.name
        ),
        Op::Stop => outln!(
            "workspace `{}` stopped; its volumes are kept ({})",
            w.name,
            w.volumes.join(", ")
        ),
        Op::Status => print!("{}", details(&w)),
    }
    Ok(())
}

async fn delete(ctx: &Ctx, args: WorkspaceArgs, volumes: bool) -> Result {
    let reply = client(ctx)
        .await?
        .delete(WorkspaceDeleteRequest {
            environment: Some(ctx.env_ref()?),
            name: args.name.clone(),
            volumes,
        })
        .await?
        .into_inner();
    if ctx.out.json {
        outln!(
            "{}",
            pretty(&json!({ "deleted": args.name, "keptVolumes": reply.kept_volumes }))
        );
    } else if !ctx.out.quiet {
        if reply.kept_volumes.is_empty() {
            outln!("deleted workspace `{}`", args.name);
        } else {
            outln!(
                "deleted workspace `{}`; kept its volumes {} (delete them with --volumes)",
                args.name,
                reply.kept_volumes.join(", ")
            );
        }
    }
    Ok(())
}

async fn ls(ctx: &Ctx, all: bool) -> Result {
    let reply = client(ctx)
        .await?
        .list(WorkspaceListRequest {
            environment: Some(ctx.env_ref()?),
            all,
        })
        .await?
        .into_inner();
    if ctx.out.json {
        let list: Vec<_> = reply.workspaces.iter().map(to_json).collect();
        outln!("{}", pretty(&json!({ "workspaces": list })));
        return Ok(());
    }
    if reply.workspaces.is_empty() {
        if !ctx.out.quiet {
            outln!("no workspaces (add them under spec.workspaces)");
        }
        return Ok(());
    }
    let rows: Vec<Vec<String>> = reply
        .workspaces
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                w.owner.clone(),
                w.state.clone(),
                last_activity(w),
                w.volumes.join(" "),
            ]
        })
        .collect();
    if !all {
        print!(
            "{}",
            table::render(
                &["NAME", "OWNER", "STATE", "LAST ACTIVITY", "VOLUMES"],
                &rows
            )
        );
        return Ok(());
    }
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .zip(&reply.workspaces)
        .map(|(mut row, w)| {
            row.push(usage(w));
            row
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["NAME", "OWNER", "STATE", "LAST ACTIVITY", "VOLUMES", "USED"],
            &rows
        )
    );
    // Each reason for a `-` once, below the table.
    let mut notes: Vec<&str> = Vec::new();
    for w in &reply.workspaces {
        if w.volume_usage.is_empty() && !notes.contains(&w.volume_usage_note.as_str()) {
            notes.push(&w.volume_usage_note);
        }
    }
    for n in notes.iter().filter(|n| !n.is_empty()) {
        outln!("USED -: {n}");
    }
    Ok(())
}

/// The workspace's claims' usage in all, `-` when unknown.
fn usage(w: &pb::WorkspaceStatus) -> String {
    if w.volume_usage.is_empty() {
        return "-".into();
    }
    human_bytes(w.volume_usage.iter().map(|u| u.used_bytes).sum())
}

/// `5.2Mi`, `1.0Gi`, `512B`: binary units as Kubernetes sizes are written.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["Ki", "Mi", "Gi", "Ti", "Pi"];
    if n < 1024 {
        return format!("{n}B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1}{}", UNITS[unit])
}

async fn forward(ctx: &Ctx, args: WorkspaceArgs, ports: &str) -> Result {
    let bad = || {
        CliError::usage(anyhow::anyhow!(
            "`{ports}` is not PORT or LOCAL:REMOTE (e.g. `8080` or `18080:8080`)"
        ))
    };
    let (local, remote) = match ports.split_once(':') {
        Some((l, r)) => (l.parse::<u16>(), r.parse::<u16>()),
        None => (ports.parse::<u16>(), ports.parse::<u16>()),
    };
    let (Ok(local), Ok(remote)) = (local, remote) else {
        return Err(bad());
    };
    let mut stream = client(ctx)
        .await?
        .forward(WorkspaceForwardRequest {
            environment: Some(ctx.env_ref()?),
            name: args.name.clone(),
            local_port: u32::from(local),
            remote_port: u32::from(remote),
        })
        .await?
        .into_inner();
    let Some(first) = stream.message().await? else {
        return Err(CliError::Silent(Exit::Failed));
    };
    if ctx.out.json {
        outln!(
            "{}",
            json!({ "localPort": first.local_port, "remotePort": first.remote_port, "pod": first.pod })
        );
    } else if !ctx.out.quiet {
        outln!(
            "forwarding 127.0.0.1:{} -> workspace `{}` port {} (Ctrl-C to stop)",
            first.local_port,
            args.name,
            first.remote_port
        );
    }
    // Until Ctrl-C (or the daemon ends the stream).
    tokio::select! {
        m = stream.message() => { m?; }
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}

async fn sync(ctx: &Ctx, args: WorkspaceArgs) -> Result {
    let mut stream = client(ctx)
        .await?
        .sync(WorkspaceRequest {
            environment: Some(ctx.env_ref()?),
            name: args.name.clone(),
        })
        .await?
        .into_inner();
    if !ctx.out.json && !ctx.out.quiet {
        outln!("syncing into workspace `{}` (Ctrl-C to stop)", args.name);
    }
    // Until Ctrl-C (or the daemon ends the stream).
    loop {
        tokio::select! {
            m = stream.message() => match m? {
                Some(ev) if ctx.out.json => outln!("{}", json!({ "line": ev.line })),
                Some(ev) if !ctx.out.quiet => outln!("{}", ev.line),
                Some(_) => {}
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    Ok(())
}

fn pretty(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).expect("workspace JSON is always serialisable")
}

fn to_json(w: &pb::WorkspaceStatus) -> serde_json::Value {
    let ts = |t: Option<&prost_types::Timestamp>| {
        let s = rfc3339(t);
        (!s.is_empty()).then_some(s)
    };
    json!({
        "name": w.name,
        "owner": w.owner,
        "namespace": w.namespace,
        "state": w.state,
        "pod": (!w.pod.is_empty()).then_some(&w.pod),
        "ready": w.ready,
        "ports": w.ports,
        "idleTimeoutSeconds": (w.idle_timeout_seconds > 0).then_some(w.idle_timeout_seconds),
        "lastActivity": (!w.last_activity.is_empty()).then_some(&w.last_activity),
        "lastActivityAt": ts(w.last_activity_at.as_ref()),
        "stopsAt": ts(w.stops_at.as_ref()),
        "openSessions": w.open_sessions,
        "idle": w.idle,
        "volumes": w.volumes,
        "cpu": w.cpu,
        "volumeUsage": w.volume_usage.iter().map(|u| json!({
            "claim": u.claim,
            "usedBytes": u.used_bytes,
            "capacityBytes": u.capacity_bytes,
        })).collect::<Vec<_>>(),
        "volumeUsageNote": (!w.volume_usage_note.is_empty()).then_some(&w.volume_usage_note),
    })
}

fn last_activity(w: &pb::WorkspaceStatus) -> String {
    let ago = w
        .last_activity_at
        .as_ref()
        .and_then(to_system_time)
        .and_then(|t| t.elapsed().ok());
    match (w.last_activity.as_str(), ago) {
        ("", _) => "-".into(),
        (s, Some(ago)) => format!("{s} {} ago", short_duration(ago)),
        (s, None) => s.to_owned(),
    }
}

fn details(w: &pb::WorkspaceStatus) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| {
        out.push_str(&format!("{k:<14}{v}\n"));
    };
    line("workspace", w.name.clone());
    line("owner", w.owner.clone());
    line("namespace", w.namespace.clone());
    line("state", w.state.clone());
    if !w.pod.is_empty() {
        line("pod", w.pod.clone());
    }
    if !w.ports.is_empty() {
        let p: Vec<String> = w.ports.iter().map(u32::to_string).collect();
        line("ports", p.join(", "));
    }
    line(
        "volumes",
        if w.volumes.is_empty() {
            "-".into()
        } else {
            w.volumes.join(", ")
        },
    );
    line(
        "idle timeout",
        if w.idle_timeout_seconds == 0 {
            "none".into()
        } else {
            short_duration(std::time::Duration::from_secs(w.idle_timeout_seconds))
        },
    );
    line("last activity", last_activity(w));
    line("sessions", w.open_sessions.to_string());
    if !w.idle.is_empty() {
        line("idle stop", w.idle.clone());
    }
    if !w.cpu.is_empty() {
        line("cpu", w.cpu.clone());
    }
    out
}
