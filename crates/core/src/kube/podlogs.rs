//! Pod logs of a kubernetes service into the environment's log hub: every container of
//! every pod of the workload, following new pods (rollouts, scale-up) and restarted
//! containers as the pod watch reports them.
//!
//! Nothing is dropped when a log stream breaks (the API server or kubelet cut it, a
//! timeout, the daemon reading slower than the container writes while the kubelet
//! rotates its file): lines come with the kubelet's timestamps, and a stream that
//! ends while its container still runs is opened again with `sinceTime` at the last
//! line's time; the lines it sends again (sinceTime is whole seconds) are skipped by
//! their timestamps ([`Seen`]).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;
use tokio_util::compat::FuturesAsyncReadCompatExt;
use tokio_util::sync::CancellationToken;

use super::ClusterConn;
use crate::logs::{Batch, LogHub, Stream, MAX_LINE_BYTES};

/// Bytes read from a log stream at once.
const READ_BYTES: usize = 64 * 1024;
/// Buffered lines go to disk once the stream has been quiet this long.
const IDLE_FLUSH: Duration = Duration::from_millis(100);
/// Waits between reopening a stream that keeps ending, doubling up to the last.
const REOPEN: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(5),
];

/// Follows the logs of pods matching `selector` in `namespace` until `cancel`.
/// Containers that were already running when this started are followed from now
/// (their earlier output is already in the hub, or predates this `up`).
pub async fn follow(
    kenv: ClusterConn,
    namespace: String,
    selector: String,
    hub: LogHub,
    service: Arc<str>,
    cancel: CancellationToken,
) {
    let since = jiff_now();
    let api: Api<Pod> = Api::namespaced(kenv.client.clone(), &namespace);
    let events = watcher(api.clone(), watcher::Config::default().labels(&selector))
        .default_backoff()
        .applied_objects();
    let mut events = std::pin::pin!(events);
    let mut seen: HashSet<(String, String, i32)> = HashSet::new();
    let mut followers = JoinSet::new();
    loop {
        let pod = tokio::select! {
            _ = cancel.cancelled() => break,
            Some(_) = followers.join_next(), if !followers.is_empty() => continue,
            ev = events.next() => match ev {
                Some(Ok(pod)) => pod,
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "pod watch error (retrying)");
                    continue;
                }
                None => break,
            },
        };
        let Some(name) = pod.metadata.name.clone() else {
            continue;
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let Some(status) = &pod.status else { continue };
        let statuses = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for cs in statuses {
            let state = cs.state.as_ref();
            let started_at = state
                .and_then(|s| s.running.as_ref().and_then(|r| r.started_at.clone()))
                .or_else(|| {
                    state.and_then(|s| s.terminated.as_ref().and_then(|t| t.started_at.clone()))
                });
            // Nothing to read before the container has started.
            let Some(started_at) = started_at else {
                continue;
            };
            if !seen.insert((uid.clone(), cs.name.clone(), cs.restart_count)) {
                continue;
            }
            let container = Container {
                api: api.clone(),
                pod: name.clone(),
                name: cs.name.clone(),
                restarts: cs.restart_count,
            };
            let from = (started_at.0 < since).then_some(since);
            let hub = hub.clone();
            let service = service.clone();
            let cancel = cancel.clone();
            followers.spawn(async move {
                tokio::select! {
                    _ = cancel.cancelled() => {}
                    _ = container.follow(from, hub, service) => {}
                }
            });
        }
    }
    followers.shutdown().await;
}

fn jiff_now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}

fn now_nanos() -> i64 {
    i64::try_from(jiff_now().as_nanosecond()).unwrap_or(i64::MAX)
}

/// One run of one container (a restart is another).
struct Container {
    api: Api<Pod>,
    pod: String,
    name: String,
    restarts: i32,
}

