//! `devenv init`: write a starter config into the project, converted from its compose
//! file when it has one. The config (project detection, compose conversion) comes from
//! `devenvd __init-template`, a one-off run of the daemon binary: no daemon is started
//! for it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};

use crate::cli::InitArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result};

/// The config of an enclosing project: a new one below it would take over everything
/// under `dir`, because devenv uses the nearest `.devenv/config.yml`.
fn enclosing_config(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().skip(1).find_map(|d| {
        ["config.yml", "config.yaml"]
            .iter()
            .map(|n| d.join(".devenv").join(n))
            .find(|f| f.is_file())
    })
}

pub async fn run(ctx: &Ctx, args: InitArgs) -> Result {
    let dir = ctx.project_dir()?;
    let target = dir.join(".devenv").join("config.yml");
    if target.exists() && !args.force {
        return Err(CliError::usage(anyhow!(
            "{} already exists; use --force to overwrite it",
            target.display()
        )));
    }
    if let Some(outer) = enclosing_config(&dir).filter(|_| !args.force) {
        return Err(CliError::usage(anyhow!(
            "{} already covers {}: a config here would shadow it for everything below {} (devenv uses the nearest .devenv/config.yml)\n  hint: add services to that config, or pass --force to start a separate project here",
            outer.display(),
            dir.display(),
            dir.display()
        )));
    }
    let from_compose = match &args.from_compose {
        Some(f) => {
            let abs = std::path::absolute(f).unwrap_or_else(|_| f.clone());
            if !abs.is_file() {
                return Err(CliError::usage(anyhow!(
                    "compose file {} does not exist",
                    abs.display()
                )));
            }
            Some(abs)
        }
        None => None,
    };
    let mut reply = template(&dir, from_compose.as_deref(), args.presets)?;
    // On a terminal, offer the presets the compose file could use.
    if !args.presets
        && !reply.preset_candidates.is_empty()
        && !ctx.out.json
        && std::io::stdin().is_terminal()
        && std::io::stdout().is_terminal()
        && ask_presets(&reply.preset_candidates)?
    {
        reply = template(&dir, from_compose.as_deref(), true)?;
    }
    let parent = target.parent().expect("has .devenv");
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    std::fs::write(&target, &reply.yaml)
        .with_context(|| format!("cannot write {}", target.display()))?;

    if ctx.out.json {
        let doc = serde_json::json!({
            "path": target,
            "detected": reply.detected,
            "composeFile": reply.compose_file,
            "report": reply.report,
        });
        outln!("{doc}");
    } else if !ctx.out.quiet {
        match &reply.compose_file {
            Some(file) => {
                outln!("converted {}", file.display());
                if reply.report.is_empty() {
                    outln!("everything in it was converted");
                } else {
                    outln!(
                        "not converted as written ({}; also listed at the top of the config):",
                        reply.report.len()
                    );
                    for line in &reply.report {
                        outln!("  {line}");
                    }
                }
            }
            None => outln!("detected: {} project", reply.detected),
        }
        outln!("wrote {}", target.display());
        outln!();
        outln!("next steps:");
        outln!("  edit .devenv/config.yml to describe your services");
        outln!("  devenv validate    check it");
        outln!("  devenv up          start everything");
    }
    Ok(())
}

/// What `devenvd __init-template --json` answers.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Template {
    detected: String,
    yaml: String,
    #[serde(default)]
    report: Vec<String>,
    #[serde(default)]
    preset_candidates: Vec<String>,
    compose_file: Option<PathBuf>,
}

/// The config for `dir` from a one-off run of the daemon binary (project detection and
/// compose conversion live in core, which this thin client does not link).
fn template(dir: &Path, from_compose: Option<&Path>, presets: bool) -> Result<Template> {
    let bin = crate::daemon::find_devenvd()?;
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("__init-template").arg(dir).arg("--json");
    if let Some(f) = from_compose {
        cmd.arg("--from-compose").arg(f);
    }
    if presets {
        cmd.arg("--presets");
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(2) {
        // A located error in the compose file: nothing is written.
        return Err(CliError::usage(anyhow!("{}", stderr.trim())));
    }
    if !out.status.success() {
        return Err(anyhow!(
            "{} __init-template failed: {}",
            bin.display(),
            stderr.trim()
        )
        .into());
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| {
            format!(
                "{} __init-template answered something unreadable",
                bin.display()
            )
        })
        .map_err(Into::into)
}

/// Asks on the terminal whether the candidates become presets; default no.
fn ask_presets(candidates: &[String]) -> Result<bool> {
    eprint!(
        "{} use{} a postgres/redis image: run {} as devenv preset{} (a local server where installed, else the image) instead of plain containers? [y/N] ",
        candidates.join(", "),
        if candidates.len() == 1 { "s" } else { "" },
        if candidates.len() == 1 { "it" } else { "them" },
        if candidates.len() == 1 { "" } else { "s" },
    );
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("cannot read the answer")?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes"))
}
