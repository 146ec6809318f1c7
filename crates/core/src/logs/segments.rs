//! Logs on disk: per service a directory of segment files `00000001.log`, ...; the
//! newest is appended to, and rotated when it reaches `segment_bytes`. Oldest
//! segments are deleted to keep each service under `service_bytes` and the whole
//! environment under `env_bytes`.
//!
//! A line is `<unix nanos> <o|e|s> <text>\n` (see [`super::segment_format`]).
//!
//! A write that fails (a full disk, a directory gone or read-only) pauses that
//! service's disk log: its lines still reach the ring and every live follower, one
//! system line says they are not being persisted and why, and writing is tried again
//! on the first batch after a back-off (1 s doubling to 60 s; a quiet service costs
//! nothing meanwhile). When a retry succeeds it continues in a new segment (the old
//! one may end in a torn line) and one system line says so.
//!
//! Size (issue 12): about 610 lines, 180 of them tests; the rest is one type's
//! write path (append, rotate, cap, pause, resume), which reads best in one place.
//! The on-disk format and reading back are in `segment_format.rs`.

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::cursor::{ForwardPlan, SegFile};
pub(super) use super::segment_format::{decode_name, env_dir_name, ReadPlan};
use super::segment_format::{encode_name, first_mark, format_i64, itoa_buf, mark, segment_name};
use super::{Batch, RING_LINES};

/// Buffered bytes per service before a write reaches the file.
const WRITE_BUFFER: usize = 256 * 1024;
/// Buffered lines reach the file at least this often while a service keeps writing.
pub(super) const MAX_UNFLUSHED: Duration = Duration::from_secs(1);
/// First wait before writing again after a failed write; doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("log directory {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> LogError + '_ {
    move |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentLimits {
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// Per service, oldest segments are deleted past this total.
    pub service_bytes: u64,
    /// Per environment, the oldest segments of any service are deleted past this total.
    pub env_bytes: u64,
}

impl Default for SegmentLimits {
    fn default() -> Self {
        Self {
            segment_bytes: 8 << 20,
            service_bytes: 64 << 20,
            env_bytes: 512 << 20,
        }
    }
}

/// One environment's segment files. Owned by the hub, behind its lock.
#[derive(Debug)]
pub(super) struct SegmentStore {
    dir: PathBuf,
    limits: SegmentLimits,
    services: HashMap<Arc<str>, ServiceFiles>,
    total: u64,
    /// System lines about persistence (paused, resumed) for the hub to append.
    notices: Vec<(Arc<str>, String)>,
}

#[derive(Debug)]
struct ServiceFiles {
    dir: PathBuf,
    /// Oldest first; the last one is the one appended to.
    segments: VecDeque<Segment>,
    writer: Option<BufWriter<File>>,
    /// When the oldest buffered line was written; `None`: nothing buffered.
    dirty_since: Option<Instant>,
    /// Lines in the write buffer: lost for the disk if writing it fails.
    buffered: u64,
    /// Set after a write error: lines are kept in memory only until a retry works.
    paused: Option<Paused>,
}

#[derive(Debug)]
struct Paused {
    retry_at: Instant,
    backoff: Duration,
    /// Lines that reached memory but not the disk since the pause.
    dropped: u64,
}

#[derive(Debug, Clone)]
struct Segment {
    index: u64,
    bytes: u64,
    /// Last written: the age of the segment for the environment-wide cap.
    modified: SystemTime,
    /// The place (sequence number, line number) of its first line, from its first
    /// mark; `None` for a segment written before marks existed.
    first: Option<(u64, u64)>,
}

