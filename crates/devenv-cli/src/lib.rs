//! The `devenv` command-line client: a thin client of devenvd's gRPC API.

/// `println!` that ends the program quietly (exit 0) when stdout is a closed pipe,
/// as in `devenv up --json | head -1`, instead of panicking.
macro_rules! outln {
    () => {
        $crate::render::write_line(format_args!(""))
    };
    ($($t:tt)*) => {
        $crate::render::write_line(format_args!($($t)*))
    };
}

mod cli;
mod commands;
mod context;
mod daemon;
mod error;
mod plugins;
mod render;
mod since;
mod stream;
#[cfg(test)]
mod testutil;
mod units;

use std::process::ExitCode;

use crate::context::Ctx;
use crate::error::{rpc_exit, CliError, Exit};

pub fn run() -> ExitCode {
    let mut cli = match parse() {
        Ok(cli) => cli,
        Err(err) => {
            // Help and version go to stdout with 0; usage errors to stderr with 2.
            let _ = err.print();
            return ExitCode::from(if err.use_stderr() {
                Exit::Usage as u8
            } else {
                0
            });
        }
    };
    if let cli::Command::Completion(args) = &cli.command {
        commands::completion::run(args.shell);
        return Exit::Ok.into();
    }
    if let Some(file) = cli.command.take_file() {
        cli.global.file = Some(file);
    }
    let ctx = match Ctx::new(cli.global) {
        Ok(ctx) => ctx,
        Err(err) => return report(err, None),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => return report(CliError::from(err), Some(&ctx)),
    };
    match runtime.block_on(commands::dispatch(cli.command, &ctx)) {
        Ok(()) => Exit::Ok.into(),
        Err(err) => report(err, Some(&ctx)),
    }
}

/// The command line's definition; when help may be asked for, with the plugins in
/// reach listed under "Plugins:" (only then: listing them reads every PATH directory).
fn command() -> clap::Command {
    use clap::CommandFactory as _;
    let cmd = cli::Cli::command();
    let wants_help = std::env::args().len() == 1
        || std::env::args()
            .skip(1)
            .any(|a| a == "-h" || a == "--help" || a == "help");
    if !wants_help {
        return cmd;
    }
    let start = std::env::current_dir().ok();
    match plugins::help_section(start.as_deref()) {
        Some(section) => cmd.after_help(section),
        None => cmd,
    }
}

fn parse() -> Result<cli::Cli, clap::Error> {
    use clap::FromArgMatches as _;
    let matches = command().try_get_matches()?;
    cli::Cli::from_arg_matches(&matches)
}

/// Prints `error: ...` (never a Debug dump) and picks the exit code.
fn report(err: CliError, ctx: Option<&Ctx>) -> ExitCode {
    let color = ctx.is_some_and(|c| c.out.err_color);
    let (exit, message) = match err {
        CliError::Silent(exit) => return exit.into(),
        CliError::Code(code) => return ExitCode::from(code),
        CliError::Report(_, ref e) if error::is_broken_pipe(e) => return Exit::Ok.into(),
        CliError::Report(exit, e) => (exit, format!("{e:#}")),
        CliError::Rpc(status) => {
            let exit = rpc_exit(status.code());
            let cause = if status.message().is_empty() {
                status.code().description().to_string()
            } else {
                status.message().to_string()
            };
            match (exit, ctx) {
                (Exit::Unreachable, Some(ctx)) => {
                    (exit, daemon::unreachable_message(&ctx.paths, &cause))
                }
                _ => (exit, cause),
            }
        }
    };
    eprintln!(
        "{}: {message}",
        render::color::paint(color, render::color::RED, "error")
    );
    exit.into()
}
