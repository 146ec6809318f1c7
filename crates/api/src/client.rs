//! Connecting to the daemon over its Unix socket.

use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no daemon is listening on {socket}")]
    NotRunning {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
    // Connect once eagerly so "not running" is an io error we can classify,
    // then hand that stream to tonic; reconnects dial the path again.
    let first = tokio::net::UnixStream::connect(socket)
        .await
        .map_err(|source| ConnectError::NotRunning {
            socket: socket.to_path_buf(),
            source,
        })?;
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
                    None => tokio::net::UnixStream::connect(&path).await?,
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
