//! One environment's logs: a ring per service in memory, the segment store on disk,
//! and followers (`follow.rs`) that read both at their own pace. Every line gets a
//! sequence number (from 1, continuing across daemon restarts) and its number among
//! its service's lines under one lock, so a snapshot and a follow started together
//! neither miss nor repeat a line, and a follower finds its place in memory or on
//! disk.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::watch;

// Size (issue 12): about 610 lines, half of them tests of the hub's one lock-held
// state (rings, followers, the segment store); splitting the tests out would be the
// next step.
use super::cursor::ForwardPlan;
use super::follow::{Follower, Start};
use super::segments::{env_dir_name, ReadPlan, SegmentStore};
use super::{
    unix_nanos, Batch, LineRef, LogError, LogLine, Query, SegmentLimits, Stream, ENV_RING_BYTES,
    MIN_RING_BYTES, RING_BYTES, RING_LINES, SNAPSHOT_LINES,
};

/// One environment's logs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogHub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    state: Mutex<State>,
    /// The next sequence number, bumped for every batch: wakes followers.
    changed: watch::Sender<u64>,
}

impl Inner {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Debug)]
pub(super) struct State {
    next_seq: u64,
    /// Per service, the number of its next line.
    ends: HashMap<Arc<str>, u64>,
    /// Time of the last line published: later lines are not earlier.
    last_time: i64,
    rings: HashMap<Arc<str>, Ring>,
    store: Option<SegmentStore>,
}

impl Default for State {
    fn default() -> Self {
        Self {
            next_seq: 1,
            ends: HashMap::new(),
            last_time: 0,
            rings: HashMap::new(),
            store: None,
        }
    }
}

impl State {
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Every service with lines, and the number of its next line.
    pub(super) fn line_ends(&self) -> impl Iterator<Item = (&Arc<str>, u64)> + '_ {
        self.ends.iter().map(|(s, e)| (s, *e))
    }

    /// The rings, and what reads the disk: borrowed apart.
    pub(super) fn parts(&mut self) -> (Rings<'_>, Disk<'_>) {
        (Rings(&self.rings), Disk(&mut self.store))
    }
}

pub(super) struct Rings<'a>(&'a HashMap<Arc<str>, Ring>);

impl<'a> Rings<'a> {
    pub(super) fn get(&self, service: &str) -> Option<&'a Ring> {
        self.0.get(service).filter(|r| !r.batches.is_empty())
    }
}

pub(super) struct Disk<'a>(&'a mut Option<SegmentStore>);

impl Disk<'_> {
    pub(super) fn forward_plan(&mut self, service: &Arc<str>) -> Option<ForwardPlan> {
        self.0.as_mut()?.forward_plan(service)
    }
}

/// Recent lines of one service: whole batches, the first `skip` lines of the front
/// one already evicted.
#[derive(Debug, Default)]
pub(super) struct Ring {
    batches: VecDeque<Arc<Batch>>,
    skip: usize,
    lines: usize,
    bytes: usize,
}

impl Ring {
    /// Appends, then evicts the oldest lines past [`RING_LINES`] or `max_bytes`.
    fn push(&mut self, batch: Arc<Batch>, max_bytes: usize) {
        self.lines += batch.len();
        self.bytes += batch.bytes();
        self.batches.push_back(batch);
        while self.lines > RING_LINES || (self.bytes > max_bytes && self.batches.len() > 1) {
            let Some(front) = self.batches.front() else {
                break;
            };
            let left = front.len() - self.skip;
            let excess = self.lines.saturating_sub(RING_LINES);
            if self.bytes > max_bytes || excess >= left {
                self.bytes -= front.bytes();
                self.lines -= left;
                self.skip = 0;
                self.batches.pop_front();
            } else {
                self.skip += excess;
                self.lines -= excess;
            }
        }
    }

    fn iter(&self) -> impl DoubleEndedIterator<Item = LineRef<'_>> + '_ {
        self.batches.iter().enumerate().flat_map(move |(i, b)| {
            let from = if i == 0 { self.skip } else { 0 };
            (from..b.len()).map(move |j| b.get(j))
        })
    }

    fn oldest_time(&self) -> Option<i64> {
        self.batches.front().and_then(|b| b.first_time(self.skip))
    }

    /// Number of the oldest line held (of a non-empty ring).
    pub(super) fn first_line(&self) -> u64 {
        self.batches
            .front()
            .map_or(0, |b| b.first_line + self.skip as u64)
    }

