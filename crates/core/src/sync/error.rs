//! What can go wrong while syncing, one variant per decision a caller makes.

use std::path::PathBuf;

/// A sync failure. `Path` and `Refused` are about individual paths (the session stays
/// usable); `Stream`, `Exec` and `Start` mean the session is gone and must be reopened.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A path that could name something outside the target; nothing was sent.
    #[error("path {path:?} refused: {reason}")]
    Path { path: String, reason: &'static str },
    #[error("exclude pattern {pattern:?}: {source}")]
    Exclude {
        pattern: String,
        #[source]
        source: ignore::Error,
    },
    #[error("reading {}: {source}", path.display())]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the sync stream into pod {pod}: {source}")]
    Exec {
        pod: String,
        #[source]
        source: kube::Error,
    },
    /// The receiver did not start (no shell, target not creatable, ...).
    #[error("the sync receiver in pod {pod} did not start: {message}")]
    Start { pod: String, message: String },
    /// The stream broke or the receiver exited; the session is unusable.
    #[error("the sync stream to pod {pod} broke: {message}")]
    Stream { pod: String, message: String },
    /// The receiver refused or failed batches (e.g. a symlink leading out of the target);
    /// the other batches were applied.
    #[error("pod {pod} refused {count} sync batch(es): {message}")]
    Refused {
        pod: String,
        count: usize,
        message: String,
    },
    /// The receiver's output could not be understood.
    #[error("unexpected output from the sync receiver in pod {pod}: {line:?}")]
    Protocol { pod: String, line: String },
    /// The rule's local directory is missing, not a directory, unreadable, or was
    /// replaced during the session: nothing was sent and nothing deleted. The session
    /// stays usable; an initial sync resumes once the directory is back.
    #[error("local directory {}: {problem}; nothing is synced or deleted until it is back", path.display())]
    Source {
        path: PathBuf,
        #[source]
        problem: SourceProblem,
    },
}

/// What is wrong with a rule's local directory.
#[derive(Debug, thiserror::Error)]
pub enum SourceProblem {
    #[error("does not exist")]
    Missing,
    #[error("is not a directory")]
    NotADirectory,
    /// Moved away, or another directory now has its name (a `mv`, a branch switch):
    /// the session's view of it no longer holds.
    #[error("was moved or replaced")]
    Replaced,
    #[error("cannot be read")]
    Unreadable(#[source] std::io::Error),
}

impl SyncError {
    /// The session can't be used any more and must be reopened.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            SyncError::Stream { .. }
                | SyncError::Exec { .. }
                | SyncError::Start { .. }
                | SyncError::Protocol { .. }
        )
    }

    /// The rule's local directory is not (or no longer) there to sync from.
    pub fn is_source(&self) -> bool {
        matches!(self, SyncError::Source { .. })
    }
}
