//! `devenv up`: stream progress until everything requested is ready or something failed.

use devenv_api::pb::{environment_service_client::EnvironmentServiceClient, up_event, UpRequest};

use crate::cli::UpArgs;
use crate::context::Ctx;
use crate::error::{CliError, Exit, Result};
use crate::render::config_errors;
use crate::render::progress::{self, Mode, UpProgress};

pub async fn run(ctx: &Ctx, args: UpArgs) -> Result {
    let environment = Some(ctx.env_ref()?);
    let channel = ctx.channel().await?;
    let mut client = EnvironmentServiceClient::new(channel.clone());
    let request = UpRequest {
        environment: environment.clone(),
        services: args.services.clone(),
        keep_going: args.keep_going,
        dev: args.dev,
        profiles: args.profiles.clone(),
    };
    let mut events = client.up(request).await?.into_inner();

    // Ctrl-C ends only this client: devenvd goes on starting what was asked for, which
    // a user can't guess, so say it and how to stop them.
    let (result, view, mode) = tokio::select! {
        r = progress_until_result(ctx, &mut events, "`up`") => r?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!(
                "\ninterrupted: the services keep starting in the background (devenvd runs them)\n  devenv status   see how far they got\n  devenv down     stop them"
            );
            return Err(CliError::Silent(Exit::Interrupted));
        }
    };
    if !result.ok {
        if mode != Mode::Json {
            eprint!(
                "{}",
                progress::failure_report(&result, &view, ctx.out.err_color)
            );
        }
        return Err(CliError::Silent(Exit::Failed));
    }
    if mode != Mode::Json && !ctx.out.quiet {
        outln!("{}", progress::success_line(&view, ctx.out.color));
    }
    if args.attach {
        let services = args.services;
        return super::logs::follow(ctx, channel, environment, services).await;
    }
    Ok(())
}

/// Shows an `Up`-style event stream (progress per service) until its result, which it
/// returns with the view (for the failure report) and the output mode. Invalid config
/// is reported here and ends the command with the usage exit code.
pub(super) async fn progress_until_result(
    ctx: &Ctx,
    events: &mut tonic::Streaming<devenv_api::pb::UpEvent>,
    what: &str,
) -> Result<(devenv_api::pb::UpResult, UpProgress, Mode)> {
    let mode = if ctx.out.json {
        Mode::Json
    } else if ctx.out.quiet {
        Mode::Quiet
    } else if ctx.out.stdout_tty && ctx.out.stderr_tty {
        Mode::Tty
    } else {
        Mode::Plain
    };
    // Spinners draw on stderr; plain lines go to stdout.
    let color = if mode == Mode::Tty {
        ctx.out.err_color
    } else {
        ctx.out.color
    };
    let mut view = UpProgress::new(mode, color);
    let result = loop {
        let Some(event) = events.message().await? else {
            view.finish();
            return Err(anyhow::anyhow!("devenvd ended {what} without a result").into());
        };
        match event.event {
            Some(up_event::Event::Service(s)) => view.service(&s),
            Some(up_event::Event::Invalid(v)) => {
                view.finish();
                if mode == Mode::Json {
                    view.invalid_json(&v);
                } else {
                    eprint!("{}", config_errors::located(&v.errors, ctx.out.err_color));
                }
                return Err(CliError::Silent(Exit::Usage));
            }
            Some(up_event::Event::Result(r)) => break r,
            None => {}
        }
    };
    view.finish();
    if mode == Mode::Json {
        view.result_json(&result);
    }
    Ok((result, view, mode))
}
