//! Copying a service's stdout or stderr into the hub: one batch per read, so a
//! chatty service costs one lock and one broadcast per chunk, not per line.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{unix_nanos, Batch, LineSplitter, LogHub, Stream};

/// Bytes read from a pipe at once: the largest batch.
pub(super) const READ_BYTES: usize = 64 * 1024;
/// Buffered lines go to disk once the producer has been quiet this long.
const IDLE_FLUSH: Duration = Duration::from_millis(100);

/// Reads `pipe` until EOF or error, pushing its lines as `service`'s `stream`.
pub async fn copy_pipe(
    hub: LogHub,
    mut pipe: impl AsyncRead + Unpin,
    service: Arc<str>,
    stream: Stream,
) {
    let mut buf = vec![0u8; READ_BYTES];
    let mut splitter = LineSplitter::default();
    // Unflushed lines: the next read waits at most IDLE_FLUSH, then flushes; with
    // nothing unflushed it waits without a timer, so an idle service costs nothing.
    let mut dirty = false;
    loop {
        let read = if dirty {
            match tokio::time::timeout(IDLE_FLUSH, pipe.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => {
                    hub.flush_service(&service);
                    dirty = false;
                    continue;
                }
            }
        } else {
            pipe.read(&mut buf).await
        };
        let now = unix_nanos(SystemTime::now());
        let n = match read {
            Ok(0) | Err(_) => {
                let mut batch = Batch::new(service.clone());
                splitter.finish(now, stream, &mut batch);
                hub.push_batch(batch);
                hub.flush_service(&service);
                return;
            }
            Ok(n) => n,
        };
        // Sized for typical lines of ~80 bytes; grows when they are shorter.
        let mut batch = Batch::with_capacity(service.clone(), n, n / 64 + 1);
        splitter.feed(&buf[..n], now, stream, &mut batch);
        if !batch.is_empty() {
            hub.push_batch(batch);
            dirty = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Query;

    #[tokio::test]
    async fn copies_lines_and_the_unfinished_last_one() {
        let hub = LogHub::new();
        let data: &[u8] = b"a\nb\r\nc";
        copy_pipe(hub.clone(), data, "s".into(), Stream::Stderr).await;
        let lines = hub.snapshot(&Query::default());
        assert_eq!(
            lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert!(lines.iter().all(|l| l.stream == Stream::Stderr));
    }
}
