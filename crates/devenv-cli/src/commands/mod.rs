//! One file per command; each takes the shared context and its own arguments.

mod cluster;
pub mod completion;
mod config;
mod daemon;
mod dashboard;
mod dev;
mod down;
mod exec;
mod forward;
mod init;
mod logs;
mod ls;
mod restart;
mod scale;
mod snapshot;
mod start;
mod status;
mod stop;
mod sync;
mod tf;
mod up;
mod validate;
mod workspace;

use crate::cli::{Command, ConfigCommand, ForwardCommand, SyncCommand};
use crate::context::Ctx;
use crate::error::Result;

pub async fn dispatch(command: Command, ctx: &Ctx) -> Result {
    match command {
        Command::Init(args) => init::run(ctx, args).await,
        Command::Validate(_) => validate::run(ctx).await,
        Command::Config(ConfigCommand::Show(args)) => config::show(ctx, args).await,
        Command::Up(args) => up::run(ctx, args).await,
        Command::Down(args) => down::run(ctx, args).await,
        Command::Status(args) => status::run(ctx, args).await,
        Command::Logs(args) => logs::run(ctx, args).await,
        Command::Restart(args) => restart::run(ctx, args).await,
        Command::Exec(args) => exec::exec(ctx, args).await,
        Command::Shell(args) => exec::shell(ctx, args).await,
        Command::Stop(args) => stop::run(ctx, args).await,
        Command::Start(args) => start::run(ctx, args).await,
        Command::Scale(args) => scale::run(ctx, args).await,
        Command::Ls => ls::run(ctx).await,
        Command::Forward(ForwardCommand::Ls(_)) => forward::ls(ctx).await,
        Command::Dev(args) => dev::run(ctx, args).await,
        Command::Sync(SyncCommand::Status(_)) => sync::status(ctx).await,
        Command::Sync(SyncCommand::Verify(args)) => sync::verify(ctx, args).await,
        Command::Cluster(cmd) => cluster::run(ctx, cmd).await,
        Command::Workspace(cmd) => workspace::run(ctx, cmd).await,
        Command::Snapshot(cmd) => snapshot::run(ctx, cmd).await,
        Command::Tf(cmd) => tf::run(ctx, cmd).await,
        Command::Dashboard(args) => dashboard::run(ctx, args).await,
        Command::Daemon(cmd) => daemon::run(ctx, cmd).await,
        Command::Plugin(argv) => crate::plugins::run(ctx, argv),
        Command::Completion(args) => {
            completion::run(args.shell);
            Ok(())
        }
    }
}
