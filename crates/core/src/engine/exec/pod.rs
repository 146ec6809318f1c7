//! A command in a kubernetes service's pod: the attach (`kube::exec`) driven as a
//! session, with the exit code from the exec's final status.

use std::time::Duration;

use futures::SinkExt;
use tokio::task::JoinSet;

use super::{feed_stdin, read_stream, ExecError, ExecOutput, ExecSpec, Io, TermSize};
use crate::kube::exec::{self as kexec, PodExec, PodExecError, PodTarget};
use crate::kube::rollout::PodSet;
use crate::kube::ClusterConn;

/// After the command ended, how long its output may take to arrive.
const DRAIN: Duration = Duration::from_secs(2);

pub(in crate::engine) struct PodRun {
    exec: PodExec,
    spec: ExecSpec,
}

/// Finds the pod (among `pods`, the service's: `Shared::pod_sets`) and container
/// and starts the command (`shell`: that shell if the image has it, else sh).
pub(in crate::engine) async fn open(
    conn: &ClusterConn,
    pods: Vec<PodSet>,
    service: &str,
    spec: &ExecSpec,
    shell: Option<String>,
) -> Result<PodRun, ExecError> {
    let argv = match shell {
        Some(sh) => super::shell_argv(&sh),
        None => spec.command.clone(),
    };
    let target = PodTarget {
        pods,
        pod: spec.pod.clone(),
        container: spec.container.clone(),
    };
    let exec = kexec::exec(conn, &target, argv, spec.tty, spec.stdin)
        .await
        .map_err(|e| match e {
            PodExecError::NoReadyPod { selector } => ExecError::NoReadyPod {
                service: service.to_string(),
                selector,
            },
            PodExecError::PodNotFound { pod, pods } => ExecError::PodNotFound {
                service: service.to_string(),
                pod,
                pods,
            },
            PodExecError::ContainerNotFound {
                pod,
                container,
                containers,
            } => ExecError::ContainerNotFound {
                pod,
                container,
                containers,
            },
            PodExecError::Kube(source) => ExecError::Kube {
                service: service.to_string(),
                source,
            },
        })?;
    Ok(PodRun {
        exec,
        spec: spec.clone(),
    })
}

impl PodRun {
    pub(in crate::engine) async fn drive(self, io: Io) {
        let Io {
            input,
            output,
            closing,
        } = io;
        let PodRun { exec, spec } = self;
        let mut process = exec.process;
        let mut resize = process.terminal_size();
        if let (Some(tx), Some(size)) = (resize.as_mut(), spec.size) {
            let _ = tx.send(term_size(size)).await;
        }
        let stdin = process.stdin();
        let status = process.take_status();
        let mut readers = JoinSet::new();
        if let Some(out) = process.stdout() {
            readers.spawn(read_stream(out, output.clone(), ExecOutput::Stdout));
        }
        if let Some(err) = process.stderr() {
            readers.spawn(read_stream(err, output.clone(), ExecOutput::Stderr));
        }
        let tty = spec.tty;
        let mut feeder = JoinSet::new();
        feeder.spawn(feed_stdin(input, stdin, tty, move |size: TermSize| {
            let tx = resize.clone();
            async move {
                if let Some(mut tx) = tx {
                    let _ = tx.send(term_size(size)).await;
                }
            }
        }));

        let status = async {
            match status {
                Some(s) => s.await,
                None => None,
            }
        };
        let ended = tokio::select! {
            s = status => Some(s),
            () = output.closed() => None,
            () = closing.cancelled() => None,
        };
        feeder.abort_all();
        let Some(status) = ended else {
            // The client went away: closing the connection ends the command's
            // streams (and, with a terminal, hangs it up).
            process.abort();
            return;
        };
        if tokio::time::timeout(DRAIN, async {
            while readers.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            readers.abort_all();
        }
        let exit = match status.as_ref().and_then(kexec::exit_code) {
            Some(code) => ExecOutput::Exit {
                code,
                message: None,
            },
            None => ExecOutput::Exit {
                code: 1,
                message: Some(match status.and_then(|s| s.message) {
                    Some(m) => format!("the command's exit status is unknown: {m}"),
                    None => {
                        "the connection to the pod ended before the command's exit status".into()
                    }
                }),
            },
        };
        let _ = output.send(exit).await;
        drop(process);
    }
}

fn term_size(size: super::TermSize) -> kube::api::TerminalSize {
    kube::api::TerminalSize {
        width: size.cols,
        height: size.rows,
    }
}