impl Container {
    /// Its lines into the hub from `from` (or its start), reopening the stream with
    /// `sinceTime` whenever it ends (or stalls) while the container still runs.
    async fn follow(
        &self,
        from: Option<k8s_openapi::jiff::Timestamp>,
        hub: LogHub,
        service: Arc<str>,
    ) {
        let mut seen = Seen::default();
        let mut files = FileStarts::default();
        let mut since = from;
        let mut reopen = 0;
        let mut last_pass = false;
        let who = format!("{}/{}", self.pod, self.name);
        let floor = from.and_then(|t| i64::try_from(t.as_nanosecond()).ok());
        loop {
            let params = LogParams {
                container: Some(self.name.clone()),
                follow: true,
                timestamps: true,
                since_time: since,
                ..Default::default()
            };
            // A reopened stream must go on from the newest line devenv has: if it
            // starts later, the lines between were in a file the kubelet rotated away.
            let resumed_after = seen.newest().max(files.marked);
            let copied = match self.api.log_stream(&self.pod, &params).await {
                Ok(stream) => {
                    let mut copy = Copy {
                        hub: &hub,
                        service: &service,
                        seen: &mut seen,
                        files: &mut files,
                        kubelet: self,
                        who: &who,
                        resumed_after,
                        floor,
                        checks: &STALL_CHECKS,
                    };
                    copy.run(stream.compat()).await
                }
                Err(e) => {
                    tracing::debug!(error = %e, pod = %self.pod, "cannot stream pod logs");
                    Copied::default()
                }
            };
            if copied.stalled {
                tracing::debug!(pod = %self.pod, container = %self.name, "pod log stream stalled (the kubelet's reader is on a rotated file); reopening it from its last line");
            }
            // Ended: the container exited, or the connection was cut mid-way. Once
            // it no longer runs, one more pass from the last line reads what a cut
            // left (a stopped container's stream sends all and ends).
            if last_pass {
                return;
            }
            last_pass = !self.running().await;
            if copied.added > 0 || copied.stalled {
                reopen = 0;
            }
            if !last_pass && !copied.stalled {
                tracing::debug!(pod = %self.pod, container = %self.name, "pod log stream ended early; reopening it from its last line");
                tokio::time::sleep(REOPEN[reopen.min(REOPEN.len() - 1)]).await;
            }
            reopen += 1;
            since = seen.resume().or(since);
        }
    }

    /// Still the same run of the container, and running.
    async fn running(&self) -> bool {
        let Ok(pod) = self.api.get(&self.pod).await else {
            return false;
        };
        pod.status
            .iter()
            .flat_map(|s| {
                s.init_container_statuses
                    .iter()
                    .flatten()
                    .chain(s.container_statuses.iter().flatten())
            })
            .any(|cs| {
                cs.name == self.name
                    && cs.restart_count == self.restarts
                    && cs.state.as_ref().is_some_and(|s| s.running.is_some())
            })
    }
}

/// What one opened stream gave.
#[derive(Debug, Default, PartialEq)]
struct Copied {
    /// Lines added to the hub (gap lines included).
    added: u64,
    /// Ended by devenv: the stream sent nothing while the container's log file has
    /// newer lines (see [`STALL_CHECKS`]).
    stalled: bool,
}

/// Quiet periods after which a stream is checked, longest last: the kubelet's
/// reader watches the log directory only from its first end of file, so a stream
/// opened while the container writes fast (a reopen during a burst) can miss the
/// rotation and sit on the renamed file for good, sending nothing while the
/// container's new file grows (`kubectl logs -f` does the same).
const STALL_CHECKS: [Duration; 5] = [
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
    Duration::from_secs(30),
];

/// A stream whose lines are older than this is behind the container: then the
/// kubelet is asked where its current log file begins, at most once per this long.
const BEHIND: Duration = Duration::from_secs(2);

/// What devenv can ask the kubelet about a container's current log file (the
/// newest one: the kubelet serves no other).
trait LogFile {
    /// The time of its first line (unix nanoseconds): when it was begun, after a
    /// rotation. None: empty, or the kubelet did not answer.
    async fn first(&self) -> Option<i64>;
    /// The time of its newest line.
    async fn newest(&self) -> Option<i64>;
}

impl LogFile for Container {
    async fn first(&self) -> Option<i64> {
        let params = LogParams {
            container: Some(self.name.clone()),
            timestamps: true,
            limit_bytes: Some(4096),
            ..Default::default()
        };
        let text = self.api.logs(&self.pod, &params).await.ok()?;
        stamped(text.lines().next()?.as_bytes()).map(|(t, _)| t)
    }

