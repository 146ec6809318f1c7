//! Command-line arguments (clap derive). Parsing only; meaning lives in `commands/`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "devenv",
    version,
    about = "Bring up a project's whole development environment with one command",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Run as if started in DIR
    #[arg(short = 'C', long = "directory", value_name = "DIR", global = true)]
    pub dir: Option<PathBuf>,
    /// Use this config file instead of .devenv/config.yml
    // Not global: `logs -f` is --follow. Commands that read the config take `-f` too.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Environment to layer (.devenv/environments/NAME.yml)
    #[arg(long = "env", value_name = "NAME", global = true)]
    pub env: Option<String>,
    /// Daemon socket path
    #[arg(long, value_name = "PATH", env = "DEVENV_SOCKET", global = true)]
    pub socket: Option<PathBuf>,
    /// Print machine-readable JSON
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail (repeat for more)
    #[arg(short, long, action = ArgAction::Count, global = true, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Print only what was asked for
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Disable colours (also: NO_COLOR, or output not a terminal)
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold .devenv/config.yml (detects common project types)
    Init(InitArgs),
    /// Check the config; exit 2 with located errors
    Validate(ValidateArgs),
    /// Inspect the merged config
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Start services (and their dependencies) and wait until ready
    Up(UpArgs),
    /// Stop everything in reverse dependency order
    Down(DownArgs),
    /// Show services: runtime, state, ports, restarts, message
    Status(StatusArgs),
    /// Show and follow service logs
    Logs(LogsArgs),
    /// Restart services; dependents follow their restart policy
    Restart(RestartArgs),
    /// Run a command in a running service (its workdir and environment, or a pod)
    Exec(ExecArgs),
    /// Open a shell in a running service ($SHELL, else sh)
    Shell(ShellArgs),
    /// Stop services until started again; running dependents wait in `pending`
    Stop(StopArgs),
    /// Start services and what they need, and the services waiting for them
    Start(StartArgs),
    /// Set the replicas of a kubernetes service and wait until they are ready
    Scale(ScaleArgs),
    /// List environments known to the daemon
    Ls,
    /// Run kubernetes services in dev mode until Ctrl-C, which restores them
    Dev(DevArgs),
    /// File sync of services in dev mode: sessions per pod, and checks
    #[command(subcommand)]
    Sync(SyncCommand),
    /// Port forwards of kubernetes services
    #[command(subcommand)]
    Forward(ForwardCommand),
    /// Create, delete, list and check clusters (k3d, or one from your kubeconfig)
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Your persistent development pods on the environment's cluster (spec.workspaces)
    #[command(subcommand)]
    Workspace(WorkspaceCommand),
    /// Save, restore, list, remove and compare snapshots of the environment's local data
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Plan a terraform service, or apply its plan after showing it
    #[command(subcommand)]
    Tf(TfCommand),
    /// Print the web dashboard's URL and open it in the browser
    Dashboard(DashboardArgs),
    /// Manage the devenvd daemon
    #[command(subcommand)]
    Daemon(DaemonCommand),
    /// Print shell completions
    Completion(CompletionArgs),
    /// `devenv NAME ARGS...` runs the plugin `devenv-NAME` (see "Plugins" below)
    #[command(external_subcommand)]
    Plugin(Vec<OsString>),
}

/// `-f FILE` after the command name.
#[derive(Debug, Default, Args)]
pub struct FileOpt {
    /// Use this config file instead of .devenv/config.yml
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub file: FileOpt,
}

