//! `devenv config show [--origin]`.

use devenv_api::pb::{environment_service_client::EnvironmentServiceClient, ShowConfigRequest};
use serde::Serialize;

use crate::cli::ConfigShowArgs;
use crate::context::Ctx;
use crate::error::Result;
use crate::render::color::{paint, DIM};

#[derive(Serialize)]
struct ValueJson<'a> {
    path: &'a str,
    value: &'a str,
    origin: &'a str,
}

pub async fn show(ctx: &Ctx, args: ConfigShowArgs) -> Result {
    let environment = Some(ctx.env_ref()?);
    let mut client = EnvironmentServiceClient::new(ctx.channel().await?);
    let reply = client
        .show_config(ShowConfigRequest { environment })
        .await?
        .into_inner();
    if ctx.out.json {
        let values: Vec<_> = reply
            .values
            .iter()
            .map(|v| ValueJson {
                path: &v.path,
                value: &v.value,
                origin: &v.origin,
            })
            .collect();
        let doc = serde_json::json!({ "yaml": reply.yaml, "values": values });
        outln!("{doc:#}");
    } else if args.origin {
        let rows: Vec<(String, &str)> = reply
            .values
            .iter()
            .map(|v| {
                (
                    format!("{} = {}", v.path, one_line(&v.value)),
                    v.origin.as_str(),
                )
            })
            .collect();
        let width = rows
            .iter()
            .map(|(l, _)| l.chars().count())
            .max()
            .unwrap_or(0);
        for (left, origin) in rows {
            let comment = paint(ctx.out.color, DIM, &format!("# {origin}"));
            outln!("{left:width$}  {comment}");
        }
    } else {
        print!("{}", reply.yaml);
        if !reply.yaml.ends_with('\n') {
            outln!();
        }
    }
    Ok(())
}

/// Values are YAML; a multi-line value is shown on one line of the table.
fn one_line(value: &str) -> String {
    let v = value.trim_end();
    if v.contains('\n') {
        v.lines().map(str::trim).collect::<Vec<_>>().join(" ")
    } else {
        v.to_string()
    }
}
