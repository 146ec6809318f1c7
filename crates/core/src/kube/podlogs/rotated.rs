//! A container's rotated log files, read from its node: the lines a follower could
//! not get from the kubelet's log stream.
//!
//! The kubelet serves a container's log (`pods/log`) from its *current* file only.
//! When it rotates that file (renames it to `<restarts>.log.<YYYYMMDD-HHMMSS>` and
//! asks containerd to reopen the path) a follower that had not read the old file to
//! its end never gets the rest: its reader missed the rename, or the stream was cut
//! and a reopened one starts in the new file. The node keeps the newest rotated file
//! uncompressed, older ones gzipped (`NAME.gz`), and deletes them past
//! `containerLogMaxFiles`;
//! and the kubelet's `/logs/` handler serves `/var/log` to those allowed
//! `nodes/proxy`: `GET /api/v1/nodes/NODE/proxy/logs/pods/NS_POD_UID/CONTAINER/`.
//! These files are in the CRI log format: `<RFC 3339 time> <stream> <P|F> <text>`,
//! a `P` record being a fragment the next record continues.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

use crate::logs::MAX_LINE_BYTES;

/// Why the node's rotated files could not be read (said in the gap line).
#[derive(Debug, thiserror::Error)]
pub enum Unreadable {
    #[error("the pod had no node when devenv saw it")]
    Unscheduled,
    #[error("the node's log files are not served to devenv's credentials (nodes/proxy: {0})")]
    Refused(#[source] kube::Error),
    #[error("reading the node's log files failed: {0}")]
    Failed(#[source] kube::Error),
    #[error("the node no longer has it (404: deleted past containerLogMaxFiles)")]
    Gone(#[source] kube::Error),
    #[error("the node's log files are served without byte ranges")]
    NoRanges,
    #[error("reading the node's log file {name} failed: {source}")]
    Read {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

impl Unreadable {
    pub fn from_kube(e: kube::Error) -> Self {
        match &e {
            kube::Error::Api(s) if s.code == 401 || s.code == 403 => Unreadable::Refused(e),
            kube::Error::Api(s) if s.code == 404 => Unreadable::Gone(e),
            _ => Unreadable::Failed(e),
        }
    }
}

/// One record of a CRI log file.
#[derive(Debug, PartialEq)]
pub struct Record<'a> {
    /// Unix nanoseconds.
    pub time: i64,
    /// A fragment: the next record continues the line.
    pub partial: bool,
    pub text: &'a [u8],
}

/// Parses `<time> <stream> <P|F> <text>`; None for anything else.
pub fn record(line: &[u8]) -> Option<Record<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = parts.next()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or_default();
    let time: k8s_openapi::jiff::Timestamp = std::str::from_utf8(time).ok()?.parse().ok()?;
    let time = i64::try_from(time.as_nanosecond()).ok()?;
    let partial = match tag {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record {
        time,
        partial,
        text,
    })
}

/// The rotated files of run `restarts` in a directory listing of the kubelet's
/// `/logs/` handler, oldest first: uncompressed and gzipped (`.gz`) alike, one per
/// rotation (the uncompressed one while both exist: the kubelet removes it once
/// the `.gz` is complete).
pub fn rotated_names(listing: &str, restarts: i32) -> Vec<String> {
    let prefix = format!("{restarts}.log.");
    let mut names: Vec<(&str, bool, &str)> = listing
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter_map(|name| {
            let rest = name.strip_prefix(&prefix)?;
            let (stamp, gz) = match rest.strip_suffix(".gz") {
                Some(stamp) => (stamp, true),
                None => (rest, false),
            };
            // YYYYMMDD-HHMMSS: not a `.tmp` of a compression under way.
            let ok = stamp.len() == 15
                && stamp.bytes().enumerate().all(|(i, b)| {
                    if i == 8 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            ok.then_some((stamp, gz, name))
        })
        .collect();
    names.sort();
    names.dedup_by(|later, first| later.0 == first.0);
    names.into_iter().map(|(_, _, n)| n.to_string()).collect()
}

/// A rotated file the kubelet has compressed.
pub fn is_gzip(name: &str) -> bool {
    name.ends_with(".gz")
}

/// Reads one line (without its newline) into `line`, keeping at most
/// [`MAX_LINE_BYTES`] of it (a longer record is cut: containerd splits lines at
/// 16 KiB, so a real one never is). Returns the bytes it consumed: 0 at the end of
/// the file.
pub async fn next_line(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
) -> std::io::Result<u64> {
    line.clear();
    let mut consumed = 0u64;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(consumed);
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(line.len());
        let keep = if done { take - 1 } else { take };
        line.extend_from_slice(&buf[..keep.min(room)]);
        reader.consume(take);
        consumed += take as u64;
        if done {
            return Ok(consumed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_records_are_parsed() {
        let r = record(b"2024-05-01T12:00:00.000000123Z stdout F hello world\n").unwrap();
        assert_eq!(r.time, 1_714_564_800_000_000_123);
        assert!(!r.partial);
        assert_eq!(r.text, b"hello world");
        let p = record(b"2024-05-01T12:00:00Z stderr P 7").unwrap();
        assert!(p.partial);
        assert_eq!(p.text, b"7");
        assert_eq!(record(b"2024-05-01T12:00:00Z stdout F ").unwrap().text, b"");
        assert!(record(b"2024-05-01T12:00:00Z stdout X a").is_none());
        assert!(record(b"garbage").is_none());
    }

    #[test]
    fn rotated_files_of_this_run_are_listed_oldest_first_one_per_rotation() {
        let listing = r#"<pre>
<a href="0.log">0.log</a>
<a href="0.log.20261205-223549">0.log.20261205-223549</a>
<a href="0.log.20261205-223535.gz">0.log.20261205-223535.gz</a>
<a href="0.log.20261205-223521">0.log.20261205-223521</a>
<a href="0.log.20261205-223600.tmp">0.log.20261205-223600.tmp</a>
<a href="0.log.20261205-223535.gz.tmp">0.log.20261205-223535.gz.tmp</a>
<a href="0.log.20261205-223521.gz">0.log.20261205-223521.gz</a>
<a href="1.log.20261205-223700">1.log.20261205-223700</a>
</pre>"#;
        assert_eq!(
            rotated_names(listing, 0),
            [
                "0.log.20261205-223521",
                "0.log.20261205-223535.gz",
                "0.log.20261205-223549"
            ]
        );
        assert!(is_gzip("0.log.20261205-223535.gz"));
        assert_eq!(rotated_names(listing, 1), ["1.log.20261205-223700"]);
    }

    #[tokio::test]
    async fn lines_are_read_whole_and_bounded() {
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        let text = format!("a\n{long}\nlast");
        let mut reader = tokio::io::BufReader::with_capacity(7, text.as_bytes());
        let mut line = Vec::new();
        assert_eq!(next_line(&mut reader, &mut line).await.unwrap(), 2);
        assert_eq!(line, b"a");
        let n = next_line(&mut reader, &mut line).await.unwrap();
        assert_eq!(n as usize, MAX_LINE_BYTES + 11);
        assert_eq!(line.len(), MAX_LINE_BYTES);
        assert_eq!(next_line(&mut reader, &mut line).await.unwrap(), 4);
        assert_eq!(line, b"last");
        assert_eq!(next_line(&mut reader, &mut line).await.unwrap(), 0);
    }
}