impl Command {
    /// `-f FILE` given after the command name, which wins over one given before it.
    pub fn take_file(&mut self) -> Option<PathBuf> {
        match self {
            Command::Validate(a) => a.file.file.take(),
            Command::Config(ConfigCommand::Show(a)) => a.file.file.take(),
            Command::Up(a) => a.file.file.take(),
            Command::Down(a) => a.file.file.take(),
            Command::Status(a) => a.file.file.take(),
            Command::Restart(a) => a.file.file.take(),
            Command::Exec(a) => a.target.file.file.take(),
            Command::Shell(a) => a.target.file.file.take(),
            Command::Stop(a) => a.file.file.take(),
            Command::Start(a) => a.file.file.take(),
            Command::Scale(a) => a.file.file.take(),
            Command::Logs(a) => a.file.take(),
            Command::Forward(ForwardCommand::Ls(a)) => a.file.file.take(),
            Command::Dev(a) => a.file.file.take(),
            Command::Sync(SyncCommand::Status(a)) => a.file.file.take(),
            Command::Sync(SyncCommand::Verify(a)) => a.file.file.take(),
            Command::Cluster(
                ClusterCommand::Create(a) | ClusterCommand::Delete(a) | ClusterCommand::Status(a),
            ) => a.file.file.take(),
            Command::Cluster(ClusterCommand::Ls) => None,
            Command::Workspace(w) => w.file().file.take(),
            Command::Snapshot(
                SnapshotCommand::Save(a)
                | SnapshotCommand::Restore(a)
                | SnapshotCommand::Rm(a)
                | SnapshotCommand::Diff(a),
            ) => a.file.file.take(),
            Command::Snapshot(SnapshotCommand::Ls(a)) => a.file.file.take(),
            Command::Tf(TfCommand::Plan(a)) => a.file.file.take(),
            Command::Tf(TfCommand::Apply(a)) => a.file.file.take(),
            Command::Init(_)
            | Command::Ls
            | Command::Dashboard(_)
            | Command::Daemon(_)
            | Command::Completion(_)
            | Command::Plugin(_) => None,
        }
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Overwrite an existing .devenv/config.yml
    #[arg(long)]
    pub force: bool,
    /// Convert this compose file (default: the project's compose.yaml,
    /// compose.yml, docker-compose.yaml or docker-compose.yml, when there is one)
    #[arg(long, value_name = "FILE")]
    pub from_compose: Option<std::path::PathBuf>,
    /// Turn postgres and redis images of the compose file into presets
    /// (`type: postgresql|redis`: local servers where installed, else `runtime:
    /// container` with the compose file's image; on a terminal init asks, else it
    /// keeps plain containers)
    #[arg(long)]
    pub presets: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the merged config
    Show(ConfigShowArgs),
}

#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// Show where each value came from
    #[arg(long)]
    pub origin: bool,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// Services to start (default: all)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Keep what started even when a service fails
    #[arg(long)]
    pub keep_going: bool,
    /// Run the kubernetes services that have a `dev` section in dev mode (until
    /// `down`, or an `up` without --dev)
    #[arg(long)]
    pub dev: bool,
    /// Follow logs once everything is ready (Ctrl-C to detach)
    #[arg(long)]
    pub attach: bool,
    /// Activate a profile: its services start too (repeatable; services without
    /// `profiles:` always start, a service named as SERVICE starts whatever its profiles)
    #[arg(
        long = "profile",
        value_name = "PROFILE",
        env = "DEVENV_PROFILES",
        value_delimiter = ','
    )]
    pub profiles: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// Also remove volumes
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// Keep watching and re-render on every change
    #[arg(short, long)]
    pub watch: bool,
    /// Every environment the daemon knows (the default outside a project)
    #[arg(short, long, conflicts_with = "watch")]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Use this config file instead of .devenv/config.yml
    #[arg(long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// Services to show (default: all)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
    /// Keep following new lines
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines (default: every retained line)
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<u32>,
    /// Only lines newer than this (10m, 1h, or an RFC 3339 time)
    #[arg(long, value_name = "WHEN", value_parser = crate::since::parse_since)]
    pub since: Option<std::time::SystemTime>,
    /// Only lines matching this regular expression
    #[arg(long, value_name = "RE")]
    pub grep: Option<String>,
    /// Only lines at this level or above (read from JSON, logfmt or a prefix such as
    /// ERROR or [warn]; lines with no level are left out, devenv's own lines kept)
    #[arg(long, value_name = "LEVEL", ignore_case = true)]
    pub level: Option<LogLevelArg>,
    /// Prefix each line with its time
    #[arg(short, long)]
    pub timestamps: bool,
    /// Only lines after this position (the `position` of a `--json` line): with -f,
    /// resumes a follow exactly where it stopped, from memory or disk
    #[arg(long, value_name = "POSITION", conflicts_with_all = ["tail", "since"])]
    pub after: Option<u64>,
    /// What is retained per service (bytes and lines on disk, the oldest line) and
    /// the retention caps, instead of lines
    #[arg(long, conflicts_with_all = ["follow", "tail", "since", "grep", "level", "timestamps", "after"])]
    pub stats: bool,
}

/// `--level`: the API's levels, with the common spellings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogLevelArg {
    Trace,
    Debug,
    Info,
    #[value(alias = "warning")]
    Warn,
    #[value(alias = "err")]
    Error,
    #[value(alias = "critical")]
    Fatal,
}

