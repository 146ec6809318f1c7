//! Command line of the daemon.

use std::path::PathBuf;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;

/// The devenv daemon: runs environments and serves the devenv API on a Unix socket.
/// Usually started by `devenv` on demand, or by systemd/launchd at login.
#[derive(Debug, clap::Parser)]
#[command(name = "devenvd", version)]
pub struct Args {
    /// Socket to serve on [default: $DEVENV_SOCKET, $XDG_RUNTIME_DIR/devenv/devenvd.sock, /tmp/devenv-$UID/devenvd.sock]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Data directory for state and logs [default: $DEVENV_DATA_DIR or the platform data dir]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Append the daemon's own log here instead of stderr.
    #[arg(long, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Seconds to let services stop on shutdown before they are killed.
    #[arg(long, default_value_t = 30)]
    pub shutdown_timeout: u64,
    /// Port of the web dashboard on 127.0.0.1; 0 picks any free port
    /// [default: $DEVENV_DASHBOARD_PORT, `dashboard.port` of the config file, 7420]
    // The variable is read in server.rs: a bad value turns the dashboard off with a
    // message instead of keeping the daemon from starting.
    #[arg(long, value_name = "PORT")]
    pub dashboard_port: Option<u16>,
    /// Do not serve the web dashboard.
    #[arg(long)]
    pub no_dashboard: bool,
    /// Port of the local HTTP router on 127.0.0.1 (`http://SERVICE.ENV.localhost:PORT`);
    /// 0 picks any free port [default: $DEVENV_ROUTER_PORT, 7480]
    #[arg(long, value_name = "PORT", env = "DEVENV_ROUTER_PORT")]
    pub router_port: Option<u16>,
    /// Do not run the local HTTP router.
    #[arg(long)]
    pub no_router: bool,
    /// devenvd's config file [default: $XDG_CONFIG_HOME/devenv/devenvd.yml, ~/.config/devenv/devenvd.yml]
    #[arg(long, value_name = "FILE", env = "DEVENVD_CONFIG")]
    pub config: Option<PathBuf>,
}

pub fn init_logging(args: &Args) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_env("DEVENVD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    match &args.log_file {
        Some(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log file {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        None => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}
