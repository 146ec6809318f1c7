//! `exec` and `shell` into a running service: a command in a local service's workdir
//! with the environment its process got (`local.rs`, with a pseudo-terminal from
//! `pty.rs` when asked), or in a container of one of a kubernetes service's ready pods
//! (`pod.rs`, over `kube::exec`), or in a container service's container
//! (`container.rs`, over `docker::exec`).
//!
//! A session is two bounded channels: input (stdin, resizes, end of input) and output
//! (chunks, then one exit). Its task owns the command: when the output's receiver is
//! dropped (the client went away) or the daemon shuts down, the command is ended.
//! Reads wait for room in the output channel, so a slow client slows the command
//! (its pipe or terminal fills) instead of growing a buffer.

mod container;
mod local;
pub(super) mod pod;
mod pty;

use std::collections::BTreeMap;

use tokio::sync::mpsc;

use super::{Engine, EngineError, ProjectRef, UnknownService};
use crate::config::RuntimeKind;
use crate::kube::KubeError;
use crate::status::ServiceState;

/// Bytes read from the command's output at a time (one output message at most).
pub const CHUNK: usize = 32 * 1024;
/// Largest stdin message a client may send.
pub const STDIN_MAX: usize = 64 * 1024;
/// Output chunks queued for the client before the command's reads wait.
pub(super) const OUTPUT_QUEUE: usize = 16;
/// Input messages queued for the command before the client's sends wait.
pub(super) const INPUT_QUEUE: usize = 16;

/// What to run where.
#[derive(Debug, Clone, Default)]
pub struct ExecSpec {
    pub service: String,
    /// Program and arguments; empty: a shell.
    pub command: Vec<String>,
    pub tty: bool,
    /// Forward stdin (otherwise the command's stdin is empty).
    pub stdin: bool,
    pub container: Option<String>,
    pub pod: Option<String>,
    pub size: Option<TermSize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TermSize {
    pub rows: u16,
    pub cols: u16,
}

#[derive(Debug)]
pub enum ExecInput {
    Stdin(Vec<u8>),
    Resize(TermSize),
    /// End of input: stdin is closed (in a terminal: the EOF character, Ctrl-D).
    Eof,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ExecOutput {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// Last: the exit code (128 + N for signal N), with a message when the command
    /// could not be run or its status is unknown.
    Exit {
        code: i32,
        message: Option<String>,
    },
}

/// A running exec. Dropping `output` ends the command.
#[derive(Debug)]
pub struct ExecSession {
    pub input: mpsc::Sender<ExecInput>,
    pub output: mpsc::Receiver<ExecOutput>,
}

/// Why a command could not be started in a service.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("service `{service}` is not running ({state}); start it with `devenv up {service}`")]
    NotRunning { service: String, state: String },
    #[error("service `{service}` has no ready pod{}", selector_hint(.selector))]
    NoReadyPod { service: String, selector: String },
    #[error("pod `{pod}` is not a pod of service `{service}`; its pods: {}", list(.pods))]
    PodNotFound {
        service: String,
        pod: String,
        pods: Vec<String>,
    },
    #[error("pod `{pod}` has no container `{container}`; its containers: {}", list(.containers))]
    ContainerNotFound {
        pod: String,
        container: String,
        containers: Vec<String>,
    },
    #[error("cannot run `{program}` in service `{service}`: {source}")]
    Spawn {
        service: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open a terminal: {0}")]
    Pty(#[source] std::io::Error),
    /// `--pod`, or a `-c` other than its own, for a service that is one container.
    #[error(
        "service `{service}` runs in one container (`{container}`): {flag} names a pod or \
         container of a kubernetes service; leave it out"
    )]
    OneContainer {
        service: String,
        container: String,
        flag: String,
    },
    #[error("cannot exec into service `{service}`: {source}")]
    Docker {
        service: String,
        #[source]
        source: crate::docker::DockerError,
    },
    /// A service that runs no process (a terraform service).
    #[error("service `{service}` runs no process to exec into (a {runtime} service)")]
    NoProcess {
        service: String,
        runtime: &'static str,
    },
    #[error("cannot exec into service `{service}`: {source}")]
    Kube {
        service: String,
        #[source]
        source: KubeError,
    },
}

fn selector_hint(selector: &str) -> String {
    format!(" (pods labelled {selector}); see `devenv status`")
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// Exit code as shells report it: the code, or 128 + the signal.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        (None, None) => 1,
    }
}