#[derive(Debug, Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// Services to restart
    #[arg(value_name = "SERVICE", required = true)]
    pub services: Vec<String>,
}

/// Where `exec` and `shell` run.
#[derive(Debug, Args)]
pub struct ExecTarget {
    #[command(flatten)]
    pub file: FileOpt,
    /// The service (must be running)
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// Kubernetes: the container (default: the pod's first)
    #[arg(short = 'c', long, value_name = "CONTAINER")]
    pub container: Option<String>,
    /// Kubernetes: the pod (default: a ready pod of the service)
    #[arg(long, value_name = "POD")]
    pub pod: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    #[command(flatten)]
    pub target: ExecTarget,
    /// Pass stdin to the command
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal (raw mode here, window size passed on)
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ShellArgs {
    #[command(flatten)]
    pub target: ExecTarget,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// Services to stop (nothing restarts them until `devenv start` or `devenv up`)
    #[arg(value_name = "SERVICE", required = true)]
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// Services to start (their dependencies start first)
    #[arg(value_name = "SERVICE", required = true)]
    pub services: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ScaleArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// A kubernetes service
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// Replicas, 1 or more (`devenv stop` takes it to none)
    #[arg(value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(i32::MAX)))]
    pub replicas: u32,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// Services to run in dev mode (their dependencies start normally)
    #[arg(value_name = "SERVICE", required = true)]
    pub services: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Sync sessions per pod: last sync, files, bytes, errors
    Status(ForwardLsArgs),
    /// Compare the pods' files with the local ones by checksum (exit 1 when they differ)
    Verify(SyncVerifyArgs),
}

#[derive(Debug, Args)]
pub struct SyncVerifyArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// Services to check (default: every service in dev mode)
    #[arg(value_name = "SERVICE")]
    pub services: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ForwardCommand {
    /// List port forwards with their health
    Ls(ForwardLsArgs),
}

#[derive(Debug, Args)]
pub struct ForwardLsArgs {
    #[command(flatten)]
    pub file: FileOpt,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Create the environment's k3d cluster from spec.cluster
    Create(ClusterArgs),
    /// Delete the environment's k3d cluster
    Delete(ClusterArgs),
    /// List the clusters devenv created, and whether they answer
    Ls,
    /// Whether the environment's cluster answers, and why not (exit 1 when it does not)
    Status(ClusterArgs),
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Save the config, dev-mode state and local data (presets, persistent volumes)
    Save(SnapshotNameArgs),
    /// Check every chunk, swap the data in, and bring the environment up
    Restore(SnapshotNameArgs),
    /// List the environment's snapshots
    Ls(ForwardLsArgs),
    /// Remove a snapshot (and the chunks no other snapshot uses)
    Rm(SnapshotNameArgs),
    /// What changed since a snapshot: config lines, dev mode, files
    Diff(SnapshotNameArgs),
}

#[derive(Debug, Subcommand)]
pub enum TfCommand {
    /// Show what terraform would change (terraform's plan, streamed)
    Plan(TfPlanArgs),
    /// Show the plan, ask, and apply exactly that plan; then the services waiting
    /// for its outputs start (or restart when a value they use changed)
    Apply(TfApplyArgs),
}

#[derive(Debug, Args)]
pub struct TfPlanArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// The terraform service
    #[arg(value_name = "SERVICE")]
    pub service: String,
}

#[derive(Debug, Args)]
pub struct TfApplyArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// The terraform service
    #[arg(value_name = "SERVICE")]
    pub service: String,
    /// Apply without asking (needed when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct SnapshotNameArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// The snapshot's name (save: default the current time)
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub file: FileOpt,
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Only print the URL; do not open a browser
    #[arg(long)]
    pub no_open: bool,
}

#[derive(Debug, Subcommand)]
pub enum DaemonCommand {
    /// Start the daemon if it is not running
    Start,
    /// Stop the daemon gracefully (stops every environment)
    Stop,
    /// Show version, pid, socket, data dir, log and uptime
    Status,
    /// Print the daemon's log
    Logs(DaemonLogsArgs),
    /// Install a systemd user unit (Linux) or LaunchAgent (macOS)
    Install(InstallArgs),
}

