//! `devenv daemon start|stop|status|logs|install`: managing devenvd itself. None of
//! these start the daemon implicitly except `start`.

use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::{anyhow, Context as _};
use devenv_api::pb::daemon_service_client::DaemonServiceClient;
use devenv_api::pb::{DashboardRequest, ShutdownRequest, VersionRequest, VersionResponse};
use devenv_api::ProcessEnv;
use tokio::time::Instant;

use crate::cli::{DaemonCommand, DaemonLogsArgs, InstallArgs};
use crate::context::Ctx;
use crate::daemon::{check_protocol, connect_running, find_devenvd, start};
use crate::error::{CliError, Result};
use crate::render::time::{short_duration, to_system_time};
use crate::units;

const STOP_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(ctx: &Ctx, cmd: DaemonCommand) -> Result {
    match cmd {
        DaemonCommand::Start => start_cmd(ctx).await,
        DaemonCommand::Stop => stop(ctx).await,
        DaemonCommand::Status => status(ctx).await,
        DaemonCommand::Logs(args) => logs(ctx, args).await,
        DaemonCommand::Install(args) => install(ctx, args),
    }
}

async fn start_cmd(ctx: &Ctx) -> Result {
    let (version, already) = match connect_running(&ctx.paths).await? {
        Some(ch) => {
            let v = DaemonServiceClient::new(ch)
                .version(VersionRequest {})
                .await?
                .into_inner();
            check_protocol(&v, &ctx.paths)?;
            (v, true)
        }
        None => (start(&ctx.paths, &ctx.out).await?.1, false),
    };
    if ctx.out.json {
        outln!("{}", version_json(&version, &ctx.paths.socket));
    } else if !ctx.out.quiet {
        let verb = if already {
            "already running"
        } else {
            "started"
        };
        outln!(
            "devenvd {verb} (pid {}) on {}",
            version.pid,
            ctx.paths.socket.display()
        );
    }
    Ok(())
}

async fn stop(ctx: &Ctx) -> Result {
    let Some(channel) = connect_running(&ctx.paths).await? else {
        if !ctx.out.quiet {
            outln!("devenvd is not running");
        }
        return Ok(());
    };
    let mut client = DaemonServiceClient::new(channel);
    let pid = client.version(VersionRequest {}).await?.into_inner().pid;
    match client.shutdown(ShutdownRequest {}).await {
        Ok(_) => {}
        // The daemon may close the connection before its reply makes it out.
        Err(s) if matches!(s.code(), tonic::Code::Unavailable | tonic::Code::Unknown) => {}
        Err(s) => return Err(s.into()),
    }
    drop(client);
    if !ctx.out.quiet {
        eprintln!("stopping devenvd (pid {pid})...");
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    let mut pause = Duration::from_millis(1);
    // Stopped means exited, not just "socket gone": devenvd removes its socket last
    // but holds the socket's lock until it exits, and a `devenv daemon start` in
    // between (Restart Daemon in the editor runs one right after) would find it
    // "already running". A socket left behind by a daemon that died is stale; the
    // next daemon replaces it.
    while process_alive(pid) {
        if Instant::now() >= deadline {
            if !ctx.paths.socket.exists() {
                // Gone from the socket: the pid may be another process of that
                // number (a daemon in another pid namespace reports its own).
                eprintln!(
                    "note: devenvd removed its socket, but pid {pid} still runs after {}s",
                    STOP_TIMEOUT.as_secs()
                );
                break;
            }
            return Err(anyhow!(
                "devenvd (pid {pid}) did not stop within {}s; see its log: {}",
                STOP_TIMEOUT.as_secs(),
                ctx.paths.log_file().display()
            )
            .into());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    if !ctx.out.quiet {
        outln!("devenvd stopped");
    }
    Ok(())
}

fn process_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // Signal 0 only checks existence; EPERM still means it exists.
    let exists = !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    );
    exists && !is_zombie(pid)
}

/// Exited, but not yet collected by its parent (which may never do it, e.g. a
/// container's init that does not reap): as good as gone.
fn is_zombie(pid: i32) -> bool {
    // "PID (COMM) STATE ...": COMM may hold anything, so the state follows the last ')'.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X')
        )
    })
}

async fn status(ctx: &Ctx) -> Result {
    let Some(channel) = connect_running(&ctx.paths).await? else {
        return Err(CliError::unreachable(anyhow!(
            "devenvd is not running (socket {}); start it with `devenv daemon start`",
            ctx.paths.socket.display()
        )));
    };
    let mut client = DaemonServiceClient::new(channel);
    let v = client.version(VersionRequest {}).await?.into_inner();
    // The address only: the token stays with `devenv dashboard`.
    let dashboard = match client.dashboard(DashboardRequest {}).await {
        Ok(d) if d.get_ref().port != 0 => Ok(format!("http://127.0.0.1:{}/", d.get_ref().port)),
        Ok(d) => Err(d.into_inner().error),
        Err(s) => Err(format!("unknown ({})", s.message())),
    };
    if ctx.out.json {
        let mut json = version_json(&v, &ctx.paths.socket);
        json["dashboard"] = match &dashboard {
            Ok(url) => serde_json::json!({ "url": url }),
            Err(e) => serde_json::json!({ "error": e }),
        };
        outln!("{json}");
    } else {
        let uptime = uptime(&v).map(short_duration).unwrap_or_else(|| "-".into());
        let log = if v.log_file.is_empty() {
            "-"
        } else {
            &v.log_file
        };
        outln!("version   {}", v.daemon_version);
        outln!("protocol  {}", v.protocol_version);
        outln!("pid       {}", v.pid);
        outln!("socket    {}", ctx.paths.socket.display());
        outln!("data dir  {}", v.data_dir);
        outln!("log       {log}");
        outln!("uptime    {uptime}");
        outln!(
            "guardian  pid {} ({} replaced after dying)",
            v.guardian_pid,
            v.guardian_restarts
        );
        if v.state_error.is_empty() {
            outln!("state     saved to disk");
        } else {
            let since = v
                .state_failing_since
                .as_ref()
                .and_then(to_system_time)
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .map(short_duration)
                .unwrap_or_else(|| "-".into());
            outln!(
                "state     NOT SAVED for {since} ({} failed flushes): {}",
                v.state_flush_failures,
                v.state_error
            );
        }
        match &dashboard {
            Ok(url) => outln!("dashboard {url} (`devenv dashboard` opens it)"),
            Err(e) => outln!("dashboard off: {e}"),
        }
    }
    check_protocol(&v, &ctx.paths)
}

