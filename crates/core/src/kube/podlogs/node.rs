//! A container's log directory on its node, as the kubelet's `/logs/` handler serves
//! it through the API server (`GET /api/v1/nodes/NODE/proxy/logs/pods/NS_POD_UID/
//! CONTAINER/NAME`, allowed by `nodes/proxy`): the listing, byte ranges of a rotated
//! file (the handler is Go's `http.FileServer`, which honours `Range`), and a rotated
//! file streamed from an offset (gzipped ones decompressed as they arrive).

use futures::TryStreamExt;
use http_body_util::BodyExt;
use tokio_util::compat::FuturesAsyncReadCompatExt;

use super::rotated::{self, Unreadable};
use super::{Container, RotatedFile, READ_BYTES};

/// Bytes of a rotated file and where they lie in it.
#[derive(Debug, Default, PartialEq)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    /// The offset of `bytes[0]` in the file.
    pub at: u64,
    /// The file's size.
    pub size: u64,
}

/// Which bytes of a file to read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Span {
    /// The last `n` bytes (all of a smaller file).
    Tail(u64),
    /// `len` bytes from `start`.
    At { start: u64, len: u64 },
}

impl Span {
    fn header(self) -> String {
        match self {
            Span::Tail(n) => format!("bytes=-{}", n.max(1)),
            Span::At { start, len } => format!("bytes={start}-{}", start + len.max(1) - 1),
        }
    }
}

impl Container {
    /// The one request devenv makes of the node: `name` in the container's log
    /// directory (empty: the listing), with a `Range` header.
    async fn node_get(
        &self,
        name: &str,
        range: Option<String>,
    ) -> Result<http::Response<kube::client::Body>, Unreadable> {
        let dir = self.files_path.as_deref().ok_or(Unreadable::Unscheduled)?;
        let mut req = http::Request::get(format!("{dir}{name}"));
        if let Some(range) = range {
            req = req.header(http::header::RANGE, range);
        }
        let req = req
            .body(kube::client::Body::empty())
            .map_err(|e| Unreadable::Failed(kube::Error::HttpError(e)))?;
        let res = self
            .api
            .clone()
            .into_client()
            .send(req)
            .await
            .map_err(Unreadable::from_kube)?;
        let status = res.status();
        if status.is_client_error() || status.is_server_error() {
            let reason = status.canonical_reason().unwrap_or("error");
            let s = kube::core::Status::failure(&format!("{name}: {status}"), reason)
                .with_code(status.as_u16());
            return Err(Unreadable::from_kube(kube::Error::Api(s.boxed())));
        }
        Ok(res)
    }

    /// The names of the container's rotated files on the node, oldest first.
    pub(super) async fn node_rotated(&self) -> Result<Vec<String>, Unreadable> {
        let res = self.node_get("", None).await?;
        // A directory listing of a handful of names: bounded by the kubelet's
        // containerLogMaxFiles; cut at 1 MiB all the same.
        let body = http_body_util::Limited::new(res.into_body(), 1 << 20);
        let bytes = body
            .collect()
            .await
            .map_err(|e| Unreadable::Failed(kube::Error::Service(e)))?
            .to_bytes();
        Ok(rotated::rotated_names(
            &String::from_utf8_lossy(&bytes),
            self.restarts,
        ))
    }

    /// `span` of the uncompressed rotated file `name`.
    pub(super) async fn node_range(&self, name: &str, span: Span) -> Result<Chunk, Unreadable> {
        let res = match self.node_get(name, Some(span.header())).await {
            // Past the end of the file (or an empty one).
            Err(Unreadable::Failed(kube::Error::Api(s))) if s.code == 416 => {
                return Ok(Chunk::default());
            }
            other => other?,
        };
        if res.status() != http::StatusCode::PARTIAL_CONTENT {
            // The whole file would follow: not read here.
            return Err(Unreadable::NoRanges);
        }
        let (at, size) = res
            .headers()
            .get(http::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(content_range)
            .ok_or(Unreadable::NoRanges)?;
        let want = match span {
            Span::Tail(n) | Span::At { len: n, .. } => n,
        };
        let limit = usize::try_from(want).unwrap_or(usize::MAX);
        let body = http_body_util::Limited::new(res.into_body(), limit.max(1));
        let bytes = body
            .collect()
            .await
            .map_err(|e| Unreadable::Failed(kube::Error::Service(e)))?
            .to_bytes();
        Ok(Chunk {
            bytes: bytes.to_vec(),
            at,
            size,
        })
    }

    /// The rotated file `name` from byte `from` on (a gzipped one from its start,
    /// decompressed as it is read: memory stays at the reader's buffers).
    pub(super) async fn node_open(&self, name: &str, from: u64) -> Result<RotatedFile, Unreadable> {
        let gz = rotated::is_gzip(name);
        let range = (from > 0 && !gz).then(|| format!("bytes={from}-"));
        let res = self.node_get(name, range).await?;
        if from > 0 && !gz && res.status() != http::StatusCode::PARTIAL_CONTENT {
            return Err(Unreadable::NoRanges);
        }
        let body = res
            .into_body()
            .into_data_stream()
            .map_err(std::io::Error::other)
            .into_async_read()
            .compat();
        Ok(file_reader(
            tokio::io::BufReader::with_capacity(READ_BYTES, body),
            gz,
        ))
    }
}

/// A rotated file's bytes as lines are read from them: a gzipped one is
/// decompressed as it is read (memory: the two buffers, whatever the file's size).
pub fn file_reader(
    body: impl tokio::io::AsyncBufRead + Unpin + Send + 'static,
    gz: bool,
) -> RotatedFile {
    if gz {
        let mut gunzip = async_compression::tokio::bufread::GzipDecoder::new(body);
        gunzip.multiple_members(true);
        Box::new(tokio::io::BufReader::with_capacity(READ_BYTES, gunzip))
    } else {
        Box::new(body)
    }
}

/// `bytes START-END/SIZE`: START and SIZE.
fn content_range(v: &str) -> Option<(u64, u64)> {
    let (range, size) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (start, _) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, size.trim().parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_asked_and_read_as_http_writes_them() {
        assert_eq!(Span::Tail(65536).header(), "bytes=-65536");
        assert_eq!(Span::At { start: 10, len: 5 }.header(), "bytes=10-14");
        assert_eq!(content_range("bytes 100-199/1000"), Some((100, 1000)));
        assert_eq!(content_range("bytes */1000"), None);
    }
}