#[derive(Debug, Args)]
pub struct DaemonLogsArgs {
    /// Keep following new lines
    #[arg(short, long)]
    pub follow: bool,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Print the unit files instead of writing them
    #[arg(long)]
    pub print: bool,
}

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// Shell to generate completions for
    pub shell: Shell,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn file_before_or_after_the_command() {
        use clap::Parser as _;
        let mut cli = super::Cli::parse_from(["devenv", "-f", "a.yml", "validate"]);
        assert_eq!(cli.command.take_file(), None);
        assert_eq!(cli.global.file, Some("a.yml".into()));
        let mut cli = super::Cli::parse_from(["devenv", "status", "-f", "b.yml", "--json"]);
        assert_eq!(cli.command.take_file(), Some("b.yml".into()));
        assert!(cli.global.json);
        let mut cli = super::Cli::parse_from(["devenv", "cluster", "status", "-f", "d.yml"]);
        assert_eq!(cli.command.take_file(), Some("d.yml".into()));
        let mut cli = super::Cli::parse_from(["devenv", "forward", "ls", "--json"]);
        assert_eq!(cli.command.take_file(), None);
        assert!(cli.global.json);
        let mut cli = super::Cli::parse_from(["devenv", "logs", "-f", "--file", "c.yml", "api"]);
        assert_eq!(cli.command.take_file(), Some("c.yml".into()));
        assert!(matches!(cli.command, super::Command::Logs(ref l) if l.follow));
    }

    #[test]
    fn every_command_and_flag_has_help() {
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                assert!(arg.get_help().is_some(), "{path} --{id} has no help");
            }
            for sub in cmd.get_subcommands() {
                if sub.get_name() == "help" {
                    continue;
                }
                assert!(
                    sub.get_about().is_some(),
                    "{path} {} has no help",
                    sub.get_name()
                );
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        check(&super::Cli::command(), "devenv");
    }
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCommand {
    /// Create your workspace and wait until its pod is ready
    Create(WorkspaceArgs),
    /// Start a stopped workspace (its volumes are as they were)
    Start(WorkspaceArgs),
    /// Stop it: the pod goes, its volumes stay
    Stop(WorkspaceArgs),
    /// Delete it; its volumes stay unless --volumes
    Delete(WorkspaceDeleteArgs),
    /// Your workspaces (--all: every user's in the namespace)
    Ls(WorkspaceLsArgs),
    /// State, pod, volumes, and idle stop: the last activity and when it stops
    Status(WorkspaceArgs),
    /// Open a shell in the workspace
    Shell(WorkspaceArgs),
    /// Run a command in the workspace
    Exec(WorkspaceExecArgs),
    /// Forward a local port to one of its ports while this runs (LOCAL:REMOTE or PORT)
    Forward(WorkspaceForwardArgs),
    /// Copy its `sync` rules' directories into it while this runs (edits follow)
    Sync(WorkspaceArgs),
}

impl WorkspaceCommand {
    pub fn file(&mut self) -> &mut FileOpt {
        match self {
            WorkspaceCommand::Create(a)
            | WorkspaceCommand::Start(a)
            | WorkspaceCommand::Stop(a)
            | WorkspaceCommand::Status(a)
            | WorkspaceCommand::Shell(a)
            | WorkspaceCommand::Sync(a) => &mut a.file,
            WorkspaceCommand::Delete(a) => &mut a.target.file,
            WorkspaceCommand::Ls(a) => &mut a.file,
            WorkspaceCommand::Exec(a) => &mut a.target.file,
            WorkspaceCommand::Forward(a) => &mut a.target.file,
        }
    }
}

#[derive(Debug, Args)]
pub struct WorkspaceArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// The workspace (a name under spec.workspaces)
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct WorkspaceDeleteArgs {
    #[command(flatten)]
    pub target: WorkspaceArgs,
    /// Delete its volumes (workspace, history, config, ...) too
    #[arg(long)]
    pub volumes: bool,
}

#[derive(Debug, Args)]
pub struct WorkspaceLsArgs {
    #[command(flatten)]
    pub file: FileOpt,
    /// Every user's workspaces of the environment, not only yours
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct WorkspaceExecArgs {
    #[command(flatten)]
    pub target: WorkspaceArgs,
    /// Pass stdin to the command
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a terminal (raw mode here, window size passed on)
    #[arg(short = 't', long)]
    pub tty: bool,
    /// The command and its arguments, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct WorkspaceForwardArgs {
    #[command(flatten)]
    pub target: WorkspaceArgs,
    /// LOCAL:REMOTE, or PORT for the same on both sides (LOCAL 0: a free port)
    #[arg(value_name = "PORTS")]
    pub ports: String,
}