    async fn newest(&self) -> Option<i64> {
        let params = LogParams {
            container: Some(self.name.clone()),
            timestamps: true,
            tail_lines: Some(1),
            ..Default::default()
        };
        let text = self.api.logs(&self.pod, &params).await.ok()?;
        stamped(text.lines().next_back()?.as_bytes()).map(|(t, _)| t)
    }
}

/// Where the kubelet began log files that devenv has read no line of yet (the
/// first line's time of each, oldest first), learnt while the stream was behind.
/// The kubelet keeps `containerLogMaxFiles` files of `containerLogMaxSize`, and a
/// reader that is more than a file behind when it reaches the end of the one it
/// reads goes on with the *current* file: the ones between are never sent. Seeing
/// a line from past two of these starts (or a quiet stream while none of them is
/// the current file any more) is how devenv knows.
#[derive(Debug, Default)]
struct FileStarts {
    starts: std::collections::VecDeque<i64>,
    /// A gap line covers what was written up to this time.
    marked: Option<i64>,
}

/// Files that can begin while a stream is behind are bounded by the kubelet's
/// rotation (one per `containerLogMonitorInterval`, 10 s); more are not kept.
const MAX_STARTS: usize = 32;

impl FileStarts {
    /// A file begun at `start`, if devenv has read nothing of it yet.
    fn learn(&mut self, start: i64, newest: Option<i64>) {
        if newest.is_some_and(|n| start <= n) || self.starts.back().is_some_and(|b| start <= *b) {
            return;
        }
        if self.starts.len() < MAX_STARTS {
            self.starts.push_back(start);
        }
    }

    /// A line at `time` arrives: the files it is past. Two or more: the ones before
    /// the last were skipped whole; returns where the skipped lines began and ended.
    fn pass(&mut self, time: i64) -> Option<(i64, i64)> {
        let mut crossed = Vec::new();
        while self.starts.front().is_some_and(|s| *s <= time) {
            crossed.extend(self.starts.pop_front());
        }
        match crossed[..] {
            [first, .., last] => Some((first, last)),
            _ => None,
        }
    }

    /// The stream is quiet and the current file begins at `current` (None: empty):
    /// files devenv knew of that began before it are gone, unread. Returns where
    /// the lost lines began and ended (None: up to now).
    fn orphaned(&mut self, current: Option<i64>) -> Option<(i64, Option<i64>)> {
        let first = *self.starts.front()?;
        if current.is_some_and(|c| c <= first) {
            return None;
        }
        self.starts.retain(|s| current.is_some_and(|c| *s >= c));
        Some((first, current))
    }

    fn clear(&mut self) {
        self.starts.clear();
    }
}

/// Copies `<RFC 3339 time> <text>` lines (the kubelet's `timestamps=true` form) of
/// one opened stream into the hub with those times, skipping lines `seen` already
/// had, and saying so once where lines were lost to the kubelet's log rotation.
struct Copy<'a, K> {
    hub: &'a LogHub,
    service: &'a Arc<str>,
    seen: &'a mut Seen,
    files: &'a mut FileStarts,
    kubelet: &'a K,
    /// `pod/container`, for the gap line.
    who: &'a str,
    /// This stream reopens one that had lines up to this time (unix nanoseconds).
    resumed_after: Option<i64>,
    /// Lines before this time were not asked for (the follow started later).
    floor: Option<i64>,
    /// [`STALL_CHECKS`] (shorter in tests).
    checks: &'a [Duration],
}

