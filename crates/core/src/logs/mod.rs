//! The log hub: every service writes lines here, every client reads from here.
//!
//! - [`hub`]: per-service rings in memory, snapshots.
//! - [`follow`]: followers, each at its own pace, from memory or disk.
//! - [`cursor`]: reading a service's segment files forward from a place.
//! - [`batch`]: lines travel in batches (one pipe read each), split on `\n`.
//! - [`segments`]: per-service segment files on disk, rotated and capped, so that
//!   logs outlive the daemon.
//! - [`pipe`]: copying a service's stdout/stderr into the hub.
//!
//! Memory is bounded: each service keeps a ring of recent lines (bounded in lines
//! and bytes), shared by every follower. A follower that falls behind the ring
//! reads the segment files (a bounded read-ahead window) instead of slowing the
//! producer down; it misses lines only when disk retention deleted them first, and
//! is then told how many and why.

mod batch;
mod cursor;
#[cfg(test)]
mod disk_full_tests;
mod follow;
#[cfg(test)]
mod follow_tests;
mod hub;
pub mod level;
mod pipe;
mod segment_format;
mod segments;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use batch::{Batch, LineRef, LineSplitter};
pub use follow::{Follower, MissReason, Missed, Received, READ_AHEAD};
pub use hub::{LogHub, LogStats, ServiceStats};
pub use level::Level;
pub use pipe::copy_pipe;
pub use segments::{LogError, SegmentLimits};

/// Lines kept in memory per service.
pub const RING_LINES: usize = 10_000;
/// Bytes of text kept in memory per service (whole batches are counted).
pub const RING_BYTES: usize = 1024 * 1024;
/// Bytes of text kept in memory by all rings of an environment together: with many
/// services each ring gets a share (but at least [`MIN_RING_BYTES`]).
pub const ENV_RING_BYTES: usize = 16 * 1024 * 1024;
pub const MIN_RING_BYTES: usize = 128 * 1024;
/// Longer lines are split: one runaway line must not hold unbounded memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;
/// Lines a snapshot without `tail` returns at most per service: the rest stays on disk.
pub const SNAPSHOT_LINES: usize = 200_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
    /// Written by devenv about the service (started, exited, ...).
    System,
}

impl Stream {
    fn code(self) -> u8 {
        match self {
            Stream::Stdout => b'o',
            Stream::Stderr => b'e',
            Stream::System => b's',
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            b'o' => Some(Stream::Stdout),
            b'e' => Some(Stream::Stderr),
            b's' => Some(Stream::System),
            _ => None,
        }
    }
}

/// One line, owned: what snapshots return.
#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// The hub's sequence number of the line (see [`hub`]): its position, which a
    /// client hands back to resume after it. 0: unknown (written by an older version).
    pub seq: u64,
    pub time: SystemTime,
    pub service: Arc<str>,
    pub stream: Stream,
    pub text: String,
}

/// What snapshots select; lines must match every part.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Empty: every service.
    pub services: Vec<String>,
    pub since: Option<SystemTime>,
    /// The last `tail` lines (0: up to [`SNAPSHOT_LINES`] per service); larger figures
    /// are clamped to [`SNAPSHOT_LINES`].
    pub tail: usize,
    pub grep: Option<regex::Regex>,
    /// Lines at this level or above ([`level::detect`]); lines with no level are left
    /// out, except devenv's own lines about the service ([`Stream::System`]: started,
    /// exited), which always pass.
    pub min_level: Option<Level>,
}

impl Query {
    pub fn wants_service(&self, service: &str) -> bool {
        self.services.is_empty() || self.services.iter().any(|s| s == service)
    }

    pub fn wants(&self, time: SystemTime, stream: Stream, text: &str) -> bool {
        self.since.is_none_or(|s| time >= s)
            && self.wants_level(stream, text)
            && self.grep.as_ref().is_none_or(|g| g.is_match(text))
    }

    fn wants_level(&self, stream: Stream, text: &str) -> bool {
        self.min_level.is_none_or(|min| {
            stream == Stream::System || level::detect(stream, text).is_some_and(|l| l >= min)
        })
    }
}

pub(crate) fn unix_nanos(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

pub(crate) fn from_unix_nanos(n: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_nanos(u64::try_from(n).unwrap_or(0))
}
