//! A command in a container service's container (`docker::exec::attach`), driven as
//! a session: output in chunks as the client takes them, stdin, resizes, end of
//! input, the exit code from the engine; a client that goes away ends the command.

use std::time::Duration;

use bollard::container::LogOutput;
use bollard::Docker;
use futures::StreamExt;
use tokio::task::JoinSet;

use super::{feed_stdin, ExecError, ExecOutput, ExecSpec, Io, TermSize, CHUNK};
use crate::docker::exec::{self as dexec, Attached};

/// After the client went away, how long the command gets between hang-up and kill.
const HANGUP_GRACE: Duration = Duration::from_secs(2);
/// After the output ended, how long the engine may take to report the exit code.
const EXIT_REPORT: Duration = Duration::from_secs(5);

pub(super) struct ContainerExec {
    docker: Docker,
    container: String,
    attached: Attached,
    tty: bool,
}

/// Starts `spec.command` (or `shell`, see `shell_argv`) in `container`.
pub(super) async fn open(
    docker: Docker,
    service: &str,
    container: String,
    spec: &ExecSpec,
    shell: Option<String>,
) -> Result<ContainerExec, ExecError> {
    let argv = match shell {
        Some(sh) => super::shell_argv(&sh),
        None => spec.command.clone(),
    };
    let size = spec.size.map(|s| (s.rows, s.cols));
    let attached = dexec::attach(&docker, &container, argv, spec.tty, spec.stdin, size)
        .await
        .map_err(|source| ExecError::Docker {
            service: service.to_owned(),
            source,
        })?;
    Ok(ContainerExec {
        docker,
        container,
        attached,
        tty: spec.tty,
    })
}

impl ContainerExec {
    pub(super) async fn drive(self, io: Io) {
        let Io {
            input,
            output,
            closing,
        } = io;
        let ContainerExec {
            docker,
            container,
            attached,
            tty,
        } = self;
        let Attached {
            id,
            output: mut stream,
            input: stdin,
        } = attached;

        let mut feeder = JoinSet::new();
        let (d, exec_id) = (docker.clone(), id.clone());
        feeder.spawn(feed_stdin(
            input,
            Some(stdin),
            tty,
            move |size: TermSize| {
                let (d, exec_id) = (d.clone(), exec_id.clone());
                async move { dexec::resize(&d, &exec_id, size.rows, size.cols).await }
            },
        ));

        // The output ends when the command does; each piece waits for room.
        let reading = async {
            while let Some(item) = stream.next().await {
                let (bytes, wrap): (_, fn(Vec<u8>) -> ExecOutput) = match item {
                    Ok(LogOutput::StdErr { message }) => (message, ExecOutput::Stderr),
                    Ok(
                        LogOutput::StdOut { message }
                        | LogOutput::Console { message }
                        | LogOutput::StdIn { message },
                    ) => (message, ExecOutput::Stdout),
                    Err(_) => return,
                };
                for piece in bytes.chunks(CHUNK) {
                    if output.send(wrap(piece.to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        };
        let ended = tokio::select! {
            () = reading => !output.is_closed(),
            () = output.closed() => false,
            () = closing.cancelled() => false,
        };
        feeder.abort_all();
        drop(stream);
        if !ended {
            let _ = dexec::end(&docker, &container, &id, HANGUP_GRACE).await;
            return;
        }
        let exit = exit_of(&docker, &id).await;
        let _ = output.send(exit).await;
    }
}

/// The command's exit as the engine reports it.
async fn exit_of(docker: &Docker, id: &str) -> ExecOutput {
    match dexec::exit_code(docker, id, EXIT_REPORT).await {
        Ok(Some(code)) => ExecOutput::Exit {
            code: i32::try_from(code).unwrap_or(1),
            message: None,
        },
        Ok(None) => ExecOutput::Exit {
            code: 1,
            message: Some("the engine did not report the command's exit code".into()),
        },
        Err(e) => ExecOutput::Exit {
            code: 1,
            message: Some(format!("the command's exit status is unknown: {e}")),
        },
    }
}
