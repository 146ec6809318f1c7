//! A command run to completion inside a container (an `exec` readiness probe).

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::Docker;
use futures::StreamExt;

use super::DockerError;

/// Output kept for the failure message; the rest is read and dropped.
const KEEP_BYTES: usize = 2048;

/// Runs `argv` in `container` and returns its exit code and the first output.
pub async fn run(
    docker: &Docker,
    container: &str,
    argv: Vec<String>,
) -> Result<(i64, String), DockerError> {
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                cmd: Some(argv),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(DockerError::api("exec"))?;
    let mut out = String::new();
    if let StartExecResults::Attached { mut output, .. } = docker
        .start_exec(&created.id, None)
        .await
        .map_err(DockerError::api("exec"))?
    {
        while let Some(chunk) = output.next().await {
            let Ok(chunk) = chunk else { break };
            if out.len() < KEEP_BYTES {
                out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
        }
    }
    let code = docker
        .inspect_exec(&created.id)
        .await
        .map_err(DockerError::api("exec"))?
        .exit_code
        .unwrap_or(-1);
    out.truncate(out.floor_char_boundary_compat(KEEP_BYTES));
    Ok((code, out))
}

trait FloorBoundary {
    fn floor_char_boundary_compat(&self, at: usize) -> usize;
}

impl FloorBoundary for String {
    fn floor_char_boundary_compat(&self, at: usize) -> usize {
        let mut i = at.min(self.len());
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}
