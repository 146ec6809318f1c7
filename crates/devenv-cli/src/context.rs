//! What every command gets: resolved paths, output settings, and the environment it
//! talks about. Kept cheap: `devenv status` must answer in a few milliseconds.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use devenv_api::{pb, Paths, ProcessEnv};
use tonic::transport::Channel;

use crate::cli::Global;
use crate::error::{CliError, Result};

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    /// Colours on stdout.
    pub color: bool,
    /// Colours on stderr.
    pub err_color: bool,
    pub stdout_tty: bool,
    pub stderr_tty: bool,
}

impl Output {
    pub fn new(global: &Global) -> Self {
        let stdout_tty = std::io::stdout().is_terminal();
        let stderr_tty = std::io::stderr().is_terminal();
        // https://no-color.org: any non-empty value disables colour.
        let no_color =
            global.no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            json: global.json,
            quiet: global.quiet,
            verbose: global.verbose,
            color: !no_color && stdout_tty,
            err_color: !no_color && stderr_tty,
            stdout_tty,
            stderr_tty,
        }
    }
}

pub struct Ctx {
    pub global: Global,
    pub paths: Paths,
    pub out: Output,
}

impl Ctx {
    pub fn new(global: Global) -> Result<Self> {
        let paths =
            Paths::resolve_with(&ProcessEnv, global.socket.clone()).map_err(CliError::usage)?;
        let out = Output::new(&global);
        Ok(Self { global, paths, out })
    }

    /// The project directory: `-C DIR` or the working directory, absolute.
    pub fn project_dir(&self) -> Result<PathBuf> {
        let cwd = std::env::current_dir().context("cannot read the working directory")?;
        match &self.global.dir {
            None => Ok(cwd),
            Some(dir) => absolute_existing(&cwd.join(dir), "directory"),
        }
    }

    /// The environment every environment RPC names.
    pub fn env_ref(&self) -> Result<pb::EnvironmentRef> {
        let project_dir = self.project_dir()?;
        let config_file = match &self.global.file {
            None => String::new(),
            Some(f) => path_string(absolute_existing(&project_dir.join(f), "config file")?),
        };
        Ok(pb::EnvironmentRef {
            project_dir: path_string(project_dir),
            env: self.global.env.clone().unwrap_or_default(),
            config_file,
            client_env: client_env(),
        })
    }

    /// Whether a config is in reach: `-f`, or a `.devenv/config.yml` at or above the
    /// project dir (the daemon's search, repeated here so that `status` outside a
    /// project can show every environment instead of an error).
    pub fn in_project(&self) -> bool {
        if self.global.file.is_some() {
            return true;
        }
        let Ok(dir) = self.project_dir() else {
            return true;
        };
        dir.ancestors().any(|d| {
            ["config.yml", "config.yaml"]
                .iter()
                .any(|n| d.join(".devenv").join(n).is_file())
        })
    }

    /// The reference to an environment the daemon listed (`status --all`).
    pub fn env_ref_at(&self, project: &str, env: &str) -> pb::EnvironmentRef {
        pb::EnvironmentRef {
            project_dir: project.to_owned(),
            env: env.to_owned(),
            config_file: String::new(),
            client_env: client_env(),
        }
    }

    /// A channel to the daemon, starting it when nothing listens.
    pub async fn channel(&self) -> Result<Channel> {
        crate::daemon::connect_or_start(&self.paths, &self.out).await
    }
}

fn absolute_existing(path: &Path, what: &str) -> Result<PathBuf> {
    std::fs::canonicalize(path)
        .with_context(|| format!("{what} {}", path.display()))
        .map_err(CliError::usage)
}

fn path_string(p: PathBuf) -> String {
    p.into_os_string().to_string_lossy().into_owned()
}

/// The CLI's whole process environment, for `${VAR}` interpolation in the daemon.
/// Variables that are not UTF-8 cannot be interpolated and are left out.
fn client_env() -> HashMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}
