//! `devenv exec SERVICE [-c C] [--pod P] [-i] [-t] -- CMD...` and `devenv shell
//! SERVICE`: one `Exec` stream. With a terminal, this one goes raw (restored on every
//! way out) and its size follows SIGWINCH; the exit code is the command's.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::AsFd;

use devenv_api::pb::{
    self, exec_input::Input, exec_output::Output, service_service_client::ServiceServiceClient,
};
use nix::sys::termios::{self, SetArg, Termios};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::cli::{ExecArgs, ExecTarget, ShellArgs};
use crate::context::Ctx;
use crate::error::{CliError, Exit, Result};

/// Bytes of stdin per message (the daemon takes up to 64 KiB).
const STDIN_CHUNK: usize = 16 * 1024;
/// Messages queued towards the daemon before stdin reads wait.
const QUEUE: usize = 8;

pub async fn exec(ctx: &Ctx, args: ExecArgs) -> Result {
    run(ctx, args.target, args.command, args.interactive, args.tty).await
}

/// `devenv workspace exec|shell`: the same stream, into a workspace.
pub async fn in_workspace(
    ctx: &Ctx,
    workspace: String,
    command: Vec<String>,
    interactive: bool,
    tty: Option<bool>,
) -> Result {
    let target = ExecTarget {
        file: Default::default(),
        service: String::new(),
        container: None,
        pod: None,
    };
    let tty = tty.unwrap_or_else(|| std::io::stdin().is_terminal());
    start(ctx, target, Some(workspace), command, interactive, tty).await
}

/// A shell: interactive, with a terminal when stdin is one (as `docker exec -it`).
pub async fn shell(ctx: &Ctx, args: ShellArgs) -> Result {
    let tty = std::io::stdin().is_terminal();
    run(ctx, args.target, Vec::new(), true, tty).await
}

async fn run(
    ctx: &Ctx,
    target: ExecTarget,
    command: Vec<String>,
    interactive: bool,
    tty: bool,
) -> Result {
    start(ctx, target, None, command, interactive, tty).await
}

async fn start(
    ctx: &Ctx,
    target: ExecTarget,
    workspace: Option<String>,
    command: Vec<String>,
    interactive: bool,
    tty: bool,
) -> Result {
    let environment = Some(ctx.env_ref()?);
    let channel = ctx.channel().await?;
    let size = if tty { terminal_size() } else { None };
    let start = pb::ExecStart {
        environment,
        service: target.service,
        command,
        tty,
        stdin: interactive,
        container: target.container.unwrap_or_default(),
        pod: target.pod.unwrap_or_default(),
        size,
        workspace: workspace.unwrap_or_default(),
    };
    let (tx, rx) = mpsc::channel(QUEUE);
    tx.send(input(Input::Start(start)))
        .await
        .map_err(|_| anyhow::anyhow!("exec: request stream closed"))?;
    let mut outputs = ServiceServiceClient::new(channel)
        .exec(ReceiverStream::new(rx))
        .await?
        .into_inner();
    // Raw only once the command runs: errors before it print on a sane terminal.
    let _raw = if tty && std::io::stdin().is_terminal() {
        Some(RawMode::enter()?)
    } else {
        None
    };
    if interactive {
        forward_stdin(tx.clone());
    }
    let mut winch = signal(SignalKind::window_change())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    loop {
        let msg = tokio::select! {
            m = outputs.message() => m?,
            _ = winch.recv(), if tty => {
                if let Some(size) = terminal_size() {
                    // Best effort: the session may be ending.
                    let _ = tx.try_send(input(Input::Resize(size)));
                }
                continue;
            }
            // Leaving ends the command (the daemon sees the stream go away); the
            // terminal is restored on the way out.
            _ = term.recv() => return Err(CliError::Code(128 + 15)),
            _ = hangup.recv() => return Err(CliError::Code(128 + 1)),
        };
        let Some(msg) = msg else {
            return Err(anyhow::anyhow!(
                "devenvd ended the session without the command's exit status"
            )
            .into());
        };
        match msg.output {
            Some(Output::Stdout(b)) => {
                stdout.write_all(&b)?;
                stdout.flush()?;
            }
            Some(Output::Stderr(b)) => {
                stderr.write_all(&b)?;
                stderr.flush()?;
            }
            Some(Output::Exit(exit)) => {
                drop(_raw);
                if !exit.message.is_empty() {
                    eprintln!("error: {}", exit.message);
                }
                return match exit.code {
                    0 => Ok(()),
                    c => Err(CliError::Code(
                        u8::try_from(c).unwrap_or(Exit::Failed as u8),
                    )),
                };
            }
            None => {}
        }
    }
}

fn input(i: Input) -> pb::ExecInput {
    pb::ExecInput { input: Some(i) }
}

/// Reads stdin on a thread of its own (a blocking read cannot be cancelled; the
/// thread ends with the process) and sends it in chunks, then end of input. A full
/// queue makes it wait: the daemon's pace, not memory, bounds what is read.
fn forward_stdin(tx: mpsc::Sender<pb::ExecInput>) {
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; STDIN_CHUNK];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => {
                    let _ = tx.blocking_send(input(Input::CloseStdin(true)));
                    return;
                }
                Ok(n) => {
                    if tx
                        .blocking_send(input(Input::Stdin(buf[..n].to_vec())))
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
    });
}

/// The size of the terminal on stdout (else stdin).
fn terminal_size() -> Option<pb::TerminalSize> {
    let (w, h) = terminal_size::terminal_size_of(std::io::stdout())
        .or_else(|| terminal_size::terminal_size_of(std::io::stdin()))?;
    Some(pb::TerminalSize {
        rows: u32::from(h.0),
        cols: u32::from(w.0),
    })
}

/// The local terminal in raw mode (keys go to the remote command as typed, Ctrl-C
/// included) until dropped: on return, error or unwind alike.
struct RawMode {
    saved: Termios,
}

impl RawMode {
    fn enter() -> Result<Self> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(stdin.as_fd()).map_err(std::io::Error::from)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw).map_err(std::io::Error::from)?;
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}
