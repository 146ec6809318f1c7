//! `devenv init`: write a starter config into the project. The template (with project
//! detection) comes from `devenvd __init-template`, a one-off run of the daemon binary:
//! no daemon is started for it.

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
    let bin = crate::daemon::find_devenvd()?;
    let out = std::process::Command::new(&bin)
        .arg("__init-template")
        .arg(&dir)
        .stdin(std::process::Stdio::null())
        .output()
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if !out.status.success() {
        return Err(anyhow!(
            "{} __init-template failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (detected, yaml) = text.split_once('\n').unwrap_or(("generic", ""));
    let reply = Template {
        detected: detected.trim().to_owned(),
        yaml: yaml.to_owned(),
    };
    let parent = target.parent().expect("has .devenv");
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    std::fs::write(&target, &reply.yaml)
        .with_context(|| format!("cannot write {}", target.display()))?;

    if ctx.out.json {
        let doc = serde_json::json!({ "path": target, "detected": reply.detected });
        outln!("{doc}");
    } else if !ctx.out.quiet {
        let detected = if reply.detected.is_empty() {
            "generic"
        } else {
            &reply.detected
        };
        outln!("detected: {detected} project");
        outln!("wrote {}", target.display());
        outln!();
        outln!("next steps:");
        outln!("  edit .devenv/config.yml to describe your services");
        outln!("  devenv validate    check it");
        outln!("  devenv up          start everything");
    }
    Ok(())
}

struct Template {
    detected: String,
    yaml: String,
}
