//! A command in a local service: its workdir and the environment the supervisor gave
//! its process (env, env files, the client's variables, the marker that lets a
//! restarted daemon reap it). Pipes, or a pseudo-terminal with `tty`.
//!
//! The command runs in its own process group (with a terminal: its own session),
//! watched by the guardian like a service, so that nothing outlives the session:
//! when the command exits, what it left in its group is killed; when the client goes
//! away, the group is hung up, then killed after a grace.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::pty::{self, Master};
use super::{exit_code, read_stream, ExecError, ExecInput, ExecOutput, ExecSpec, Io, CHUNK, VEOF};
use crate::probe::ExecContext;
use crate::process::{self, Guardian, Leader};

/// After a hang-up, how long the command gets before SIGKILL.
const HANGUP_GRACE: Duration = Duration::from_secs(2);
/// After the command exited, how long its output may take to drain (a process that
/// left the group but holds the terminal or pipe must not hold the session open).
const DRAIN: Duration = Duration::from_secs(2);

pub(super) struct LocalRun {
    child: Child,
    leader: Leader,
    guardian: Arc<Guardian>,
    ends: Ends,
    forward_stdin: bool,
}

enum Ends {
    Pty(Arc<Master>),
    Pipes {
        stdin: Option<ChildStdin>,
        stdout: Option<tokio::process::ChildStdout>,
        stderr: Option<tokio::process::ChildStderr>,
    },
}

/// Spawns `spec.command` (not empty) with the service's `ctx`.
pub(super) fn start(
    service: &str,
    ctx: &ExecContext,
    spec: &ExecSpec,
    guardian: Arc<Guardian>,
) -> Result<LocalRun, ExecError> {
    let argv = &spec.command;
    let program = process::resolve_program(&argv[0], ctx.env.get("PATH").map(String::as_str));
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&argv[1..])
        .current_dir(&ctx.workdir)
        .env_clear()
        .envs(&ctx.env)
        .kill_on_drop(false);
    let master = if spec.tty {
        let (master, slave) = pty::open(spec.size).map_err(ExecError::Pty)?;
        let clone = |fd: &std::os::fd::OwnedFd| fd.try_clone().map_err(ExecError::Pty);
        cmd.stdin(Stdio::from(clone(&slave)?))
            .stdout(Stdio::from(clone(&slave)?))
            .stderr(Stdio::from(slave));
        if !ctx.env.contains_key("TERM") {
            cmd.env("TERM", "xterm-256color");
        }
        pty::controlling_terminal(&mut cmd);
        Some(master)
    } else {
        cmd.process_group(0)
            .stdin(if spec.stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        None
    };
    let spawned = cmd.spawn();
    // The parent's copies of the terminal's slave side go with the command: the
    // master reads EOF once the command's side is closed.
    drop(cmd);
    let mut child = spawned.map_err(|source| ExecError::Spawn {
        service: service.to_string(),
        program: argv[0].clone(),
        source,
    })?;
    let leader = Leader::of(&child);
    guardian.watch(leader.pid());
    let ends = match master {
        Some(m) => Ends::Pty(Arc::new(m)),
        None => Ends::Pipes {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        },
    };
    Ok(LocalRun {
        child,
        leader,
        guardian,
        ends,
        forward_stdin: spec.stdin,
    })
}

impl LocalRun {
    /// Runs the session to its end: output to the client, input to the command, and
    /// the exit code last.
    pub(super) async fn drive(mut self, io: Io) {
        let Io {
            input,
            output,
            closing,
        } = io;
        let pid = self.leader.pid();
        let mut readers = JoinSet::new();
        let sink = match self.ends {
            Ends::Pty(master) => {
                readers.spawn(read_pty(master.clone(), output.clone()));
                Sink::Pty(master)
            }
            Ends::Pipes {
                stdin,
                stdout,
                stderr,
            } => {
                if let Some(out) = stdout {
                    readers.spawn(read_stream(out, output.clone(), ExecOutput::Stdout));
                }
                if let Some(err) = stderr {
                    readers.spawn(read_stream(err, output.clone(), ExecOutput::Stderr));
                }
                Sink::Pipe(stdin)
            }
        };
        let mut feeder = JoinSet::new();
        feeder.spawn(feed(input, sink, self.forward_stdin));

        let exited = tokio::select! {
            () = self.leader.exited(&mut self.child) => true,
            () = output.closed() => false,
            () = closing.cancelled() => false,
        };
        if !exited {
            // The client went away (or the daemon is stopping): hang up, as a closed
            // terminal does, then kill.
            feeder.abort_all();
            process::signal_group(pid, Signal::SIGHUP);
            if tokio::time::timeout(HANGUP_GRACE, self.leader.exited(&mut self.child))
                .await
                .is_err()
            {
                process::signal_group(pid, Signal::SIGKILL);
                self.leader.exited(&mut self.child).await;
            }
        }
        // What it left in its group, while the unreaped leader still holds the id.
        process::signal_group(pid, Signal::SIGKILL);
        self.guardian.forget(pid);
        feeder.abort_all();
        let drained = tokio::time::timeout(DRAIN, async {
            while readers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            readers.abort_all();
        }
        let exit = match self.child.wait().await {
            Ok(status) => ExecOutput::Exit {
                code: exit_code(status),
                message: None,
            },
            Err(e) => ExecOutput::Exit {
                code: 1,
                message: Some(format!("cannot read the command's exit status: {e}")),
            },
        };
        let _ = output.send(exit).await;
    }
}

/// Where the client's input goes.
enum Sink {
    Pty(Arc<Master>),
    /// `None`: stdin not forwarded, or closed.
    Pipe(Option<ChildStdin>),
}

async fn feed(mut input: mpsc::Receiver<ExecInput>, mut sink: Sink, forward: bool) {
    while let Some(msg) = input.recv().await {
        match (msg, &mut sink) {
            (ExecInput::Stdin(bytes), Sink::Pty(m)) if forward => {
                let written = m.write_all(&bytes).await;
                if written.is_err() {
                    return;
                }
            }
            (ExecInput::Stdin(bytes), Sink::Pipe(stdin)) if forward => {
                // The command closed its stdin: later input has nowhere to go.
                if let Some(w) = stdin {
                    if w.write_all(&bytes).await.is_err() {
                        *stdin = None;
                    }
                }
            }
            (ExecInput::Resize(size), Sink::Pty(m)) => {
                if let Err(e) = m.resize(size) {
                    tracing::debug!(error = %e, "exec: cannot resize the terminal");
                }
            }
            (ExecInput::Eof, Sink::Pty(m)) if forward => {
                let _ = m.write_all(&[VEOF]).await;
            }
            (ExecInput::Eof, Sink::Pipe(stdin)) => *stdin = None,
            _ => {}
        }
    }
    // The client sent all it will: the command's stdin ends (a terminal stays open).
    if let Sink::Pipe(stdin) = &mut sink {
        if let Some(mut w) = stdin.take() {
            let _ = w.shutdown().await;
        }
    }
}

async fn read_pty(master: Arc<Master>, out: mpsc::Sender<ExecOutput>) {
    let mut buf = vec![0u8; CHUNK];
    loop {
        match master.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                // Waits for room: a slow client leaves the bytes in the terminal,
                // whose writer then blocks.
                if out
                    .send(ExecOutput::Stdout(buf[..n].to_vec()))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}