/// The shell `devenv shell` runs: the client's `$SHELL`, else sh.
pub(super) fn shell_of(vars: &BTreeMap<String, String>) -> String {
    vars.get("SHELL")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| "sh".into())
}

/// `sh -c`: the shell named like the client's (`/bin/zsh` -> `zsh`) if the image
/// has it, else sh. The name is an argument, never part of the script.
fn shell_argv(shell: &str) -> Vec<String> {
    let name = shell.rsplit('/').next().unwrap_or("sh");
    vec![
        "sh".into(),
        "-c".into(),
        r#"command -v "$1" >/dev/null 2>&1 && exec "$1"; exec sh"#.into(),
        "sh".into(),
        name.into(),
    ]
}

impl Engine {
    /// Starts `spec.command` in a running service of the environment `req` refers to.
    pub async fn exec(&self, req: &ProjectRef, spec: ExecSpec) -> Result<ExecSession, EngineError> {
        let rt = self.find_or_register(req)?;
        let Some(cfg) = rt.config() else {
            return Err(EngineError::NotUp);
        };
        UnknownService::check(&cfg, std::slice::from_ref(&spec.service))?;
        let svc = cfg
            .service(&spec.service)
            .ok_or(EngineError::NotUp)?
            .clone();
        let state = rt
            .shared
            .status_of(&svc.name)
            .map_or(ServiceState::Stopped, |s| s.state);
        let not_running = || ExecError::NotRunning {
            service: svc.name.clone(),
            state: format!("{state:?}").to_lowercase(),
        };
        if !state.is_active() || state == ServiceState::Stopping {
            return Err(not_running().into());
        }
        let (in_tx, in_rx) = mpsc::channel(INPUT_QUEUE);
        let (out_tx, out_rx) = mpsc::channel(OUTPUT_QUEUE);
        let io = Io {
            input: in_rx,
            output: out_tx,
            closing: self.closing.clone(),
        };
        match svc.runtime {
            RuntimeKind::Local => {
                let ctx = rt
                    .supervisors
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&svc.name)
                    .and_then(|s| s.context.lock().unwrap_or_else(|p| p.into_inner()).clone())
                    .ok_or_else(not_running)?;
                let mut spec = spec;
                if spec.command.is_empty() {
                    spec.command = vec![shell_of(&req.vars)];
                }
                match local::start(&svc.name, &ctx, &spec, rt.shared.guardian.clone()) {
                    Ok(run) => {
                        self.tasks.spawn(run.drive(io));
                    }
                    // As a shell reports it: 127 not found, 126 cannot run.
                    Err(e @ ExecError::Spawn { .. }) => {
                        let code = match &e {
                            ExecError::Spawn { source, .. }
                                if source.kind() == std::io::ErrorKind::NotFound =>
                            {
                                127
                            }
                            _ => 126,
                        };
                        let exit = ExecOutput::Exit {
                            code,
                            message: Some(e.to_string()),
                        };
                        // The queue is empty and has room.
                        let _ = io.output.try_send(exit);
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            RuntimeKind::Container => {
                let name = crate::docker::container_name(&rt.shared.id, &rt.shared.name, &svc.name);
                let flag = match (&spec.pod, &spec.container) {
                    (Some(p), _) if !p.is_empty() => Some(format!("--pod {p}")),
                    (_, Some(c)) if !c.is_empty() && *c != svc.name && *c != name => {
                        Some(format!("-c {c}"))
                    }
                    _ => None,
                };
                if let Some(flag) = flag {
                    return Err(ExecError::OneContainer {
                        service: svc.name.clone(),
                        container: name,
                        flag,
                    }
                    .into());
                }
                let docker = crate::docker::connect(&req.vars).await.map_err(|source| {
                    ExecError::Docker {
                        service: svc.name.clone(),
                        source,
                    }
                })?;
                let shell = spec.command.is_empty().then(|| shell_of(&req.vars));
                let run = container::open(docker, &svc.name, name, &spec, shell).await?;
                self.tasks.spawn(run.drive(io));
            }
            RuntimeKind::Terraform | RuntimeKind::Plugin => {
                return Err(ExecError::NoProcess {
                    service: svc.name.clone(),
                    runtime: svc.runtime.as_str(),
                }
                .into());
            }
            RuntimeKind::Kubernetes => {
                let shell = spec.command.is_empty().then(|| shell_of(&req.vars));
                let conn =
                    rt.kube_env(&cfg, &req.vars)
                        .await
                        .map_err(|source| ExecError::Kube {
                            service: svc.name.clone(),
                            source,
                        })?;
                let pods = rt.shared.pod_sets(&cfg.name, &svc.name, &conn.namespace);
                let attached = pod::open(&conn, pods, &svc.name, &spec, shell).await?;
                self.tasks.spawn(attached.drive(io));
            }
        }
        Ok(ExecSession {
            input: in_tx,
            output: out_rx,
        })
    }
}

/// A session's ends, as its task holds them.
pub(super) struct Io {
    pub(super) input: mpsc::Receiver<ExecInput>,
    pub(super) output: mpsc::Sender<ExecOutput>,
    /// The daemon is shutting down.
    pub(super) closing: tokio_util::sync::CancellationToken,
}

/// The terminal's end-of-file character (Ctrl-D), sent on end of input in a tty.
const VEOF: u8 = 0x04;

/// Feeds a remote command's stdin (a pod's or a container's attach) from the client
/// until the client is done; `resize` applies a window size. End of input is a Ctrl-D
/// in a terminal, else a shutdown of the writer (the transport's half-close: kube's
/// stdin close, the engine's attach half-close; dropping a split stream's writer is not
/// enough). Never returns: the write half stays open until the task is dropped (a
/// terminal until the command ends; a dropped half would close the whole attach).
async fn feed_stdin<W, F>(
    mut input: mpsc::Receiver<ExecInput>,
    mut stdin: Option<W>,
    tty: bool,
    mut resize: impl FnMut(TermSize) -> F,
) where
    W: tokio::io::AsyncWrite + Unpin,
    F: std::future::Future<Output = ()>,
{
    use tokio::io::AsyncWriteExt;
    while let Some(msg) = input.recv().await {
        match msg {
            ExecInput::Stdin(bytes) => {
                if let Some(w) = stdin.as_mut() {
                    if w.write_all(&bytes).await.is_err() {
                        stdin = None;
                    }
                }
            }
            ExecInput::Resize(size) => resize(size).await,
            ExecInput::Eof if tty => {
                if let Some(w) = stdin.as_mut() {
                    let _ = w.write_all(&[VEOF]).await;
                }
            }
            ExecInput::Eof => {
                if let Some(mut w) = stdin.take() {
                    let _ = w.shutdown().await;
                }
            }
        }
    }
    if !tty {
        if let Some(mut w) = stdin.take() {
            let _ = w.shutdown().await;
        }
    }
    std::future::pending::<()>().await;
    drop(stdin);
}

/// Copies a command's output stream to the client in chunks of at most [`CHUNK`]
/// bytes, waiting for room: a slow client leaves the bytes in the pipe (or
/// terminal), whose writer then blocks.
async fn read_stream(
    mut from: impl tokio::io::AsyncRead + Unpin,
    out: mpsc::Sender<ExecOutput>,
    wrap: fn(Vec<u8>) -> ExecOutput,
) {
    use tokio::io::AsyncReadExt;
    let mut buf = vec![0u8; CHUNK];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if out.send(wrap(buf[..n].to_vec())).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn signal_deaths_are_128_plus_the_signal() {
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(3 << 8)), 3);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(9)), 137);
        assert_eq!(exit_code(std::process::ExitStatus::from_raw(2)), 130);
    }

    #[test]
    fn the_shell_is_passed_as_an_argument() {
        let argv = shell_argv("/usr/bin/zsh");
        assert_eq!(argv[0], "sh");
        assert_eq!(argv.last().map(String::as_str), Some("zsh"));
        assert!(!argv[2].contains("zsh"));
    }

    #[test]
    fn the_shell_is_the_clients_else_sh() {
        let mut vars = BTreeMap::new();
        assert_eq!(shell_of(&vars), "sh");
        vars.insert("SHELL".into(), "/bin/zsh".into());
        assert_eq!(shell_of(&vars), "/bin/zsh");
    }
}