impl<K: LogFile> Copy<'_, K> {
    /// Until the stream ends, or stalls.
    async fn run(&mut self, mut stream: impl AsyncRead + Unpin) -> Copied {
        let mut buf = vec![0u8; READ_BYTES];
        let mut carry: Vec<u8> = Vec::new();
        let mut copied = Copied::default();
        let mut dirty = false;
        let mut quiet = 0;
        let mut behind = false;
        let mut orphans = false;
        let mut asked: Option<std::time::Instant> = None;
        loop {
            let wait = if dirty {
                IDLE_FLUSH
            } else {
                self.checks[quiet.min(self.checks.len() - 1)]
            };
            let n = match tokio::time::timeout(wait, stream.read(&mut buf)).await {
                Err(_) if dirty => {
                    self.hub.flush_service(self.service);
                    dirty = false;
                    continue;
                }
                Err(_) => {
                    quiet += 1;
                    // Quiet. Known files that are no longer current, twice in a row:
                    // gone unread (one slow answer is not enough).
                    if !self.files.starts.is_empty() {
                        let current = self.kubelet.first().await;
                        let gone = self
                            .files
                            .starts
                            .front()
                            .is_some_and(|f| current.is_none_or(|c| c > *f));
                        if gone && orphans {
                            if let Some((from, to)) = self.files.orphaned(current) {
                                let end = to.unwrap_or_else(now_nanos);
                                self.mark(from, end, from, None);
                                copied.added += 1;
                            }
                        }
                        orphans = gone;
                    }
                    // Newer lines in the file than the stream sent, twice in a row:
                    // the stream is stuck.
                    let have = self.seen.newest().or(self.floor);
                    let newer = self
                        .kubelet
                        .newest()
                        .await
                        .is_some_and(|t| have.is_none_or(|h| t > h));
                    if newer && behind {
                        copied.stalled = true;
                        break;
                    }
                    behind = newer;
                    continue;
                }
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => n,
            };
            quiet = 0;
            behind = false;
            orphans = false;
            carry.extend_from_slice(&buf[..n]);
            let mut batch = Batch::new(self.service.clone());
            let end = carry.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            let mut newest = None;
            for line in carry[..end].split(|b| *b == b'\n') {
                if line.is_empty() {
                    continue;
                }
                if let Some((time, text)) = stamped(line) {
                    self.check_gap(time, &mut batch);
                    if self.seen.admit(time) {
                        batch.push(time, Stream::Stdout, &String::from_utf8_lossy(text));
                        newest = Some(time);
                    }
                }
            }
            carry.drain(..end);
            // A line with no end in sight: kept bounded (the rest is lost to a cut).
            if carry.len() > 2 * MAX_LINE_BYTES {
                carry.clear();
            }
            copied.added += batch.len() as u64;
            if !batch.is_empty() {
                self.hub.push_batch(batch);
                dirty = true;
            }
            // Behind the container: learn where the kubelet's current file begins,
            // so that a file skipped whole is noticed (see [`FileStarts`]).
            let lag = newest.map(|t| now_nanos().saturating_sub(t));
            let due = asked.is_none_or(|a| a.elapsed() >= BEHIND);
            if due && lag.is_some_and(|l| l > i64::try_from(BEHIND.as_nanos()).unwrap_or(i64::MAX))
            {
                asked = Some(std::time::Instant::now());
                if let Some(start) = self.kubelet.first().await {
                    self.files.learn(start, self.seen.newest());
                }
            }
        }
        self.hub.flush_service(self.service);
        copied
    }

    /// Before the line at `time` is admitted: was anything lost just before it?
    ///
    /// The first line of a reopened stream: the kubelet sends from `sinceTime` out
    /// of the container's current log file only. A first line newer than the newest
    /// one devenv had means that file began after it: what the container wrote
    /// in between was in a file the kubelet had rotated (renamed, compressed or
    /// deleted) by then, which no API serves.
    ///
    /// Any line past two file starts devenv knew of: the files between were
    /// skipped whole by the kubelet's reader.
    ///
    /// Said once, in the log itself, where the lines are missing.
    fn check_gap(&mut self, time: i64, batch: &mut Batch) {
        if let Some(last) = self.resumed_after.take() {
            if time > last {
                self.files.clear();
                self.mark(last, time, time, Some(batch));
                return;
            }
        }
        if let Some((from, to)) = self.files.pass(time) {
            self.mark(from, to, time, Some(batch));
        }
    }

    /// Puts the gap line at `at` into `batch`, or straight into the hub.
    fn mark(&mut self, from: i64, to: i64, at: i64, batch: Option<&mut Batch>) {
        let text = gap_line(self.who, from, to);
        self.files.marked = self.files.marked.max(Some(to));
        tracing::warn!(pod = %self.who, "{text}");
        match batch {
            Some(b) => b.push(at, Stream::System, &text),
            None => {
                let mut b = Batch::new(self.service.clone());
                b.push(at, Stream::System, &text);
                self.hub.push_batch(b);
            }
        }
    }
}