impl SegmentStore {
    pub fn open(dir: &Path, limits: SegmentLimits) -> Result<Self, LogError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut store = Self {
            dir: dir.to_path_buf(),
            limits,
            services: HashMap::new(),
            total: 0,
            notices: Vec::new(),
        };
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Some(name) = entry.file_name().to_str().and_then(decode_name) else {
                continue;
            };
            let files = ServiceFiles::scan(entry.path())?;
            store.total += files.bytes();
            store.services.insert(name.into(), files);
        }
        store.enforce_caps();
        Ok(store)
    }

    /// What a follower reads for lines of `service` on disk, oldest segment first,
    /// with where each begins (flushed first, like [`Self::plan`]).
    pub fn forward_plan(&mut self, service: &Arc<str>) -> Option<ForwardPlan> {
        let files = self.services.get_mut(service)?;
        if let Some(text) = files.flush() {
            self.notices.push((service.clone(), text));
        }
        let files = self.services.get(service)?;
        Some(ForwardPlan {
            service: service.clone(),
            files: files
                .segments
                .iter()
                .map(|s| SegFile {
                    path: files.dir.join(segment_name(s.index)),
                    index: s.index,
                    len: s.bytes,
                    first: s.first,
                })
                .collect(),
        })
    }

    /// Per service with logs on disk: bytes, and the oldest segment's path and
    /// first place (for `logs --stats`).
    pub fn usage(&self) -> Vec<Usage> {
        self.services
            .iter()
            .filter(|(_, f)| !f.segments.is_empty())
            .map(|(name, f)| {
                let oldest = f
                    .segments
                    .front()
                    .map(|s| (f.dir.join(segment_name(s.index)), s.first));
                Usage {
                    service: name.clone(),
                    bytes: f.bytes(),
                    oldest,
                }
            })
            .collect()
    }

    pub fn limits(&self) -> SegmentLimits {
        self.limits
    }

    /// Services with logs on disk.
    pub fn services(&self) -> Vec<Arc<str>> {
        self.services
            .iter()
            .filter(|(_, f)| !f.segments.is_empty())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// Appends every line of `batch` (buffered). While the service's disk log is
    /// paused the lines are only counted, until a retry is due.
    pub fn append(&mut self, batch: &Batch) {
        let limits = self.limits;
        let service = batch.service.clone();
        let files = self.files(&service);
        let mut resumed = None;
        if let Some(p) = &mut files.paused {
            if Instant::now() < p.retry_at {
                p.dropped += batch.len() as u64;
                return;
            }
            match files.reopen() {
                Ok(delta) => {
                    resumed = files.paused.take().map(|p| p.dropped);
                    self.total = self.total.saturating_add_signed(delta);
                }
                Err(e) => {
                    let notice = self.files(&service).fail(&e, batch.len());
                    self.note(&service, notice);
                    return;
                }
            }
        }
        let files = self.files(&service);
        let written = match files.write(batch, limits) {
            Ok(w) => w,
            Err(e) => {
                let notice = files.fail(&e, batch.len());
                self.note(&service, notice);
                return;
            }
        };
        if let Some(dropped) = resumed {
            tracing::info!(service = %service, dropped, "logs are written to disk again");
            self.notices.push((
                service.clone(),
                format!(
                    "logs are written to disk again ({dropped} lines in between were kept in memory only)"
                ),
            ));
        }
        self.total += written.bytes;
        if written.rotated {
            self.enforce_caps();
        }
    }

    /// System lines about persistence since the last call, per service.
    pub fn take_notices(&mut self) -> Vec<(Arc<str>, String)> {
        std::mem::take(&mut self.notices)
    }

    fn note(&mut self, service: &Arc<str>, notice: Option<String>) {
        if let Some(text) = notice {
            self.notices.push((service.clone(), text));
        }
    }

    /// Writes what is buffered for `service` to its file.
    pub fn flush_service(&mut self, service: &str) {
        if let Some(files) = self.services.get_mut(service) {
            if let Some(text) = files.flush() {
                self.notices.push((Arc::from(service), text));
            }
        }
    }

    /// Writes buffered lines of a service that has had them for [`MAX_UNFLUSHED`].
    pub fn flush_if_stale(&mut self, service: &str) {
        if let Some(files) = self.services.get_mut(service) {
            if files
                .dirty_since
                .is_some_and(|t| t.elapsed() >= MAX_UNFLUSHED)
            {
                self.flush_service(service);
            }
        }
    }

    pub fn flush(&mut self) {
        let mut notices = Vec::new();
        for (name, files) in &mut self.services {
            if let Some(text) = files.flush() {
                notices.push((name.clone(), text));
            }
        }
        self.notices.extend(notices);
    }

    /// What to read for lines of `service` written so far (flushed first).
    pub fn plan(&mut self, service: &Arc<str>) -> Option<ReadPlan> {
        let files = self.services.get_mut(service)?;
        // Paused: what reached the disk before is still there to read.
        if let Some(text) = files.flush() {
            self.notices.push((service.clone(), text));
        }
        let files = self.services.get_mut(service)?;
        let paths = files
            .segments
            .iter()
            .map(|s| (files.dir.join(segment_name(s.index)), s.bytes))
            .collect::<Vec<_>>();
        Some(ReadPlan::new(service.clone(), paths))
    }

    fn files(&mut self, service: &Arc<str>) -> &mut ServiceFiles {
        let dir = &self.dir;
        self.services
            .entry(service.clone())
            .or_insert_with(|| ServiceFiles::empty(dir.join(encode_name(service))))
    }

    /// Deletes oldest segments (never one being appended to) until under the caps.
    fn enforce_caps(&mut self) {
        for files in self.services.values_mut() {
            while files.bytes() > self.limits.service_bytes && files.segments.len() > 1 {
                self.total -= files.remove_oldest();
            }
        }
        while self.total > self.limits.env_bytes {
            let oldest = self
                .services
                .values_mut()
                .filter(|f| f.segments.len() > 1)
                .min_by_key(|f| f.segments.front().map(|s| s.modified));
            let Some(files) = oldest else { break };
            self.total -= files.remove_oldest();
        }
    }
}