    fn first_seq(&self) -> Option<u64> {
        self.batches.front().map(|b| b.first_seq + self.skip as u64)
    }

    /// The batches holding line `line` and later ones, each with the index to
    /// start at.
    pub(super) fn starting_at(&self, line: u64) -> impl Iterator<Item = (&Arc<Batch>, usize)> + '_ {
        self.batches
            .iter()
            .filter(move |b| b.end_line() > line)
            .map(move |b| (b, line.saturating_sub(b.first_line) as usize))
    }

    /// The number of the first line with sequence number `seq` or later, if the
    /// ring can tell (it can not when earlier lines than it holds may have it).
    pub(super) fn line_at_seq(&self, seq: u64) -> Option<u64> {
        let first = self.first_seq()?;
        if seq < first && self.first_line() > 0 {
            return None;
        }
        for b in &self.batches {
            if b.end_seq() > seq {
                let from = seq.saturating_sub(b.first_seq);
                return Some((b.first_line + from).max(self.first_line()));
            }
        }
        self.batches.back().map(|b| b.end_line())
    }
}

impl Default for LogHub {
    fn default() -> Self {
        Self::new()
    }
}

impl LogHub {
    /// Logs in memory only.
    pub fn new() -> Self {
        Self::with_store(None)
    }

    /// Logs of environment `env_id`, persisted under `log_dir`; recent lines of an
    /// earlier run are loaded back.
    pub fn open(log_dir: &Path, env_id: &str, limits: SegmentLimits) -> Result<Self, LogError> {
        let dir = log_dir.join(env_dir_name(env_id));
        let store = SegmentStore::open(&dir, limits)?;
        // For people looking at the directory: whose logs these are.
        let _ = std::fs::write(dir.join("environment"), format!("{env_id}\n"));
        let mut store = store;
        let plans: Vec<ReadPlan> = store
            .services()
            .iter()
            .filter_map(|s| store.plan(s))
            .collect();
        let hub = Self::with_store(Some(store));
        for plan in plans {
            hub.preload(&plan);
        }
        Ok(hub)
    }

