//! Reading one service's segment files forward from a place: how a follower that
//! fell out of the in-memory ring catches up. Reads are sequential, a chunk at a
//! time (the follower's read-ahead window), through one open file; the plan (which
//! files, how long) is refreshed from the store when the cursor reaches its end.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use super::segment_format::{parse_into, Parsed};

/// A service's segment files as the store had them: a snapshot readable without
/// the hub's lock.
#[derive(Debug, Clone)]
pub(in crate::logs) struct ForwardPlan {
    pub service: Arc<str>,
    /// Oldest first.
    pub files: Vec<SegFile>,
}

#[derive(Debug, Clone)]
pub(in crate::logs) struct SegFile {
    pub path: PathBuf,
    pub index: u64,
    /// Bytes written (and flushed) when the plan was made.
    pub len: u64,
    /// Place of its first line: (sequence number, line number).
    pub first: Option<(u64, u64)>,
}

/// Where a cursor starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::logs) enum Target {
    /// The service's line with this number (a follower that knows its place).
    Line(u64),
    /// The service's first line with this sequence number or a later one (a client
    /// resuming from a position).
    Seq(u64),
}

/// What a read gives.
#[derive(Debug)]
pub(in crate::logs) enum Read {
    Lines(Vec<Parsed>),
    /// Lines before the first retained one are gone (retention deleted their
    /// segment): this many of them, counted from the target line.
    Evicted(u64),
    /// The plan is read to its end.
    End,
}

#[derive(Debug)]
pub(in crate::logs) struct DiskCursor {
    plan: ForwardPlan,
    target: Target,
    /// Index in `plan.files` of the file being read, and the offset in it.
    file: usize,
    offset: u64,
    open: Option<(u64, File)>,
    /// Place of the next line, from the last mark read.
    place: Option<(u64, u64)>,
    /// The unfinished last line of the previous chunk.
    carry: Vec<u8>,
    /// Bytes per read.
    chunk: usize,
}

impl DiskCursor {
    /// A cursor at `target` in `plan`, reading `chunk` bytes at a time.
    pub fn new(plan: ForwardPlan, target: Target, chunk: usize) -> Self {
        let mut c = Self {
            plan,
            target,
            file: 0,
            offset: 0,
            open: None,
            place: None,
            carry: Vec::new(),
            chunk,
        };
        c.seek();
        c
    }

    /// Starts at the segment holding the target: the last whose first place is at
    /// or before it (marks are per batch, so the target is found by reading on).
    fn seek(&mut self) {
        let at = |f: &SegFile| match (self.target, f.first) {
            (Target::Line(n), Some((_, line))) => line <= n,
            (Target::Seq(s), Some((seq, _))) => seq <= s,
            (_, None) => true,
        };
        self.file = self.plan.files.iter().rposition(at).unwrap_or(0);
        self.offset = 0;
        self.open = None;
        self.place = None;
        self.carry.clear();
    }

    /// Refreshes the plan (the files grew, rotated, or retention removed some),
    /// keeping the place.
    pub fn refresh(&mut self, plan: ForwardPlan) {
        let reading = self.plan.files.get(self.file).map(|f| f.index);
        self.plan = plan;
        match reading.and_then(|i| self.plan.files.iter().position(|f| f.index == i)) {
            Some(i) => self.file = i,
            // The file being read is gone: find the place again.
            None => self.seek(),
        }
    }

    /// The next lines at or after the target (at most one chunk's worth).
    pub fn read(&mut self) -> io::Result<Read> {
        loop {
            let Some(seg) = self.plan.files.get(self.file) else {
                return Ok(Read::End);
            };
            // Retention: the first retained line is after the one wanted.
            if let (Target::Line(n), Some((_, first)), 0, 0) =
                (self.target, seg.first, self.file, self.offset)
            {
                if first > n {
                    self.target = Target::Line(first);
                    return Ok(Read::Evicted(first - n));
                }
            }
            if self.offset >= seg.len {
                if self.file + 1 >= self.plan.files.len() {
                    return Ok(Read::End);
                }
                self.file += 1;
                self.offset = 0;
                self.open = None;
                self.place = None;
                self.carry.clear();
                continue;
            }
            if self.open.as_ref().is_none_or(|(i, _)| *i != seg.index) {
                match File::open(&seg.path) {
                    Ok(f) => self.open = Some((seg.index, f)),
                    // Deleted by retention since the plan: find the place again in
                    // what is left (the caller refreshes the plan).
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {
                        self.plan.files.drain(..=self.file);
                        self.seek();
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            let Some((_, file)) = &self.open else {
                unreachable!("opened above")
            };
            let want = (seg.len - self.offset).min(self.chunk as u64) as usize;
            let start = self.carry.len();
            self.carry.resize(start + want, 0);
            let n = file.read_at(&mut self.carry[start..], self.offset)?;
            self.carry.truncate(start + n);
            if n == 0 {
                // Shorter than the plan said (a failed write's torn end): next file.
                self.offset = seg.len;
                continue;
            }
            self.offset += n as u64;
            let Some(end) = self.carry.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            let mut out = Vec::new();
            parse_into(
                &self.plan.service,
                &self.carry[..end],
                &mut self.place,
                &mut out,
            );
            self.carry.drain(..=end);
            // Lines before the target, and lines without a place (written before
            // marks existed), are not the follower's.
            let target = self.target;
            out.retain(|p| match (target, p.line_no) {
                (_, None) => false,
                (Target::Line(n), Some(no)) => no >= n,
                (Target::Seq(s), Some(_)) => p.line.seq >= s,
            });
            if let Some(first) = out.first() {
                // From here on the cursor knows its line.
                self.target = Target::Line(first.line_no.unwrap_or(0));
                if let Some(last) = out.last() {
                    self.target = Target::Line(last.line_no.unwrap_or(0) + 1);
                }
                return Ok(Read::Lines(out));
            }
        }
    }
}
