//! Followers: each reads at its own pace, from the in-memory ring while its place
//! is still there and from the segment files when it fell behind, then rejoins the
//! ring without a gap or a repeat. Producers never wait for a follower: the hub
//! only bumps a watch value when lines arrive.
//!
//! A follower's place is the hub's sequence number (one counter for the whole
//! environment, taken under the hub's lock) plus, per service, the number of the
//! next line it wants. Why both: the sequence number is the one order of all
//! services' lines, so a merged follow comes out in the order lines reached the
//! daemon (which the hub keeps in time order) and a client resumes from a single
//! number; the per-service line number tells exactly whether the ring still holds
//! the next line of a service and, when it does not, how many lines are gone. Both
//! are written on disk before every batch (see `segment_format`), so the segment
//! files answer the same question as the ring.
//!
//! Bounded: a follower holds references to batches the ring already holds (shared
//! by every follower), at most one read chunk per service it reads from disk
//! ([`READ_AHEAD`] split over them), and one output chunk.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};

use tokio::sync::watch;

use super::cursor::{DiskCursor, Read, Target};
use super::hub::{Inner, State};
use super::segment_format::Parsed;
use super::{Batch, LogLine};

/// Bytes a follower reads ahead from disk, over all the services it reads (each
/// reads at least [`MIN_CHUNK`] at a time).
pub const READ_AHEAD: usize = 256 * 1024;
const MIN_CHUNK: usize = 16 * 1024;
/// Lines handed out per [`Follower::recv`] at most.
const OUT_LINES: usize = 2048;

/// What a follower receives.
#[derive(Debug, Clone)]
pub enum Received {
    /// Lines in the hub's order (each with its `seq`).
    Lines(Vec<LogLine>),
    /// Lines of a service this follower will not see, and why.
    Missed(Missed),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missed {
    pub service: Arc<str>,
    pub lines: u64,
    pub reason: MissReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissReason {
    /// Disk retention (the per-service or environment cap) deleted their segment
    /// before this follower read them.
    Retention,
    /// They were never written to disk (a full or unwritable disk, or no disk log)
    /// and left the in-memory ring before this follower read them.
    NotOnDisk,
}

impl std::fmt::Display for MissReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MissReason::Retention => "removed by disk retention before they were read",
            MissReason::NotOnDisk => "not on disk and gone from memory before they were read",
        })
    }
}

/// Where a follower starts.
#[derive(Debug)]
pub(super) enum Start {
    /// After the lines the hub had: the next line number of each service then
    /// (services not listed had none: they start at their line 0).
    Now(HashMap<Arc<str>, u64>),
    /// At the first line with this sequence number or a later one.
    Seq(u64),
}

#[derive(Debug)]
pub struct Follower {
    hub: Weak<Inner>,
    changed: watch::Receiver<u64>,
    /// Services followed; `None`: all.
    only: Option<Vec<Arc<str>>>,
    start: Start,
    cursors: HashMap<Arc<str>, Cursor>,
    missed: VecDeque<Missed>,
    /// Stop before this sequence number instead of waiting for more lines.
    stop_at: Option<u64>,
}

#[derive(Debug, Default)]
struct Cursor {
    /// Number of the next line to hand out; `None` until found (resuming by seq).
    expect: Option<u64>,
    /// Lines fetched and not yet handed out, in order.
    buf: VecDeque<Piece>,
    /// Reading the segment files (the place is behind the ring).
    disk: Option<DiskCursor>,
    /// The disk cursor reached the end of its plan.
    disk_ended: bool,
    /// Size of the plan's last file when it ended: a refresh that finds no more
    /// means the lines before the ring are not on disk.
    ended_at: Option<(u64, u64)>,
    /// One past the service's last line when the hub was last looked at.
    known_end: u64,
}

#[derive(Debug)]
enum Piece {
    Ring(Arc<Batch>, usize),
    Disk(VecDeque<Parsed>),
}

impl Piece {
    fn head_seq(&self) -> Option<u64> {
        match self {
            Piece::Ring(b, from) => (*from < b.len()).then(|| b.first_seq + *from as u64),
            Piece::Disk(lines) => lines.front().map(|p| p.line.seq),
        }
    }
}

impl Cursor {
    fn head_seq(&mut self) -> Option<u64> {
        while let Some(p) = self.buf.front() {
            match p.head_seq() {
                Some(s) => return Some(s),
                None => {
                    self.buf.pop_front();
                }
            }
        }
        None
    }

    /// Lines of this service may exist that are not fetched yet.
    fn pending(&self) -> bool {
        self.expect.is_none_or(|e| e < self.known_end)
    }