    fn with_store(store: Option<SegmentStore>) -> Self {
        let (changed, _) = watch::channel(1);
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    store,
                    ..State::default()
                }),
                changed,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.lock()
    }

    /// The last lines on disk of one service into its ring, with their places (the
    /// marks on disk): sequence numbers and line numbers continue from them. Lines
    /// without a place (written by an older version) stay on disk only.
    fn preload(&self, plan: &ReadPlan) {
        let mut segs = Vec::new();
        let mut n = 0;
        plan.read_back_parsed(RING_BYTES as u64, |lines| {
            n += lines.len();
            segs.push(lines);
            n < RING_LINES
        });
        let lines: Vec<_> = segs.into_iter().rev().flatten().collect();
        let lines = &lines[lines.len().saturating_sub(RING_LINES)..];
        let mut batches: Vec<Batch> = Vec::new();
        for p in lines {
            let Some(line_no) = p.line_no else { continue };
            let next = batches
                .last()
                .is_some_and(|b| b.end_seq() == p.line.seq && b.end_line() == line_no);
            if !next {
                let mut b = Batch::new(p.line.service.clone());
                b.first_seq = p.line.seq;
                b.first_line = line_no;
                batches.push(b);
            }
            if let Some(b) = batches.last_mut() {
                b.push(unix_nanos(p.line.time), p.line.stream, &p.line.text);
            }
        }
        let Some(last) = batches.last() else { return };
        let mut st = self.lock();
        st.next_seq = st.next_seq.max(last.end_seq());
        st.ends.insert(last.service.clone(), last.end_line());
        let max_bytes = ring_budget(st.rings.len() + 1);
        let ring = st.rings.entry(last.service.clone()).or_default();
        for b in batches {
            ring.push(Arc::new(b), max_bytes);
        }
    }

    /// Appends a line written by devenv or a test; it reaches disk at once.
    pub fn push(&self, service: &Arc<str>, stream: Stream, text: &str) {
        let mut batch = Batch::new(service.clone());
        for line in text.split('\n') {
            batch.push(unix_nanos(SystemTime::now()), stream, line);
        }
        self.push_batch(batch);
        if stream == Stream::System {
            self.flush_service(service);
        }
    }

    /// Appends lines of one service. Never waits for readers; the disk write is
    /// buffered (see [`LogHub::flush_service`]).
    pub fn push_batch(&self, batch: Batch) {
        if batch.is_empty() {
            return;
        }
        let mut st = self.lock();
        self.publish(&mut st, batch);
        self.publish_notices(&mut st);
    }

    /// Lines about the disk log (not persisted, persisted again) go where the
    /// service's own lines go. Appending one may produce another (a resumed disk that
    /// fails again): bounded by two rounds.
    fn publish_notices(&self, st: &mut State) {
        for _ in 0..2 {
            let notices = st
                .store
                .as_mut()
                .map(SegmentStore::take_notices)
                .unwrap_or_default();
            if notices.is_empty() {
                return;
            }
            for (service, text) in notices {
                let mut batch = Batch::new(service);
                batch.push(unix_nanos(SystemTime::now()), Stream::System, &text);
                self.publish(st, batch);
            }
        }
    }

    fn publish(&self, st: &mut State, mut batch: Batch) {
        batch.first_seq = st.next_seq;
        st.next_seq = batch.end_seq();
        let end = st.ends.entry(batch.service.clone()).or_insert(0);
        batch.first_line = *end;
        *end = batch.end_line();
        st.last_time = batch.raise_times(st.last_time);
        if let Some(store) = st.store.as_mut() {
            store.append(&batch);
            store.flush_if_stale(&batch.service);
        }
        let batch = Arc::new(batch);
        let max_bytes = ring_budget(st.rings.len() + 1);
        st.rings
            .entry(batch.service.clone())
            .or_default()
            .push(batch.clone(), max_bytes);
        // Under the lock, after the state changed: a follower that looked before
        // this is woken.
        self.inner.changed.send_replace(st.next_seq);
    }

    /// Writes buffered lines of `service` to disk: when its producer goes idle.
    pub fn flush_service(&self, service: &str) {
        let mut st = self.lock();
        if let Some(store) = st.store.as_mut() {
            store.flush_service(service);
        }
        self.publish_notices(&mut st);
    }

    /// Writes every buffered line to disk (shutdown).
    pub fn flush(&self) {
        let mut st = self.lock();
        if let Some(store) = st.store.as_mut() {
            store.flush();
        }
        self.publish_notices(&mut st);
    }

    /// Lines matching `query`, merged in time order, the last `query.tail` of them.
    /// Reads disk when the rings do not reach back far enough: call from a context
    /// that may block.
    pub fn snapshot(&self, query: &Query) -> Vec<LogLine> {
        self.snapshot_and_follow(query, false).0
    }

    /// [`LogHub::snapshot`] and, when `follow`, a follower that starts exactly after
    /// the snapshot's lines.
    pub fn snapshot_and_follow(
        &self,
        query: &Query,
        follow: bool,
    ) -> (Vec<LogLine>, Option<Follower>) {
        // `--tail N` comes from a client: clamped here, so no request can make the daemon
        // read a whole log history into memory.
        let tail = query.tail.min(SNAPSHOT_LINES);
        let limit = if tail > 0 { tail } else { SNAPSHOT_LINES };
        let since = query.since.map(unix_nanos);
        let mut per_service: Vec<Vec<LogLine>> = Vec::new();
        // Services whose ring lacks lines the query wants: (index in per_service,
        // plan, lines of the ring, lines had from it).
        let mut from_disk: Vec<(usize, ReadPlan, usize, usize)> = Vec::new();
        let follower;
        {
            let mut st = self.lock();
            follower = follow.then(|| {
                let only = (!query.services.is_empty()).then(|| {
                    query
                        .services
                        .iter()
                        .map(|s| Arc::from(s.as_str()))
                        .collect()
                });
                Follower::new(
                    &self.inner,
                    self.inner.changed.subscribe(),
                    only,
                    Start::Now(st.ends.clone()),
                )
            });
            let State { rings, store, .. } = &mut *st;
            let mut names: Vec<Arc<str>> = rings.keys().cloned().collect();
            if let Some(store) = store.as_ref() {
                names.extend(
                    store
                        .services()
                        .into_iter()
                        .filter(|s| !rings.contains_key(s)),
                );
            }
            for name in names.into_iter().filter(|n| query.wants_service(n)) {
                let empty = Ring::default();
                let ring = rings.get(&name).unwrap_or(&empty);
                let mut lines: Vec<LogLine> = ring
                    .iter()
                    .rev()
                    .filter(|l| query.wants(l.time(), l.stream, l.text))
                    .take(limit)
                    .map(|l| l.to_line())
                    .collect();
                lines.reverse();
                let ring_reaches_since =
                    since.is_some_and(|s| ring.oldest_time().is_some_and(|t| t <= s));
                if lines.len() < limit && !ring_reaches_since {
                    if let Some(plan) = store.as_mut().and_then(|s| s.plan(&name)) {
                        from_disk.push((per_service.len(), plan, ring.lines, lines.len()));
                    }
                }
                per_service.push(lines);
            }
        }
        // Older lines from disk, without the lock: producers keep going.
        for (i, plan, ring_lines, have) in from_disk {
            let mut older = read_older(&plan, query, ring_lines, limit - have);
            older.append(&mut per_service[i]);
            per_service[i] = older;
        }
        let mut lines: Vec<LogLine> = per_service.into_iter().flatten().collect();
        // Time order is the hub's order except between lines of one instant (the hub
        // raises a late line's time to the last one's): the position breaks the tie.
        lines.sort_by_key(|l| (l.time, l.seq));
        if tail > 0 && lines.len() > tail {
            lines.drain(..lines.len() - tail);
        }
        (lines, follower)
    }

    /// Bytes and lines per service on disk and in memory. Reads the first line of
    /// each service's oldest segment: call from a context that may block.
    pub fn stats(&self) -> LogStats {
        let (limits, usage, mut services) = {
            let st = self.lock();
            let limits = st.store.as_ref().map(SegmentStore::limits);
            let usage = st
                .store
                .as_ref()
                .map(SegmentStore::usage)
                .unwrap_or_default();
            let services: Vec<ServiceStats> = st
                .ends
                .keys()
                .map(|name| ServiceStats {
                    service: name.clone(),
                    disk_bytes: 0,
                    disk_lines: None,
                    oldest: None,
                    memory_lines: st.rings.get(name).map_or(0, |r| r.lines),
                })
                .collect();
            let ends = st.ends.clone();
            (limits, (usage, ends), services)
        };
        let (usage, ends) = usage;
        for super::segments::Usage {
            service: name,
            bytes,
            oldest,
        } in usage
        {
            let i = match services.iter().position(|s| s.service == name) {
                Some(i) => i,
                None => {
                    services.push(ServiceStats {
                        service: name.clone(),
                        disk_bytes: 0,
                        disk_lines: None,
                        oldest: None,
                        memory_lines: 0,
                    });
                    services.len() - 1
                }
            };
            let s = &mut services[i];
            s.disk_bytes = bytes;
            if let Some((path, first)) = oldest {
                s.disk_lines = first
                    .zip(ends.get(&name))
                    .map(|((_, line), end)| end.saturating_sub(line));
                s.oldest = super::segment_format::first_line(&name, &path);
            }
        }
        services.sort_by(|a, b| a.service.cmp(&b.service));
        LogStats { limits, services }
    }

    /// The last `n` output lines of one service (for failure reports).
    pub fn last_lines(&self, service: &str, n: usize) -> Vec<String> {
        let st = self.lock();
        let Some(ring) = st.rings.get(service) else {
            return Vec::new();
        };
        let mut lines: Vec<String> = ring
            .iter()
            .rev()
            .filter(|l| l.stream != Stream::System)
            .take(n)
            .map(|l| l.text.to_string())
            .collect();
        lines.reverse();
        lines
    }

    /// Lines pushed from now on, of every service (`only`: of these).
    pub fn follow(&self, only: Option<Vec<Arc<str>>>) -> Follower {
        let st = self.lock();
        Follower::new(
            &self.inner,
            self.inner.changed.subscribe(),
            only,
            Start::Now(st.ends.clone()),
        )
    }

    /// Lines from position `seq` on (the first line whose sequence number is `seq`
    /// or later), from memory or disk: a client resuming after the last line it
    /// had (`seq` = its position + 1).
    pub fn resume(&self, seq: u64, only: Option<Vec<Arc<str>>>) -> Follower {
        Follower::new(
            &self.inner,
            self.inner.changed.subscribe(),
            only,
            Start::Seq(seq),
        )
    }
}

