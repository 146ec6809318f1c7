//! How a command failed, and the exit code that says so.

use std::process::ExitCode;

/// Exit codes are part of the CLI's contract (DESIGN.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// The operation failed.
    Failed = 1,
    /// Usage or config error.
    Usage = 2,
    /// The daemon is unreachable.
    Unreachable = 3,
    /// Interrupted by Ctrl-C (128 + SIGINT, as shells report it).
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

#[derive(Debug)]
pub enum CliError {
    /// Print `error: ...` and exit with this code.
    Report(Exit, anyhow::Error),
    /// A gRPC call failed; rendered with the daemon's socket and log in `run()`.
    Rpc(tonic::Status),
    /// The problem was already printed; just exit with this code.
    Silent(Exit),
    /// Exit with the code of a command devenv ran (`exec`).
    Code(u8),
}

pub type Result<T = (), E = CliError> = std::result::Result<T, E>;

impl CliError {
    pub fn usage(err: impl Into<anyhow::Error>) -> Self {
        Self::Report(Exit::Usage, err.into())
    }

    pub fn unreachable(err: impl Into<anyhow::Error>) -> Self {
        Self::Report(Exit::Unreachable, err.into())
    }
}

impl From<anyhow::Error> for CliError {
    fn from(err: anyhow::Error) -> Self {
        Self::Report(Exit::Failed, err)
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> Self {
        Self::Report(Exit::Failed, err.into())
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        Self::Rpc(status)
    }
}

/// The exit code for a failed RPC. The daemon uses INVALID_ARGUMENT and
/// FAILED_PRECONDITION for problems in the user's config or request.
pub fn rpc_exit(code: tonic::Code) -> Exit {
    use tonic::Code as C;
    match code {
        C::InvalidArgument | C::FailedPrecondition => Exit::Usage,
        C::Unavailable => Exit::Unreachable,
        _ => Exit::Failed,
    }
}

/// True when the error is a closed pipe (`devenv logs | head`): not a failure.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_problems_exit_2_and_unavailable_exits_3() {
        assert_eq!(rpc_exit(tonic::Code::InvalidArgument), Exit::Usage);
        assert_eq!(rpc_exit(tonic::Code::FailedPrecondition), Exit::Usage);
        assert_eq!(rpc_exit(tonic::Code::Unavailable), Exit::Unreachable);
        assert_eq!(rpc_exit(tonic::Code::Internal), Exit::Failed);
    }

    #[test]
    fn broken_pipe_is_found_through_context() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let err = anyhow::Error::from(io).context("writing logs");
        assert!(is_broken_pipe(&err));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }
}