fn uptime(v: &VersionResponse) -> Option<Duration> {
    let started = to_system_time(v.started_at.as_ref()?)?;
    SystemTime::now().duration_since(started).ok()
}

fn version_json(v: &VersionResponse, socket: &Path) -> serde_json::Value {
    serde_json::json!({
        "version": v.daemon_version,
        "protocol": v.protocol_version,
        "pid": v.pid,
        "socket": socket,
        "data_dir": v.data_dir,
        "log_file": v.log_file,
        "uptime_seconds": uptime(v).map(|d| d.as_secs()),
        "guardian": { "pid": v.guardian_pid, "restarts": v.guardian_restarts },
        "state": {
            "ok": v.state_error.is_empty(),
            "error": (!v.state_error.is_empty()).then_some(&v.state_error),
            "failing_since": v.state_failing_since.as_ref().and_then(to_system_time)
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs()),
            "flush_failures": v.state_flush_failures,
        },
    })
}

async fn logs(ctx: &Ctx, args: DaemonLogsArgs) -> Result {
    let path = ctx.paths.log_file();
    let mut file = std::fs::File::open(&path).with_context(|| {
        format!(
            "cannot open the daemon log {} (a daemon run by systemd logs to the journal: \
             journalctl --user -u devenvd)",
            path.display()
        )
    })?;
    let mut stdout = std::io::stdout().lock();
    let mut offset = std::io::copy(&mut file, &mut stdout)?;
    stdout.flush()?;
    if !args.follow {
        return Ok(());
    }
    // Like `tail -f`: the file is written by another process, so poll its size.
    let mut buf = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len < offset {
            // Truncated or replaced: start over.
            file = std::fs::File::open(&path)?;
            offset = 0;
        }
        if len == offset {
            continue;
        }
        file.seek(SeekFrom::Start(offset))?;
        buf.clear();
        offset += file.read_to_end(&mut buf)? as u64;
        stdout.write_all(&buf)?;
        stdout.flush()?;
    }
}

fn install(ctx: &Ctx, args: InstallArgs) -> Result {
    let devenvd = find_devenvd()?;
    let devenvd = std::fs::canonicalize(&devenvd)
        .with_context(|| format!("cannot resolve {}", devenvd.display()))?;
    let files: Vec<units::UnitFile> = if cfg!(target_os = "macos") {
        let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set"))?;
        let log = ctx.paths.log_file();
        vec![units::launchd_agent(
            Path::new(&home),
            &devenvd,
            &ctx.paths.socket,
            &log,
        )]
    } else {
        let dir = units::systemd_dir(&ProcessEnv)
            .ok_or_else(|| anyhow!("neither XDG_CONFIG_HOME nor HOME is set"))?;
        units::systemd_units(&dir, &devenvd).into()
    };
    if args.print {
        for f in &files {
            outln!("# {}", f.path.display());
            print!("{}", f.contents);
        }
        return Ok(());
    }
    for f in &files {
        let dir = f.path.parent().expect("unit files live in a directory");
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::write(&f.path, &f.contents)
            .with_context(|| format!("cannot write {}", f.path.display()))?;
        if !ctx.out.quiet {
            outln!("wrote {}", f.path.display());
        }
    }
    if ctx.out.quiet {
        return Ok(());
    }
    if cfg!(target_os = "macos") {
        outln!(
            "next: launchctl bootstrap gui/$(id -u) {}",
            files[0].path.display()
        );
    } else {
        outln!(
            "next: systemctl --user daemon-reload && systemctl --user enable --now devenvd.socket"
        );
        if let Some(note) = socket_mismatch(ctx) {
            eprintln!("note: {note}");
        }
    }
    Ok(())
}

/// The socket unit listens on `$XDG_RUNTIME_DIR/devenv/devenvd.sock`; say so when
/// this client would look elsewhere.
fn socket_mismatch(ctx: &Ctx) -> Option<String> {
    let runtime = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty());
    let unit_socket = runtime.map(|r| Path::new(&r).join("devenv/devenvd.sock"));
    if unit_socket.as_deref() == Some(ctx.paths.socket.as_path()) {
        return None;
    }
    Some(format!(
        "the socket unit listens on $XDG_RUNTIME_DIR/devenv/devenvd.sock, but this devenv \
         uses {} (DEVENV_SOCKET or --socket)",
        ctx.paths.socket.display()
    ))
}