/// One service's logs on disk.
#[derive(Debug)]
pub(super) struct Usage {
    pub service: Arc<str>,
    pub bytes: u64,
    /// The oldest segment, and the place of its first line when it says.
    pub oldest: Option<(PathBuf, Option<(u64, u64)>)>,
}

struct Written {
    bytes: u64,
    rotated: bool,
}

impl ServiceFiles {
    fn empty(dir: PathBuf) -> Self {
        Self {
            dir,
            segments: VecDeque::new(),
            writer: None,
            dirty_since: None,
            buffered: 0,
            paused: None,
        }
    }

    fn scan(dir: PathBuf) -> Result<Self, LogError> {
        let mut segments = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let name = entry.file_name();
            let Some(index) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse().ok())
            else {
                continue;
            };
            let meta = entry.metadata().map_err(io_err(&entry.path()))?;
            segments.push(Segment {
                index,
                bytes: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                first: first_mark(&entry.path()),
            });
        }
        segments.sort_by_key(|s| s.index);
        Ok(Self {
            segments: segments.into(),
            ..Self::empty(dir)
        })
    }

    fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    fn remove_oldest(&mut self) -> u64 {
        let Some(seg) = self.segments.pop_front() else {
            return 0;
        };
        let path = self.dir.join(segment_name(seg.index));
        if let Err(e) = fs::remove_file(&path) {
            tracing::debug!(path = %path.display(), error = %e, "removing a log segment");
        }
        seg.bytes
    }

    fn write(&mut self, batch: &Batch, limits: SegmentLimits) -> io::Result<Written> {
        let mut rotated = false;
        let needs_new = match self.segments.back() {
            None => true,
            Some(s) => s.bytes >= limits.segment_bytes,
        };
        if needs_new {
            self.flush_checked()?;
            self.writer = None;
            rotated = !self.segments.is_empty();
            if let Some(last) = self.segments.back_mut() {
                last.modified = SystemTime::now();
            }
            let index = self.segments.back().map_or(1, |s| s.index + 1);
            self.segments.push_back(Segment {
                index,
                bytes: 0,
                modified: SystemTime::now(),
                first: None,
            });
        }
        if self.writer.is_none() {
            self.open_last()?;
        }
        let Some(w) = self.writer.as_mut() else {
            unreachable!("writer opened above")
        };
        let place = mark(batch.first_seq, batch.first_line);
        w.write_all(place.as_bytes())?;
        let mut bytes = place.len() as u64;
        let mut num = itoa_buf();
        for line in batch.iter_from(0) {
            let digits = format_i64(&mut num, line.time_nanos);
            w.write_all(digits)?;
            w.write_all(&[b' ', line.stream.code(), b' '])?;
            w.write_all(line.text.as_bytes())?;
            w.write_all(b"\n")?;
            bytes += (digits.len() + 4 + line.text.len()) as u64;
        }
        if let Some(last) = self.segments.back_mut() {
            if last.bytes == 0 {
                last.first = Some((batch.first_seq, batch.first_line));
            }
            last.bytes += bytes;
        }
        self.dirty_since.get_or_insert_with(Instant::now);
        self.buffered += batch.len() as u64;
        Ok(Written { bytes, rotated })
    }

    fn flush_checked(&mut self) -> io::Result<()> {
        self.dirty_since = None;
        match self.writer.as_mut() {
            Some(w) => w.flush().map(|()| self.buffered = 0),
            None => Ok(()),
        }
    }

    /// Writes what is buffered; a failure pauses the disk log (see [`Self::fail`]).
    fn flush(&mut self) -> Option<String> {
        self.dirty_since?;
        match self.flush_checked() {
            Ok(()) => None,
            Err(e) => self.fail(&e, 0),
        }
    }

    /// A write failed: keep lines in memory only and retry after a back-off. Returns
    /// the system line for the service's log at the start of a pause (not on a
    /// failed retry: one line per outage).
    fn fail(&mut self, e: &io::Error, lines: usize) -> Option<String> {
        // What the buffer held is lost for the disk (it is in the ring).
        self.writer = None;
        self.dirty_since = None;
        let lines = lines as u64 + std::mem::take(&mut self.buffered);
        let now = Instant::now();
        if let Some(p) = &mut self.paused {
            p.backoff = (p.backoff * 2).min(MAX_RETRY);
            p.retry_at = now + p.backoff;
            p.dropped += lines;
            return None;
        }
        self.paused = Some(Paused {
            retry_at: now + FIRST_RETRY,
            backoff: FIRST_RETRY,
            dropped: lines,
        });
        tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write logs to disk; keeping them in memory only and retrying");
        Some(format!(
            "logs are not being written to disk: {e} ({}); the last {RING_LINES} lines are kept in memory and live followers miss nothing; retrying",
            self.dir.display()
        ))
    }

    /// Opens the last segment for appending (creating the directory and file).
    fn open_last(&mut self) -> io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let index = self.segments.back().map_or(1, |s| s.index);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(segment_name(index)))?;
        self.writer = Some(BufWriter::with_capacity(WRITE_BUFFER, file));
        Ok(())
    }

    /// After a pause: continues in a new segment (the last one may end in a torn
    /// line, which readers skip) and opens it. Returns by how much the recorded size
    /// of the last segment changed (what a failed write left in it).
    fn reopen(&mut self) -> io::Result<i64> {
        let mut delta = 0i64;
        if let Some(last) = self.segments.back_mut() {
            let on_disk = fs::metadata(self.dir.join(segment_name(last.index)))
                .map_or(last.bytes, |m| m.len());
            delta = on_disk as i64 - last.bytes as i64;
            last.bytes = on_disk;
        }
        // An empty last segment (a failed retry's) is reused.
        if self.segments.back().is_none_or(|s| s.bytes > 0) {
            let index = self.segments.back().map_or(1, |s| s.index + 1);
            self.segments.push_back(Segment {
                index,
                bytes: 0,
                modified: SystemTime::now(),
                first: None,
            });
        }
        self.open_last()?;
        Ok(delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::{from_unix_nanos, LogLine, Stream};

    fn batch(service: &str, from: usize, n: usize, text_len: usize) -> Batch {
        let mut b = Batch::new(service.into());
        for i in from..from + n {
            let text = format!("{i:0width$}", width = text_len);
            b.push(1_000 + i as i64, Stream::Stdout, &text);
        }
        b
    }

    fn dir_bytes(dir: &Path) -> u64 {
        let mut total = 0;
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            total += if e.file_type().unwrap().is_dir() {
                dir_bytes(&e.path())
            } else {
                e.metadata().unwrap().len()
            };
        }
        total
    }

    fn read_all(store: &mut SegmentStore, service: &str) -> Vec<LogLine> {
        let plan = store.plan(&Arc::from(service)).expect("service on disk");
        let mut segs = Vec::new();
        plan.read_back(u64::MAX, |lines| {
            segs.push(lines);
            true
        });
        segs.into_iter().rev().flatten().collect()
    }

    #[test]
    fn lines_round_trip_with_any_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SegmentStore::open(dir.path(), SegmentLimits::default()).unwrap();
        let mut b = Batch::new("w/eird name".into());
        let texts = [
            "plain",
            "",
            " lead and trail ",
            "tab\there \r cr",
            "ünïcödé ✓",
            "1 o not a header",
        ];
        for (i, t) in texts.iter().enumerate() {
            b.push(
                i as i64 * 7,
                if i % 2 == 0 {
                    Stream::Stdout
                } else {
                    Stream::Stderr
                },
                t,
            );
        }
        b.push(99, Stream::System, "started");
        store.append(&b);
        drop(store);

        let mut store = SegmentStore::open(dir.path(), SegmentLimits::default()).unwrap();
        assert_eq!(store.services(), vec![Arc::<str>::from("w/eird name")]);
        let lines = read_all(&mut store, "w/eird name");
        let got: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(got[..texts.len()], texts);
        assert_eq!(lines[1].stream, Stream::Stderr);
        assert_eq!(lines[6].stream, Stream::System);
        assert_eq!(lines[6].time, from_unix_nanos(99));
    }

    #[test]
    fn torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SegmentStore::open(dir.path(), SegmentLimits::default()).unwrap();
        store.append(&batch("a", 0, 3, 4));
        store.flush();
        let seg = dir.path().join("a").join(segment_name(1));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"12345 o half a li").unwrap();
        drop(store);
        let mut store = SegmentStore::open(dir.path(), SegmentLimits::default()).unwrap();
        assert_eq!(read_all(&mut store, "a").len(), 3);
    }

    #[test]
    fn rotation_and_caps_keep_disk_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let limits = SegmentLimits {
            segment_bytes: 1_000,
            service_bytes: 5_000,
            env_bytes: 8_000,
        };
        let mut store = SegmentStore::open(dir.path(), limits).unwrap();
        // ~32 bytes per line; 3 services writing 40 KB each.
        for round in 0..100 {
            for svc in ["a", "b", "c"] {
                store.append(&batch(svc, round * 40, 40, 10));
                store.flush();
                let on_disk = dir_bytes(dir.path());
                // One open segment per service may overshoot by one batch.
                assert!(
                    on_disk <= limits.env_bytes + 3 * (limits.segment_bytes + 40 * 32),
                    "{on_disk} bytes on disk"
                );
            }
        }
        for svc in ["a", "b", "c"] {
            let d = dir.path().join(svc);
            assert!(dir_bytes(&d) <= limits.service_bytes + limits.segment_bytes + 40 * 32);
            let lines = read_all(&mut store, svc);
            // The newest lines survive, in order.
            assert_eq!(lines.last().unwrap().text, format!("{:010}", 100 * 40 - 1));
            assert!(lines.windows(2).all(|w| w[0].time < w[1].time));
        }
        // Reopening sees the same, and the caps still hold.
        drop(store);
        let store = SegmentStore::open(dir.path(), limits).unwrap();
        assert!(store.total <= limits.env_bytes + 3 * (limits.segment_bytes + 40 * 32));
    }

    #[test]
    fn read_back_respects_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = SegmentStore::open(dir.path(), SegmentLimits::default()).unwrap();
        store.append(&batch("a", 0, 1000, 10));
        let plan = store.plan(&Arc::from("a")).unwrap();
        let mut got = Vec::new();
        plan.read_back(320, |lines| {
            got.extend(lines);
            true
        });
        // Lines are 18 bytes ("1999 o 0000000999\n"): 320 bytes from the end hold 17
        // whole ones after the cut first one.
        assert_eq!(got.len(), 17);
        assert_eq!(got.last().unwrap().text, format!("{:010}", 999));
    }

    #[test]
    fn names_are_escaped_and_hashes_stable() {
        for n in ["api", "a.b", "x/y", "%", "..", "ü"] {
            let e = encode_name(n);
            assert!(!e.contains('/') && e != "." && e != "..");
            assert_eq!(decode_name(&e).as_deref(), Some(n));
        }
        assert_eq!(env_dir_name("/p#"), env_dir_name("/p#"));
        assert_ne!(env_dir_name("/p#"), env_dir_name("/p#staging"));
    }
}
