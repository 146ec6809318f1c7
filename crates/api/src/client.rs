//! Connecting to the daemon over its Unix socket. Every connection is checked before
//! a byte is sent: the socket's directory must be ours and private, and the process
//! listening must run as us (see [`crate::trust`]).

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

use crate::trust::{self, TrustError};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no daemon is listening on {socket}")]
    NotRunning {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The socket may belong to someone else: nothing was sent to it. (`reason` is in
    /// the message, not a `#[source]`, so that a report prints it once.)
    #[error("refusing to talk to {socket}: {reason}; it may be another user's impostor, so nothing was sent")]
    Untrusted { socket: PathBuf, reason: TrustError },
    #[error("cannot connect to the daemon on {socket}: {source}")]
    Transport {
        socket: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Opens a channel to the daemon at `socket`. Fails fast (no retries) when nothing
/// listens there, so callers can decide whether to start the daemon.
pub async fn connect(socket: &Path) -> Result<Channel, ConnectError> {
    // Connect once eagerly so "not running" and "not trusted" are errors we can
    // classify, then hand that stream to tonic; reconnects dial and check again.
    let first = dial(socket).await?;
    let first = std::sync::Mutex::new(Some(first));
    let path = socket.to_path_buf();
    // The URI is required by tonic but never used for routing over a Unix socket.
    Endpoint::from_static("http://devenvd.local")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let reuse = first.lock().map(|mut f| f.take()).unwrap_or(None);
            let path = path.clone();
            async move {
                let stream = match reuse {
                    Some(s) => s,
                    None => dial(&path).await.map_err(std::io::Error::other)?,
                };
                Ok::<_, std::io::Error>(TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|source| ConnectError::Transport {
            socket: socket.to_path_buf(),
            source,
        })
}

/// Connects to `socket` and checks it, sending nothing.
async fn dial(socket: &Path) -> Result<tokio::net::UnixStream, ConnectError> {
    let untrusted = |reason| ConnectError::Untrusted {
        socket: socket.to_path_buf(),
        reason,
    };
    // A missing directory falls through to the connect, which reports "not running".
    trust::check_socket_dir(socket).map_err(untrusted)?;
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| ConnectError::NotRunning {
            socket: socket.to_path_buf(),
            source,
        })?;
    trust::check_peer(&stream).map_err(untrusted)?;
    Ok(stream)
}
