//! Where to begin reading a container's rotated files for the records after a time,
//! fetching as little as possible: a rotated file is up to tens of MB and devenv
//! usually wants its last few lines (the quiet check, a switch of files while
//! behind). The newest files are asked for their first record (a small range from
//! their start), the one holding the time for its tail, walking back from the end
//! by doubling steps only while the record found is not older than the time.
//! Gzipped files are read from their start (no ranges into a compressed stream).

use super::node::{Chunk, Span};
use super::rotated::{self, Unreadable};
use super::LogFile;

/// The first read of a file's end; each step back doubles it.
pub const TAIL_BYTES: u64 = 64 * 1024;
/// Enough of a file at an offset to hold one whole CRI record after the first
/// newline (containerd splits lines at 16 KiB).
const PROBE_BYTES: u64 = 32 * 1024;

/// Where reading must begin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    /// Index into the names, oldest first.
    pub file: usize,
    /// A byte offset in it: the start of a record older than the time, or 0.
    pub offset: u64,
}

/// The file of `names` (oldest first) and the offset in it from which every
/// record newer than `from` is read. `fetched` counts the bytes this fetched.
pub async fn start<K: LogFile>(
    kubelet: &K,
    names: &[String],
    from: i64,
    fetched: &mut u64,
) -> Result<Start, Unreadable> {
    for (file, name) in names.iter().enumerate().rev() {
        let first = match first_time(kubelet, name, fetched).await {
            Ok(first) => first,
            // Deleted since the listing: the older ones are too.
            Err(Unreadable::Gone(_)) => break,
            Err(e) => return Err(e),
        };
        if first.is_some_and(|f| f <= from) {
            let offset = if rotated::is_gzip(name) {
                0
            } else {
                match offset_before(kubelet, name, from, fetched).await {
                    Ok(offset) => offset,
                    Err(Unreadable::NoRanges) => 0,
                    Err(e) => return Err(e),
                }
            };
            return Ok(Start { file, offset });
        }
    }
    Ok(Start { file: 0, offset: 0 })
}

/// The time of a rotated file's first record (None: empty or not CRI).
async fn first_time<K: LogFile>(
    kubelet: &K,
    name: &str,
    fetched: &mut u64,
) -> Result<Option<i64>, Unreadable> {
    if !rotated::is_gzip(name) {
        match kubelet
            .range(
                name,
                Span::At {
                    start: 0,
                    len: PROBE_BYTES,
                },
            )
            .await
        {
            Ok(chunk) => {
                *fetched += chunk.bytes.len() as u64;
                let line = chunk
                    .bytes
                    .split(|b| *b == b'\n')
                    .next()
                    .unwrap_or_default();
                return Ok(rotated::record(line).map(|r| r.time));
            }
            Err(Unreadable::NoRanges) => {}
            Err(e) => return Err(e),
        }
    }
    let mut file = kubelet.open_rotated(name, 0).await?;
    let mut line = Vec::new();
    *fetched += rotated::next_line(&mut file, &mut line)
        .await
        .map_err(|source| Unreadable::Read {
            name: name.to_string(),
            source,
        })?;
    Ok(rotated::record(&line).map(|r| r.time))
}

/// The offset of a record older than `from` near the end of the uncompressed
/// file `name` (0: none is, or the file is small).
async fn offset_before<K: LogFile>(
    kubelet: &K,
    name: &str,
    from: i64,
    fetched: &mut u64,
) -> Result<u64, Unreadable> {
    let tail = kubelet.range(name, Span::Tail(TAIL_BYTES)).await?;
    *fetched += tail.bytes.len() as u64;
    if let Some(at) = older_record(&tail, from) {
        return Ok(at);
    }
    let mut back = TAIL_BYTES;
    while back < tail.size {
        back = back.saturating_mul(2);
        let Some(start) = tail.size.checked_sub(back).filter(|s| *s > 0) else {
            break;
        };
        let probe = kubelet
            .range(
                name,
                Span::At {
                    start,
                    len: PROBE_BYTES,
                },
            )
            .await?;
        *fetched += probe.bytes.len() as u64;
        if let Some(at) = older_record(&probe, from) {
            return Ok(at);
        }
    }
    Ok(0)
}

/// The offset of the first whole record in `chunk` if it is older than `from`
/// (a chunk from the file's start: its first record).
fn older_record(chunk: &Chunk, from: i64) -> Option<u64> {
    let skip = if chunk.at == 0 {
        0
    } else {
        chunk.bytes.iter().position(|b| *b == b'\n')? + 1
    };
    let rest = &chunk.bytes[skip..];
    let line = &rest[..rest.iter().position(|b| *b == b'\n')?];
    let r = rotated::record(line)?;
    (r.time < from).then_some(chunk.at + skip as u64)
}
