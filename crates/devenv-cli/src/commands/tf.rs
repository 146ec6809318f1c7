//! `devenv tf plan SERVICE` and `devenv tf apply SERVICE [--yes]`: one
//! `TerraformService.Run` stream. Terraform's output lines go to stdout as they come;
//! an apply of a plan with changes asks on the terminal (only `yes` applies) or takes
//! `--yes`; without a terminal and without `--yes` it refuses before anything runs.
//!
//! `--json`: one JSON object per line, `{"line": ..}` for terraform's output, one
//! `{"plan": {"summary", "add", "change", "destroy", "outputs", "changes"}}`, then
//! `{"done": {"ok", "applied", "message", "services": [STATUS...]}}` (the services
//! that waited for the outputs, as `status --json` shows a service).

use std::io::{IsTerminal, Write as _};

use devenv_api::pb::{
    self, terraform_input::Input, terraform_output::Output,
    terraform_service_client::TerraformServiceClient,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::cli::{TfApplyArgs, TfCommand, TfPlanArgs};
use crate::context::Ctx;
use crate::error::{CliError, Exit, Result};
use crate::render::status::ServiceJson;

pub async fn run(ctx: &Ctx, cmd: TfCommand) -> Result {
    match cmd {
        TfCommand::Plan(TfPlanArgs { service, .. }) => tf(ctx, service, false, false).await,
        TfCommand::Apply(TfApplyArgs { service, yes, .. }) => tf(ctx, service, true, yes).await,
    }
}

async fn tf(ctx: &Ctx, service: String, apply: bool, yes: bool) -> Result {
    if apply && !yes && !std::io::stdin().is_terminal() {
        return Err(CliError::usage(anyhow::anyhow!(
            "refusing to apply without a confirmation: stdin is not a terminal; pass --yes to apply the plan it shows"
        )));
    }
    let environment = Some(ctx.env_ref()?);
    let (tx, rx) = mpsc::channel(2);
    let start = pb::TerraformStart {
        environment,
        service: service.clone(),
        apply,
    };
    tx.send(pb::TerraformInput {
        input: Some(Input::Start(start)),
    })
    .await
    .map_err(|_| anyhow::anyhow!("tf: request stream closed"))?;
    let mut replies = TerraformServiceClient::new(ctx.channel().await?)
        .run(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let json = ctx.out.json;
    while let Some(msg) = replies.message().await? {
        match msg.output {
            Some(Output::Line(line)) => {
                if json {
                    outln!("{}", json!({ "line": line }));
                } else if !ctx.out.quiet {
                    outln!("{line}");
                }
            }
            Some(Output::Plan(plan)) => {
                if json {
                    outln!(
                        "{}",
                        json!({ "plan": {
                            "summary": plan.summary, "add": plan.add, "change": plan.change,
                            "destroy": plan.destroy, "outputs": plan.outputs, "changes": plan.changes,
                        }})
                    );
                } else if !ctx.out.quiet {
                    outln!("\n{service}: plan: {}", plan.summary);
                }
                if apply && plan.changes {
                    let answer = yes || ask(&service).await?;
                    // A closed stream declines as well.
                    let _ = tx
                        .send(pb::TerraformInput {
                            input: Some(Input::Confirm(answer)),
                        })
                        .await;
                }
            }
            Some(Output::Done(done)) => return finish(ctx, &service, done),
            None => {}
        }
    }
    Err(anyhow::anyhow!("devenvd ended the terraform run without a result").into())
}

fn finish(ctx: &Ctx, service: &str, done: pb::TerraformDone) -> Result {
    if ctx.out.json {
        let services: Vec<_> = done.services.iter().map(ServiceJson::from).collect();
        outln!(
            "{}",
            json!({ "done": {
                "ok": done.ok, "applied": done.applied, "message": done.message,
                "services": services,
            }})
        );
    } else if !ctx.out.quiet || !done.ok {
        if done.ok {
            outln!("{service}: {}", done.message);
        } else {
            eprintln!("error: {service}: {}", done.message);
        }
        if !done.services.is_empty() && !ctx.out.quiet {
            print!(
                "{}",
                crate::render::status::table(&done.services, ctx.out.color)
            );
        }
    }
    if done.ok {
        Ok(())
    } else {
        Err(CliError::Silent(Exit::Failed))
    }
}

/// Asks on the terminal, as terraform does: only `yes` applies.
async fn ask(service: &str) -> Result<bool> {
    let mut err = std::io::stderr();
    write!(
        err,
        "\nApply this plan to {service}? Only 'yes' will be accepted: "
    )?;
    err.flush()?;
    let line = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).map(|_| line)
    })
    .await
    .map_err(|e| anyhow::anyhow!("reading the answer: {e}"))??;
    Ok(line.trim() == "yes")
}
