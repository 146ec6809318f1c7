//! devenvd: serves the devenv API on a Unix socket and maps it onto the engine.

mod args;
mod convert;
mod listener;
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
    // `devenv init` needs the project detection of core, not a daemon: this binary
    // answers once on stdout (`yaml`, then a line with the detected kind) and exits.
    if std::env::args().nth(1).as_deref() == Some("__init-template") {
        let Some(dir) = std::env::args_os().nth(2) else {
            eprintln!("devenvd __init-template: missing DIR");
            return ExitCode::from(2);
        };
        let (yaml, detected) = devenv_core::config::init_template(std::path::Path::new(&dir));
        println!("{detected}");
        print!("{yaml}");
        return ExitCode::SUCCESS;
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
