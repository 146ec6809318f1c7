//! `devenv dev SERVICE...`: dev mode in the foreground. Progress as `up` shows it,
//! then the services' logs; Ctrl-C (or the terminal closing) ends the call, the
//! daemon restores the original workloads, and this waits until it has.

use std::time::{Duration, Instant};

use devenv_api::pb::{
    self, environment_service_client::EnvironmentServiceClient,
    service_service_client::ServiceServiceClient, DevRequest, StatusRequest,
};

use crate::cli::DevArgs;
use crate::context::Ctx;
use crate::error::{CliError, Exit, Result};
use crate::render::progress::{self, Mode};

/// How long to wait for the daemon to put the workloads back after Ctrl-C.
const RESTORE_LIMIT: Duration = Duration::from_secs(120);

pub async fn run(ctx: &Ctx, args: DevArgs) -> Result {
    let environment = Some(ctx.env_ref()?);
    let channel = ctx.channel().await?;
    let request = DevRequest {
        environment: environment.clone(),
        services: args.services.clone(),
    };
    let mut events = ServiceServiceClient::new(channel.clone())
        .dev(request)
        .await?
        .into_inner();
    let (result, view, mode) =
        super::up::progress_until_result(ctx, &mut events, "dev mode").await?;
    let outcome = if result.ok {
        if mode != Mode::Json && !ctx.out.quiet {
            eprintln!(
                "dev mode: {} (Ctrl-C restores the original workload{})",
                args.services.join(", "),
                if args.services.len() == 1 { "" } else { "s" }
            );
        }
        let follow = super::logs::follow(
            ctx,
            channel.clone(),
            environment.clone(),
            args.services.clone(),
        );
        tokio::select! {
            r = follow => r.map(|()| Ok(())),
            _ = tokio::signal::ctrl_c() => Ok(Ok(())),
            _ = events.message() => Ok(Err(anyhow::anyhow!("devenvd ended dev mode (daemon stopped, or `devenv down`)"))),
        }
    } else {
        if mode != Mode::Json {
            eprint!(
                "{}",
                progress::failure_report(&result, &view, ctx.out.err_color)
            );
        }
        Ok(Err(anyhow::anyhow!("dev mode did not start")))
    };
    // Ending the call ends dev mode.
    drop(events);
    if mode != Mode::Json && !ctx.out.quiet {
        eprintln!("restoring {} ...", args.services.join(", "));
    }
    let restored = wait_restored(channel, environment, &args.services).await;
    match (&restored, mode) {
        (Ok(()), Mode::Json) => outln!("{}", serde_json::json!({ "restored": args.services })),
        (Ok(()), _) if !ctx.out.quiet => eprintln!("restored {}", args.services.join(", ")),
        _ => {}
    }
    restored?;
    match outcome? {
        Ok(()) if result.ok => Ok(()),
        Ok(()) => Err(CliError::Silent(Exit::Failed)),
        Err(e) => Err(e.into()),
    }
}

/// Waits until none of `services` is in dev mode any more and each has settled
/// (the original running again, or stopped), or the deadline.
async fn wait_restored(
    channel: tonic::transport::Channel,
    environment: Option<pb::EnvironmentRef>,
    services: &[String],
) -> Result {
    let mut client = EnvironmentServiceClient::new(channel);
    let deadline = Instant::now() + RESTORE_LIMIT;
    let mut changes = client
        .watch(pb::WatchRequest {
            environment: environment.clone(),
        })
        .await?
        .into_inner();
    loop {
        let status = client
            .status(StatusRequest {
                environment: environment.clone(),
            })
            .await?
            .into_inner();
        let pending: Vec<&str> = status
            .services
            .iter()
            .filter(|s| {
                use pb::ServiceState as S;
                let settling = matches!(s.state(), S::Pending | S::Starting | S::Stopping);
                services.contains(&s.name) && (s.dev || settling)
            })
            .map(|s| s.name.as_str())
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(anyhow::anyhow!(
                "{} still in dev mode after {}s; devenvd keeps trying (see `devenv logs {}`)",
                pending.join(", "),
                RESTORE_LIMIT.as_secs(),
                pending.join(" ")
            )
            .into());
        }
        // Re-check on the next state change of any service.
        match tokio::time::timeout(left, changes.message()).await {
            Ok(Ok(Some(_))) | Err(_) => {}
            Ok(Ok(None)) | Ok(Err(_)) => {
                return Err(anyhow::anyhow!("devenvd went away while restoring").into())
            }
        }
    }
}