    /// Moves lines with seq below `until` to `out` (at most `room`); returns how many.
    fn drain(&mut self, until: u64, room: usize, out: &mut Vec<LogLine>) -> usize {
        let mut n = 0;
        while n < room {
            let Some(piece) = self.buf.front_mut() else {
                break;
            };
            match piece {
                Piece::Ring(b, from) => {
                    if *from >= b.len() || b.first_seq + *from as u64 >= until {
                        if *from >= b.len() {
                            self.buf.pop_front();
                            continue;
                        }
                        break;
                    }
                    let line = b.get(*from);
                    out.push(line.to_line());
                    self.expect = Some(b.first_line + *from as u64 + 1);
                    *from += 1;
                    n += 1;
                }
                Piece::Disk(lines) => {
                    let Some(p) = lines.front() else {
                        self.buf.pop_front();
                        continue;
                    };
                    if p.line.seq >= until {
                        break;
                    }
                    let Some(p) = lines.pop_front() else { break };
                    self.expect = p.line_no.map(|l| l + 1).or(self.expect);
                    out.push(p.line);
                    n += 1;
                }
            }
        }
        n
    }
}

impl Follower {
    pub(super) fn new(
        hub: &Arc<Inner>,
        changed: watch::Receiver<u64>,
        only: Option<Vec<Arc<str>>>,
        start: Start,
    ) -> Self {
        Self {
            hub: Arc::downgrade(hub),
            changed,
            only,
            start,
            cursors: HashMap::new(),
            missed: VecDeque::new(),
            stop_at: None,
        }
    }

    /// Ends (`recv` gives `None`) after the lines the hub has now, instead of
    /// waiting for more: a resume without `follow`.
    pub fn until_now(mut self) -> Self {
        self.stop_at = self.hub.upgrade().map(|h| h.lock().next_seq());
        self
    }