/// The line that stands in the log where lines could not be read.
fn gap_line(who: &str, from: i64, to: i64) -> String {
    let at = |t: i64| {
        k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(t))
            .map_or_else(|_| t.to_string(), |ts| format!("{ts:.3}"))
    };
    let span = Duration::from_nanos(u64::try_from(to - from).unwrap_or(0));
    format!(
        "{GAP_MARK} {who}: lines written between {} and {} ({:.3} s) were not read: \
         the kubelet rotated the log file holding them away (containerLogMaxSize / \
         containerLogMaxFiles) before devenv read it; the kubelet keeps no count of how many",
        at(from),
        at(to),
        span.as_secs_f64(),
    )
}

/// How a gap line begins (tests and `--grep` look for it).
pub const GAP_MARK: &str = "[devenv] pod log gap:";

/// The time (unix nanoseconds) and text of a `timestamps=true` line.
fn stamped(line: &[u8]) -> Option<(i64, &[u8])> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let sp = line.iter().position(|b| *b == b' ')?;
    let ts: k8s_openapi::jiff::Timestamp = std::str::from_utf8(&line[..sp]).ok()?.parse().ok()?;
    let nanos = i64::try_from(ts.as_nanosecond()).ok()?;
    Some((nanos, &line[sp + 1..]))
}

/// What a container's stream already delivered, by the kubelet's timestamps: a
/// reopened stream starts at a whole second and repeats what came after it.
#[derive(Debug, Default)]
struct Seen {
    /// Time of the newest line admitted, and how many lines had exactly that time.
    last: Option<(i64, u64)>,
    /// After a reopen: lines at the `last` time still to skip.
    skip: u64,
}

impl Seen {
    fn admit(&mut self, time: i64) -> bool {
        match &mut self.last {
            Some((t, _)) if time < *t => false,
            Some((t, n)) if time == *t => {
                if self.skip > 0 {
                    self.skip -= 1;
                    false
                } else {
                    *n += 1;
                    true
                }
            }
            _ => {
                self.last = Some((time, 1));
                self.skip = 0;
                true
            }
        }
    }

    /// The newest line's time.
    fn newest(&self) -> Option<i64> {
        self.last.map(|(t, _)| t)
    }

    /// Where to reopen the stream: the newest line's time (lines at it are counted
    /// and skipped once more).
    fn resume(&mut self) -> Option<k8s_openapi::jiff::Timestamp> {
        let (t, n) = self.last?;
        self.skip = n;
        k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(t)).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopened_stream_repeats_nothing_and_loses_nothing() {
        let mut seen = Seen::default();
        let first: Vec<i64> = vec![10, 20, 20, 30, 30];
        assert!(first.iter().all(|t| seen.admit(*t)));
        assert!(seen.resume().is_some());
        // The kubelet sends again from the start of the second: older lines, the two
        // at 30 already had, then a third at 30 and a newer one.
        let again = [10, 20, 20, 30, 30, 30, 40];
        let admitted: Vec<i64> = again.into_iter().filter(|t| seen.admit(*t)).collect();
        assert_eq!(admitted, [30, 40]);
    }

    const T0: i64 = 1_700_000_000_000_000_000;
    const SEC: i64 = 1_000_000_000;
    const CHECKS: [Duration; 1] = [Duration::from_millis(20)];