/// What the hub holds, per service (`devenv logs --stats`).
#[derive(Debug, Clone)]
pub struct LogStats {
    /// The retention caps; `None` when logs are kept in memory only.
    pub limits: Option<SegmentLimits>,
    pub services: Vec<ServiceStats>,
}

#[derive(Debug, Clone)]
pub struct ServiceStats {
    pub service: Arc<str>,
    pub disk_bytes: u64,
    /// Lines from the oldest retained one to the newest (`None`: segments written
    /// by an older version, which do not number their lines).
    pub disk_lines: Option<u64>,
    /// The oldest line retained on disk.
    pub oldest: Option<LogLine>,
    pub memory_lines: usize,
}

/// Bytes each ring may hold when there are `rings` of them: [`RING_BYTES`], less
/// when many services share [`ENV_RING_BYTES`] (disk keeps the rest).
fn ring_budget(rings: usize) -> usize {
    (ENV_RING_BYTES / rings.max(1)).clamp(MIN_RING_BYTES, RING_BYTES)
}

/// Lines on disk older than the ring's `ring_lines` (which are the newest ones on
/// disk), matching `query`, the last `want` of them.
fn read_older(plan: &ReadPlan, query: &Query, ring_lines: usize, want: usize) -> Vec<LogLine> {
    let mut skip = ring_lines;
    let mut segs: Vec<Vec<LogLine>> = Vec::new();
    let mut have = 0;
    plan.read_back(u64::MAX, |mut lines| {
        let drop_newest = skip.min(lines.len());
        lines.truncate(lines.len() - drop_newest);
        skip -= drop_newest;
        let reached_since = query
            .since
            .is_some_and(|s| lines.first().is_some_and(|l| l.time < s));
        lines.retain(|l| query.wants(l.time, l.stream, &l.text));
        have += lines.len();
        segs.push(lines);
        have < want && !reached_since
    });
    let lines: Vec<LogLine> = segs.into_iter().rev().flatten().collect();
    let cut = lines.len().saturating_sub(want);
    lines.into_iter().skip(cut).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::Received;

    fn texts(lines: &[LogLine]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    fn query(services: &[&str], tail: usize) -> Query {
        Query {
            services: services.iter().map(|s| s.to_string()).collect(),
            tail,
            ..Query::default()
        }
    }

    #[test]
    fn ring_is_bounded_and_tail_works() {
        let hub = LogHub::new();
        let svc: Arc<str> = Arc::from("api");
        // In batches of 10 lines, as pipe reads deliver them (one-line batches would
        // hit the byte bound first).
        for batch in 0..(RING_LINES + 10) / 10 {
            let text: Vec<String> = (batch * 10..batch * 10 + 10)
                .map(|i| format!("line {i}"))
                .collect();
            hub.push(&svc, Stream::Stdout, &text.join("\n"));
        }
        let all = hub.snapshot(&Query::default());
        assert_eq!(all.len(), RING_LINES);
        assert_eq!(all[0].text, "line 10");
        let tail = hub.snapshot(&query(&["api"], 3));
        assert_eq!(texts(&tail), ["line 10007", "line 10008", "line 10009"]);
        assert_eq!(hub.last_lines("api", 2), ["line 10008", "line 10009"]);
    }

    #[test]
    fn ring_is_bounded_in_bytes() {
        let hub = LogHub::new();
        let svc: Arc<str> = Arc::from("big");
        let line = "x".repeat(10_000);
        for _ in 0..1_000 {
            hub.push(&svc, Stream::Stdout, &line);
        }
        let st = hub.lock();
        let ring = &st.rings["big"];
        assert!(ring.bytes <= RING_BYTES + 20_000, "{} bytes", ring.bytes);
        assert_eq!(ring.lines, ring.iter().count());
    }

    #[test]
    fn snapshot_merges_services_in_time_order_and_filters() {
        let hub = LogHub::new();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        for i in 0..6 {
            hub.push(
                if i % 2 == 0 { &a } else { &b },
                Stream::Stdout,
                &format!("{i}"),
            );
        }
        assert_eq!(
            texts(&hub.snapshot(&Query::default())),
            ["0", "1", "2", "3", "4", "5"]
        );
        assert_eq!(texts(&hub.snapshot(&query(&["b"], 0))), ["1", "3", "5"]);
        let grep = Query {
            grep: Some(regex::Regex::new("[34]").unwrap()),
            ..Query::default()
        };
        assert_eq!(texts(&hub.snapshot(&grep)), ["3", "4"]);
    }

    #[test]
    fn snapshot_filters_by_level() {
        let hub = LogHub::new();
        let svc: Arc<str> = Arc::from("api");
        hub.push(&svc, Stream::System, "started (pid 7)");
        hub.push(&svc, Stream::Stdout, "INFO up\nWARN slow\nno level here");
        hub.push(
            &svc,
            Stream::Stderr,
            "{\"level\":50,\"msg\":\"boom\"}\nplain stderr",
        );
        let warn = Query {
            min_level: Some(crate::logs::Level::Warn),
            ..Query::default()
        };
        assert_eq!(
            texts(&hub.snapshot(&warn)),
            [
                "started (pid 7)",
                "WARN slow",
                "{\"level\":50,\"msg\":\"boom\"}"
            ]
        );
        let with_grep = Query {
            grep: Some(regex::Regex::new("boom").unwrap()),
            ..warn
        };
        assert_eq!(
            texts(&hub.snapshot(&with_grep)),
            ["{\"level\":50,\"msg\":\"boom\"}"]
        );
    }

    #[tokio::test]
    async fn snapshot_and_follow_neither_miss_nor_repeat() {
        let hub = LogHub::new();
        let svc: Arc<str> = Arc::from("a");
        hub.push(&svc, Stream::Stdout, "old");
        let (snap, f) = hub.snapshot_and_follow(&Query::default(), true);
        let mut f = f.unwrap();
        hub.push(&svc, Stream::Stdout, "new");
        assert_eq!(texts(&snap), ["old"]);
        match f.recv().await {
            Some(Received::Lines(v)) => assert_eq!(texts(&v), ["new"]),
            other => panic!("expected the new line, got {other:?}"),
        }
    }

    #[test]
    fn a_merged_snapshot_keeps_the_hubs_order_within_one_instant() {
        let hub = LogHub::new();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        for (svc, text) in [(&a, "1"), (&b, "2"), (&a, "3"), (&b, "4")] {
            let mut batch = Batch::new(svc.clone());
            batch.push(1_000, Stream::Stdout, text);
            hub.push_batch(batch);
        }
        let (snap, _) = hub.snapshot_and_follow(&Query::default(), false);
        assert_eq!(texts(&snap), ["1", "2", "3", "4"]);
        assert!(snap.windows(2).all(|w| w[0].seq < w[1].seq));
    }

    #[test]
    fn persisted_logs_come_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let limits = SegmentLimits::default();
        let svc: Arc<str> = Arc::from("api");
        let first = {
            let hub = LogHub::open(dir.path(), "/p#", limits).unwrap();
            for i in 0..RING_LINES * 3 {
                hub.push_batch({
                    let mut b = Batch::new(svc.clone());
                    b.push(1_000_000 + i as i64, Stream::Stdout, &format!("line {i}"));
                    b
                });
            }
            hub.push(&svc, Stream::System, "exited");
            hub.flush();
            hub.snapshot(&query(&["api"], 2))
        };
        assert_eq!(texts(&first), ["line 29999", "exited"]);

        let hub = LogHub::open(dir.path(), "/p#", limits).unwrap();
        // The ring came back from disk...
        assert_eq!(
            texts(&hub.snapshot(&query(&["api"], 2))),
            ["line 29999", "exited"]
        );
        assert_eq!(hub.last_lines("api", 1), ["line 29999"]);
        // ...and older lines are read from the segments.
        let all = hub.snapshot(&query(&["api"], 0));
        assert_eq!(all.len(), RING_LINES * 3 + 1);
        assert_eq!(all[0].text, "line 0");
        // A client's huge `--tail` is clamped, not trusted as a size.
        let huge = hub.snapshot(&query(&["api"], usize::MAX));
        assert_eq!(huge.len(), all.len());
        let tail = hub.snapshot(&query(&["api"], 25_000));
        assert_eq!(tail.len(), 25_000);
        assert_eq!(tail[0].text, "line 5001");
        assert!(tail.windows(2).all(|w| w[0].time <= w[1].time));
        let since = Query {
            since: Some(super::super::from_unix_nanos(1_000_000 + 100)),
            ..query(&["api"], 0)
        };
        let got = hub.snapshot(&since);
        assert_eq!(got.len(), RING_LINES * 3 - 100 + 1);
        assert_eq!(got[0].text, "line 100");
        // A different environment sees none of it.
        let other = LogHub::open(dir.path(), "/q#", limits).unwrap();
        assert!(other.snapshot(&Query::default()).is_empty());
    }
}