    fn wants(&self, service: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| &**s == service))
    }

    /// The next lines (in the hub's order) or a missed-lines marker; `None` when
    /// the hub is gone.
    pub async fn recv(&mut self) -> Option<Received> {
        loop {
            if let Some(m) = self.missed.pop_front() {
                return Some(Received::Missed(m));
            }
            let hub = self.hub.upgrade()?;
            // Seen before looking: lines published after the look wake the wait.
            self.changed.borrow_and_update();
            {
                let mut st = hub.lock();
                self.refill(&mut st);
            }
            drop(hub);
            self.read_disk().await;
            if !self.missed.is_empty() {
                continue;
            }
            let mut out = self.merge();
            if let Some(stop) = self.stop_at {
                if out.last().is_some_and(|l| l.seq >= stop) {
                    out.retain(|l| l.seq < stop);
                    // Nothing after this: the next call ends.
                    self.hub = Weak::new();
                }
            }
            if !out.is_empty() {
                return Some(Received::Lines(out));
            }
            if self.cursors.values().any(|c| c.pending()) {
                // Blocked on a service whose lines are being fetched.
                continue;
            }
            if self.stop_at.is_some() || self.changed.changed().await.is_err() {
                return None;
            }
        }
    }

    /// Under the hub's lock: what each followed service has that this follower
    /// has not fetched, from the ring if it still holds it, else a disk plan.
    fn refill(&mut self, st: &mut State) {
        let services: Vec<(Arc<str>, u64)> = st
            .line_ends()
            .filter(|(s, _)| self.wants(s))
            .map(|(s, e)| (s.clone(), e))
            .collect();
        let disk_cursors = services.len().max(1);
        let (rings, mut disk) = st.parts();
        for (name, end) in services {
            let cursor = self.cursors.entry(name.clone()).or_insert_with(|| {
                let expect = match &self.start {
                    Start::Now(ends) => Some(ends.get(&name).copied().unwrap_or(0)),
                    Start::Seq(_) => None,
                };
                Cursor {
                    expect,
                    ..Cursor::default()
                }
            });
            cursor.known_end = end;
            if !cursor.buf.is_empty() {
                continue;
            }
            let ring = rings.get(&name);
            let expect = match cursor.expect {
                Some(e) => e,
                None => {
                    let Start::Seq(seq) = self.start else {
                        unreachable!("only a resume starts without a line")
                    };
                    match ring.and_then(|r| r.line_at_seq(seq)) {
                        Some(line) => {
                            cursor.expect = Some(line);
                            line
                        }
                        None => {
                            if cursor.disk.is_none() {
                                match disk.forward_plan(&name) {
                                    Some(plan) => {
                                        cursor.disk = Some(DiskCursor::new(
                                            plan,
                                            Target::Seq(seq),
                                            (READ_AHEAD / disk_cursors).max(MIN_CHUNK),
                                        ))
                                    }
                                    // Nothing older on disk: from the ring's start.
                                    None => {
                                        cursor.expect = Some(ring.map_or(end, |r| r.first_line()));
                                    }
                                }
                            } else if cursor.disk_ended {
                                // Every line on disk is before `seq`.
                                cursor.disk = None;
                                cursor.disk_ended = false;
                                cursor.expect = Some(ring.map_or(end, |r| r.first_line()));
                            }
                            continue;
                        }
                    }
                }
            };
            if expect >= end {
                continue;
            }
            if let Some(ring) = ring.filter(|r| r.first_line() <= expect) {
                cursor.disk = None;
                cursor.disk_ended = false;
                cursor.ended_at = None;
                cursor.buf.extend(
                    ring.starting_at(expect)
                        .map(|(b, from)| Piece::Ring(b.clone(), from)),
                );
                continue;
            }
            // Behind the ring: the segment files have it.
            if cursor.disk.is_some() && !cursor.disk_ended {
                continue;
            }
            let plan = disk.forward_plan(&name);
            let ring_start = ring.map_or(end, |r| r.first_line());
            match (plan, cursor.disk.as_mut()) {
                (Some(plan), Some(disk)) => {
                    let last = plan.files.last().map(|f| (f.index, f.len));
                    if last == cursor.ended_at {
                        // Read to the end and nothing more came: the lines up to
                        // the ring were never written.
                        self.missed.push_back(Missed {
                            service: name.clone(),
                            lines: ring_start - expect,
                            reason: MissReason::NotOnDisk,
                        });
                        cursor.expect = Some(ring_start);
                        cursor.disk = None;
                        cursor.disk_ended = false;
                        cursor.ended_at = None;
                    } else {
                        disk.refresh(plan);
                        cursor.disk_ended = false;
                        cursor.ended_at = None;
                    }
                }
                (Some(plan), None) => {
                    cursor.disk = Some(DiskCursor::new(
                        plan,
                        Target::Line(expect),
                        (READ_AHEAD / disk_cursors).max(MIN_CHUNK),
                    ));
                }
                (None, _) => {
                    self.missed.push_back(Missed {
                        service: name.clone(),
                        lines: ring_start - expect,
                        reason: MissReason::NotOnDisk,
                    });
                    cursor.expect = Some(ring_start);
                    cursor.disk = None;
                }
            }
        }
    }

    /// One chunk for every service read from disk whose lines are all handed out;
    /// off the async threads (a cold disk may be slow).
    async fn read_disk(&mut self) {
        let mut work: Vec<(Arc<str>, DiskCursor)> = Vec::new();
        for (name, c) in &mut self.cursors {
            if c.buf.is_empty() && !c.disk_ended {
                if let Some(d) = c.disk.take() {
                    work.push((name.clone(), d));
                }
            }
        }
        if work.is_empty() {
            return;
        }
        let done = tokio::task::spawn_blocking(move || {
            work.into_iter()
                .map(|(name, mut d)| {
                    let read = d.read();
                    (name, d, read)
                })
                .collect::<Vec<_>>()
        })
        .await;
        let Ok(done) = done else {
            // The read panicked: those cursors start over from their place.
            return;
        };
        for (name, disk, read) in done {
            let Some(c) = self.cursors.get_mut(&name) else {
                continue;
            };
            c.disk = Some(disk);
            match read {
                Ok(Read::Lines(lines)) => {
                    // A jump in line numbers: lines that never reached the disk.
                    if let (Some(e), Some(first)) =
                        (c.expect, lines.first().and_then(|p| p.line_no))
                    {
                        if first > e {
                            self.missed.push_back(Missed {
                                service: name.clone(),
                                lines: first - e,
                                reason: MissReason::NotOnDisk,
                            });
                        }
                    }
                    if c.expect.is_none() {
                        c.expect = lines.first().and_then(|p| p.line_no);
                    }
                    c.buf.push_back(Piece::Disk(lines.into()));
                }
                Ok(Read::Evicted(n)) => {
                    self.missed.push_back(Missed {
                        service: name.clone(),
                        lines: n,
                        reason: MissReason::Retention,
                    });
                    c.expect = c.expect.map(|e| e + n);
                }
                Ok(Read::End) => {
                    c.disk_ended = true;
                }
                Err(e) => {
                    tracing::warn!(service = %name, error = %e, "reading a log segment");
                    c.disk_ended = true;
                }
            }
        }
    }

    /// Hands out fetched lines in sequence order, as long as every service that
    /// may have earlier lines has its next ones fetched.
    fn merge(&mut self) -> Vec<LogLine> {
        let mut out = Vec::new();
        while out.len() < OUT_LINES {
            let mut best: Option<(u64, Arc<str>)> = None;
            let mut second = u64::MAX;
            for (name, c) in &mut self.cursors {
                match c.head_seq() {
                    Some(s) => match &best {
                        Some((b, _)) if *b <= s => second = second.min(s),
                        _ => {
                            if let Some((b, _)) = &best {
                                second = second.min(*b);
                            }
                            best = Some((s, name.clone()));
                        }
                    },
                    // Its next line may come before every fetched one.
                    None if c.pending() => return out,
                    None => {}
                }
            }
            let Some((_, name)) = best else { break };
            let room = OUT_LINES - out.len();
            let Some(c) = self.cursors.get_mut(&name) else {
                break;
            };
            if c.drain(second, room, &mut out) == 0 {
                break;
            }
        }
        out
    }
}
