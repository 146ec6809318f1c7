//! devenvd: serves the devenv API on a Unix socket and maps it onto the engine.

mod args;
mod convert;
mod listener;
mod router;
mod rpc;
mod server;
mod settings;
mod web;

use std::process::ExitCode;

use clap::Parser;

pub fn main() -> ExitCode {
    // The guardian is this binary in another role; it needs no runtime or logging.
    if std::env::args().nth(1).as_deref() == Some("__guardian") {
        devenv_core::process::become_guardian();
        devenv_core::process::run_guardian(std::io::stdin().lock());
        return ExitCode::SUCCESS;
    }
    // `devenv init` needs the project detection and compose conversion of core, not a
    // daemon: this binary answers once on stdout and exits (see `init_template`).
    if std::env::args().nth(1).as_deref() == Some("__init-template") {
        let Some(dir) = std::env::args_os().nth(2) else {
            eprintln!("devenvd __init-template: missing DIR");
            return ExitCode::from(2);
        };
        return init_template(std::path::Path::new(&dir), std::env::args_os().skip(3));
    }
    let args = args::Args::parse();
    let activation_fds = listener::take_activation();
    if let Err(e) = args::init_logging(&args) {
        eprintln!("devenvd: {e:#}");
        return ExitCode::from(1);
    }
    let args_log_file = args.log_file.is_some();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("devenvd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(server::run(args, activation_fds)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // With a log file, the error goes there too; stderr gets it once either way.
            if args_log_file {
                tracing::error!("{e:#}");
            }
            eprintln!("devenvd: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `devenvd __init-template DIR [--from-compose FILE] [--presets] [--json]`: the config
/// `devenv init` writes. Without `--json` (older CLIs): a line with the detected kind,
/// then the YAML; with it, one JSON document (`detected`, `yaml`, `report`,
/// `presetCandidates`, `composeFile`). A malformed compose file: its located error on
/// stderr, exit 2.
fn init_template(
    dir: &std::path::Path,
    rest: impl Iterator<Item = std::ffi::OsString>,
) -> ExitCode {
    let mut opts = devenv_core::config::InitOptions::default();
    let mut json = false;
    let mut rest = rest;
    while let Some(arg) = rest.next() {
        match arg.to_str() {
            Some("--presets") => opts.presets = true,
            Some("--json") => json = true,
            Some("--from-compose") => match rest.next() {
                Some(file) => opts.from_compose = Some(file.into()),
                None => {
                    eprintln!("devenvd __init-template: --from-compose needs a FILE");
                    return ExitCode::from(2);
                }
            },
            _ => {
                eprintln!(
                    "devenvd __init-template: unknown argument {}",
                    arg.to_string_lossy()
                );
                return ExitCode::from(2);
            }
        }
    }
    let vars: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    // Run by the CLI, so PATH is the user's: a preset whose server is not installed
    // runs in a container of the compose file's image.
    use devenv_core::config::Preset;
    opts.local_servers = [Preset::Postgresql, Preset::Redis]
        .into_iter()
        .filter(|p| devenv_core::presets::has_server(*p, vars.get("PATH").map(String::as_str)))
        .collect();
    match devenv_core::config::init_project(dir, &opts, &vars) {
        Ok(outcome) if json => {
            let doc = serde_json::json!({
                "detected": outcome.detected,
                "yaml": outcome.yaml,
                "report": outcome.report,
                "presetCandidates": outcome.preset_candidates,
                "composeFile": outcome.compose_file,
            });
            println!("{doc}");
            ExitCode::SUCCESS
        }
        Ok(outcome) => {
            println!("{}", outcome.detected);
            print!("{}", outcome.yaml);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