    /// `n` kubelet lines (`<time> <n>`), one per `step` from `start`.
    fn kubelet_lines(times: &[i64]) -> Vec<u8> {
        let mut out = String::new();
        for (i, t) in times.iter().enumerate() {
            let ts = k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(*t)).unwrap();
            out.push_str(&format!("{ts} line-{i}\n"));
        }
        out.into_bytes()
    }

    /// A kubelet whose current file begins at `first` and ends at `newest`; counts
    /// the questions.
    #[derive(Default)]
    struct FakeFile {
        first: Option<i64>,
        newest: Option<i64>,
        asked: std::sync::atomic::AtomicU32,
    }

    impl LogFile for FakeFile {
        async fn first(&self) -> Option<i64> {
            self.first
        }
        async fn newest(&self) -> Option<i64> {
            self.asked
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.newest
        }
    }

    struct Rig {
        hub: LogHub,
        service: Arc<str>,
        seen: Seen,
        files: FileStarts,
        kubelet: FakeFile,
    }

    impl Rig {
        /// A stream that had a line at `last`.
        fn after(last: i64) -> Self {
            let mut seen = Seen::default();
            assert!(seen.admit(last));
            Rig {
                hub: LogHub::new(),
                service: Arc::from("svc"),
                seen,
                files: FileStarts::default(),
                kubelet: FakeFile::default(),
            }
        }

        async fn run(
            &mut self,
            resumed_after: Option<i64>,
            stream: impl AsyncRead + Unpin,
        ) -> Copied {
            if resumed_after.is_some() {
                self.seen.resume();
            }
            let mut copy = Copy {
                hub: &self.hub,
                service: &self.service,
                seen: &mut self.seen,
                files: &mut self.files,
                kubelet: &self.kubelet,
                who: "pod/c",
                resumed_after,
                floor: None,
                checks: &CHECKS,
            };
            copy.run(stream).await
        }

        fn lines(&self) -> Vec<(Stream, String)> {
            self.hub
                .snapshot(&crate::logs::Query::default())
                .into_iter()
                .map(|l| (l.stream, l.text))
                .collect()
        }
    }

    #[tokio::test]
    async fn a_reopen_that_starts_after_the_last_line_marks_the_gap_once() {
        // The stream had a line at T0 + 5.5 s, was cut, and the kubelet's current file
        // (after a rotation) begins at T0 + 7 s.
        let last = T0 + 5 * SEC + SEC / 2;
        let mut rig = Rig::after(last);
        let bytes = kubelet_lines(&[T0 + 7 * SEC, T0 + 7 * SEC + 1, T0 + 8 * SEC]);
        let copied = rig.run(Some(last), &bytes[..]).await;
        assert_eq!(copied.added, 4, "the gap line and three lines");
        let lines = rig.lines();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].0, Stream::System);
        assert!(lines[0].1.starts_with(GAP_MARK), "{}", lines[0].1);
        assert!(lines[0].1.contains("pod/c"), "{}", lines[0].1);
        assert!(lines[0].1.contains("(1.500 s)"), "{}", lines[0].1);
        let texts: Vec<&str> = lines[1..].iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["line-0", "line-1", "line-2"]);
        assert!(lines[1..].iter().all(|(s, _)| *s == Stream::Stdout));
    }

    #[tokio::test]
    async fn a_reopen_from_a_file_that_holds_the_last_line_marks_nothing() {
        // sinceTime is whole seconds: the kubelet sends again from T0 + 5 s, the line
        // devenv had (T0 + 5.5 s) among them, then the new ones.
        let last = T0 + 5 * SEC + SEC / 2;
        let mut rig = Rig::after(last);
        let bytes = kubelet_lines(&[T0 + 5 * SEC, last, T0 + 6 * SEC]);
        let copied = rig.run(Some(last), &bytes[..]).await;
        assert_eq!(
            copied,
            Copied {
                added: 1,
                stalled: false
            }
        );
        assert_eq!(rig.lines(), [(Stream::Stdout, "line-2".to_string())]);
    }

    #[test]
    fn a_line_past_two_file_starts_means_the_file_between_was_skipped() {
        let mut files = FileStarts::default();
        files.learn(T0 + 10 * SEC, Some(T0));
        files.learn(T0 + 10 * SEC, Some(T0)); // asked twice while it was current
        files.learn(T0 + 20 * SEC, Some(T0 + SEC));
        files.learn(T0 + 15 * SEC, Some(T0 + SEC)); // out of order: ignored
                                                    // Lines of the file devenv reads, then the next one: no gap.
        assert_eq!(files.pass(T0 + 9 * SEC), None);
        assert_eq!(files.pass(T0 + 10 * SEC), None);
        // Straight from the file begun at 10 s into one begun at 20 s: fine too.
        assert_eq!(files.pass(T0 + 21 * SEC), None);
        // But past two starts at once: the file from 30 s to 40 s was never sent.
        files.learn(T0 + 30 * SEC, Some(T0 + 21 * SEC));
        files.learn(T0 + 40 * SEC, Some(T0 + 21 * SEC));
        assert_eq!(
            files.pass(T0 + 41 * SEC),
            Some((T0 + 30 * SEC, T0 + 40 * SEC))
        );
        // A start older than what devenv read is no news.
        files.learn(T0 + 40 * SEC, Some(T0 + 41 * SEC));
        assert!(files.starts.is_empty());
    }

    #[tokio::test]
    async fn a_skipped_file_inside_one_stream_is_marked_where_it_was() {
        let mut rig = Rig::after(T0);
        // Learnt while behind: files begun at 10 s and at 20 s; the stream then goes
        // from a line at 9 s straight to one at 25 s (the file 10-20 s skipped).
        rig.files.learn(T0 + 10 * SEC, Some(T0));
        rig.files.learn(T0 + 20 * SEC, Some(T0));
        let bytes = kubelet_lines(&[T0 + 9 * SEC, T0 + 25 * SEC]);
        let copied = rig.run(None, &bytes[..]).await;
        assert_eq!(copied.added, 3);
        let lines = rig.lines();
        assert_eq!(lines[0], (Stream::Stdout, "line-0".to_string()));
        assert_eq!(lines[1].0, Stream::System);
        assert!(lines[1].1.contains("(10.000 s)"), "{}", lines[1].1);
        assert_eq!(lines[2], (Stream::Stdout, "line-1".to_string()));
    }

    #[tokio::test]
    async fn a_quiet_stream_whose_known_file_is_gone_marks_the_end_once() {
        // The stream read up to 9 s; a file begun at 10 s was seen, then rotated away
        // before the reader got to it: the current file is empty, the stream quiet.
        let mut rig = Rig::after(T0 + 9 * SEC);
        rig.files.learn(T0 + 10 * SEC, Some(T0 + 9 * SEC));
        let (_writer, reader) = tokio::io::duplex(64);
        let run = rig.run(None, reader);
        assert!(tokio::time::timeout(Duration::from_millis(300), run)
            .await
            .is_err());
        let lines = rig.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].0, Stream::System);
        assert!(lines[0].1.starts_with(GAP_MARK));
        assert!(rig.files.marked.is_some_and(|m| m > T0 + 10 * SEC));
    }

    #[tokio::test]
    async fn a_stream_that_sends_nothing_while_the_file_grows_is_cut() {
        let mut rig = Rig::after(T0);
        // Open, silent: the kubelet's reader sits on a renamed file.
        rig.kubelet.newest = Some(T0 + SEC);
        let (_writer, reader) = tokio::io::duplex(64);
        let copied = tokio::time::timeout(Duration::from_secs(10), rig.run(None, reader))
            .await
            .expect("a stalled stream is given up");
        assert_eq!(
            copied,
            Copied {
                added: 0,
                stalled: true
            }
        );
        assert_eq!(
            rig.kubelet.asked.into_inner(),
            2,
            "twice behind in a row, not once"
        );
    }

    #[tokio::test]
    async fn a_quiet_stream_with_nothing_newer_is_kept() {
        let mut rig = Rig::after(T0);
        // The file's newest line is the one devenv has: quiet, not stuck.
        rig.kubelet.newest = Some(T0);
        rig.kubelet.first = Some(T0);
        let (_writer, reader) = tokio::io::duplex(64);
        let run = rig.run(None, reader);
        assert!(tokio::time::timeout(Duration::from_millis(300), run)
            .await
            .is_err());
        assert!(rig.lines().is_empty());
    }

    #[test]
    fn stamped_lines_are_parsed() {
        let (t, text) = stamped(b"2024-05-01T12:00:00.000000123Z hello world\r").unwrap();
        assert_eq!(t, 1_714_564_800_000_000_123);
        assert_eq!(text, b"hello world");
        assert!(stamped(b"no-time here").is_none());
    }
}
