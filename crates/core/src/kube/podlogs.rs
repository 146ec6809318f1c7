//! Pod logs of a kubernetes service into the environment's log hub: every container of
//! every pod of the workload, following new pods (rollouts, scale-up) and restarted
//! containers as the pod watch reports them.
//!
//! Nothing is dropped when a log stream breaks (the API server or kubelet cut it, a
//! timeout, the daemon reading slower than the container writes while the kubelet
//! rotates its file): lines come with the kubelet's timestamps, and a stream that
//! ends while its container still runs is opened again with `sinceTime` at the last
//! line's time; the lines it sends again (sinceTime is whole seconds) are skipped by
//! their timestamps ([`Seen`]). Lines the kubelet's stream never sends (its reader
//! skipped or missed the end of a rotated file) are read from the node's rotated
//! files ([`rotated`], gzipped ones too), from near their end where that is enough
//! ([`tail`]); what the node no longer has is marked with one gap line.

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

mod node;
mod rotated;
mod tail;
use node::{Chunk, Span};
use rotated::Unreadable;

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
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
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
                files_path: node.as_ref().map(|node| {
                    format!(
                        "/api/v1/nodes/{node}/proxy/logs/pods/{namespace}_{name}_{uid}/{}/",
                        cs.name
                    )
                }),
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
    /// Its log directory on the node, as the kubelet's `/logs/` handler serves it
    /// through the API server (None: not scheduled when seen).
    files_path: Option<String>,
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
        let mut partial = None;
        let mut at_end = false;
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
            // starts later, the lines between were in a file the kubelet rotated away
            // (read from the node, else marked).
            let resumed_after = seen.newest().max(files.marked);
            let copied = match self.api.log_stream(&self.pod, &params).await {
                Ok(stream) => {
                    let mut copy = Copy {
                        hub: &hub,
                        service: &service,
                        seen: &mut seen,
                        files: &mut files,
                        partial: &mut partial,
                        at_end,
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
            at_end = copied.stalled;
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
    /// The container's rotated log files its node still keeps (uncompressed or
    /// gzipped), oldest first (see [`rotated`]).
    async fn rotated(&self) -> Result<Vec<String>, Unreadable>;
    /// Some bytes of an uncompressed one ([`Unreadable::NoRanges`]: the node
    /// would send the whole file).
    async fn range(&self, name: &str, span: Span) -> Result<Chunk, Unreadable>;
    /// One of them from byte `from` on (a gzipped one from its start,
    /// decompressed), in the CRI log format.
    async fn open_rotated(&self, name: &str, from: u64) -> Result<RotatedFile, Unreadable>;
}

/// A rotated log file as the node serves it.
type RotatedFile = Box<dyn tokio::io::AsyncBufRead + Unpin + Send>;

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

    async fn rotated(&self) -> Result<Vec<String>, Unreadable> {
        self.node_rotated().await
    }

    async fn range(&self, name: &str, span: Span) -> Result<Chunk, Unreadable> {
        self.node_range(name, span).await
    }

    async fn open_rotated(&self, name: &str, from: u64) -> Result<RotatedFile, Unreadable> {
        self.node_open(name, from).await
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
    /// The node's rotated files were read after this line (a quiet stream).
    looked: Option<i64>,
}

/// Where a line stands among the file starts devenv learnt.
#[derive(Debug, PartialEq)]
enum Passed {
    /// In the file of the line before.
    Within,
    /// The first line of the next file: the kubelet's reader switched files.
    Switched,
    /// Past two or more starts: the files between the first and the last were
    /// skipped whole (where those files began).
    Skipped(i64, i64),
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

    /// A line at `time` arrives: the files it is past, if any.
    fn pass(&mut self, time: i64) -> Passed {
        let mut crossed = Vec::new();
        while self.starts.front().is_some_and(|s| *s <= time) {
            crossed.extend(self.starts.pop_front());
        }
        match crossed[..] {
            [] => Passed::Within,
            [_] => Passed::Switched,
            [first, .., last] => Passed::Skipped(first, last),
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
    /// The start of a line the last stream ended in (its time and text so far): the
    /// next line devenv gets continues it, unless it is that whole line again.
    partial: &'a mut Option<(i64, Vec<u8>)>,
    /// The last stream was given up quiet, at the end of the file the kubelet's
    /// reader had: the file that began next (if devenv learnt where) follows it.
    at_end: bool,
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
                            if let Some((next, to)) = self.files.orphaned(current) {
                                // Read what the node still has, then a new stream
                                // goes on from there (resending nothing twice). The
                                // stream is quiet: its reader is at the end of its
                                // file, and the file begun at `next` comes after it.
                                let from = self.seen.newest().unwrap_or(next);
                                let mut none = Batch::new(self.service.clone());
                                copied.added += self
                                    .recover(Want::gap(from, to, Some(next)), &mut none)
                                    .await;
                                copied.stalled = true;
                                break;
                            }
                        }
                        orphans = gone;
                    }
                    // Newer lines in the file than the stream sent, twice in a row:
                    // the stream is stuck.
                    let have = self.seen.newest().or(self.floor);
                    let current = self.kubelet.newest().await;
                    let newer = current.is_some_and(|t| have.is_none_or(|h| t > h));
                    if newer && behind {
                        copied.stalled = true;
                        break;
                    }
                    // Quiet, and the current file is empty: it was rotated since
                    // devenv's newest line. Whatever the stream's reader has open,
                    // it is at its end; a file rotated after it would never be sent
                    // (its reader missed the rename). Once per newest line.
                    if let Some(from) = self.seen.newest() {
                        if current.is_none() && self.files.looked != Some(from) {
                            self.files.looked = Some(from);
                            let next = self.files.starts.front().copied().unwrap_or(from);
                            // A line the reader stopped inside is continued there.
                            let held = stamped(&carry).map(|(t, text)| {
                                (t, text[..text.len().min(MAX_LINE_BYTES)].to_vec())
                            });
                            if held.is_some() {
                                *self.partial = held;
                            }
                            let mut none = Batch::new(self.service.clone());
                            let n = self.recover(Want::look(from, Some(next)), &mut none).await;
                            if self.partial.is_none() {
                                carry.clear();
                            }
                            if n > 0 {
                                copied.added += n;
                                copied.stalled = true;
                                break;
                            }
                        }
                    }
                    behind = newer;
                    continue;
                }
                Ok(Ok(0) | Err(_)) => {
                    // Ended in the middle of a line: the next stream (or the node's
                    // rotated file) has the rest.
                    if let Some((time, text)) = stamped(&carry) {
                        let text = text[..text.len().min(MAX_LINE_BYTES)].to_vec();
                        *self.partial = Some((time, text));
                    }
                    break;
                }
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
                    copied.added += self.check_gap(time, &mut batch).await;
                    if self.seen.admit(time) {
                        self.push_line(&mut batch, time, text);
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

    /// A line of the stream into `batch`, completing the line the last stream
    /// ended in (see [`Copy::partial`]).
    fn push_line(&mut self, batch: &mut Batch, time: i64, text: &[u8]) {
        match self.partial.take() {
            // The whole line again (a reopen in the same file), or none pending.
            Some((start, _)) if start == time => {}
            None => {}
            Some((start, mut head)) if start < time => {
                head.extend_from_slice(text);
                head.truncate(MAX_LINE_BYTES);
                batch.push(start, Stream::Stdout, &String::from_utf8_lossy(&head));
                return;
            }
            // Older than the fragment: it was not continued; keep it as it is.
            Some((start, head)) => {
                batch.push(start, Stream::Stdout, &String::from_utf8_lossy(&head));
            }
        }
        batch.push(time, Stream::Stdout, &String::from_utf8_lossy(text));
    }

    /// Before the line at `time` is admitted: was anything lost just before it?
    /// Returns the lines this added to the hub (read from the node, gap lines).
    ///
    /// The first line of a reopened stream: the kubelet sends from `sinceTime` out
    /// of the container's current log file only. A first line newer than the newest
    /// one devenv had means that file began after it: what the container wrote
    /// in between was in a file the kubelet had rotated by then.
    ///
    /// Any line past two file starts devenv knew of: the files between were
    /// skipped whole by the kubelet's reader. Past one: the reader switched files;
    /// the old file's tail is checked for lines written after its last look.
    ///
    /// Those lines are read from the node's rotated files ([`Copy::recover`]);
    /// what is not there any more is said once, in the log itself, where the lines
    /// are missing.
    async fn check_gap(&mut self, time: i64, batch: &mut Batch) -> u64 {
        if let Some(last) = self.resumed_after.take() {
            if time > last {
                // A stream given up at the end of its file: the next one follows it.
                let next = self
                    .at_end
                    .then(|| self.files.starts.front().copied().unwrap_or(last));
                self.files.clear();
                return self.recover(Want::gap(last, Some(time), next), batch).await;
            }
        }
        match self.files.pass(time) {
            Passed::Within => 0,
            Passed::Skipped(from, _) => {
                let from = self.seen.newest().unwrap_or(from);
                self.recover(Want::gap(from, Some(time), None), batch).await
            }
            // The reader switched files while behind. The old file was complete
            // long before it got to its end (containerd writes into the new one from
            // the rotation on, seconds ago by now), but lines written into it after
            // the reader's last look there (containerd draining its pipe at the
            // reopen) are never sent: its tail is compared with the last line
            // devenv has from it. Cheap: a range read of its end.
            Passed::Switched => match self.seen.newest() {
                Some(from) => {
                    let want = Want {
                        switched: true,
                        ..Want::look(from, Some(time))
                    };
                    self.recover(
                        Want {
                            to: Some(time),
                            ..want
                        },
                        batch,
                    )
                    .await
                }
                None => 0,
            },
        }
    }

    /// The lines after `want.from` that the stream will not send, read from the
    /// node's rotated log files up to `want.to` and put into the hub after `batch`
    /// (what came before); a gap line for what is not there any more. Reading
    /// begins in the file holding `from`, near its end where ranges allow
    /// ([`tail::start`]). Returns the lines added (`batch`'s too).
    async fn recover(&mut self, want: Want, batch: &mut Batch) -> u64 {
        let Want {
            from,
            to,
            next,
            looking,
            switched,
        } = want;
        let before = std::mem::replace(batch, Batch::new(self.service.clone()));
        let mut added = before.len() as u64;
        self.hub.push_batch(before);
        // The files hold what devenv already has too: skipped by time, as a
        // reopened stream's start is.
        self.seen.rewind();
        let names = match self.kubelet.rotated().await {
            // Only looking: nothing is known to be missing.
            Ok(names) if names.is_empty() && looking => return added,
            Err(_) if looking => return added,
            Ok(names) if names.is_empty() => {
                return added + self.lost(from, to, "the node keeps no copy of it");
            }
            Ok(names) => names,
            Err(e) => return added + self.lost(from, to, &e.to_string()),
        };
        let mut fetched = 0u64;
        let start = match tail::start(self.kubelet, &names, from, &mut fetched).await {
            Ok(start) => start,
            Err(_) if looking => return added,
            Err(e) => return added + self.lost(from, to, &e.to_string()),
        };
        let mut out = Batch::new(self.service.clone());
        let mut first_record = true;
        let mut head: Option<(i64, Vec<u8>)> = None;
        let mut newest = from;
        let mut recovered = 0;
        let mut failed = None;
        let mut line = Vec::new();
        let mut gzipped = 0u32;
        'files: for (i, name) in names.iter().enumerate().skip(start.file) {
            let offset = if i == start.file { start.offset } else { 0 };
            gzipped += u32::from(rotated::is_gzip(name));
            let mut file = match self.kubelet.open_rotated(name, offset).await {
                Ok(file) => file,
                // Compressed since the listing.
                Err(Unreadable::Gone(_)) if !rotated::is_gzip(name) => {
                    match self.kubelet.open_rotated(&format!("{name}.gz"), 0).await {
                        Ok(file) => {
                            gzipped += 1;
                            file
                        }
                        Err(e) => {
                            failed = Some(e.to_string());
                            break;
                        }
                    }
                }
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            };
            loop {
                match rotated::next_line(&mut file, &mut line).await {
                    Ok(0) => break,
                    Ok(n) => fetched += n,
                    Err(source) => {
                        let name = name.clone();
                        failed = Some(Unreadable::Read { name, source }.to_string());
                        break 'files;
                    }
                }
                let Some(r) = rotated::record(&line) else {
                    continue;
                };
                if std::mem::take(&mut first_record) && r.time > from && !follows(next, r.time) {
                    // The oldest file kept begins after `from`, and is not the one
                    // known to follow devenv's: the ones before it are deleted.
                    let why = format!("the node keeps no copy of the files before {name}");
                    added += self.lost(from, Some(r.time), &why);
                }
                // From here on the stream has it (after a switch: once past the
                // old file, whose late lines can be stamped after the new one's
                // first).
                if to.is_some_and(|t| r.time >= t) && !(switched && i == start.file) {
                    break 'files;
                }
                if r.time < from || !self.seen.admit(r.time) {
                    continue;
                }
                // The line the last stream ended in: this record is all of it
                // again, or goes on with it.
                if let Some((t, fragment)) = self.partial.take() {
                    if r.time > t && head.is_none() {
                        head = Some((t, fragment));
                    }
                }
                let (time, text) = match head.take() {
                    Some((t, mut h)) => {
                        h.extend_from_slice(r.text);
                        h.truncate(MAX_LINE_BYTES);
                        (t, h)
                    }
                    None => (r.time, r.text.to_vec()),
                };
                if r.partial {
                    head = Some((time, text));
                    continue;
                }
                out.push(time, Stream::Stdout, &String::from_utf8_lossy(&text));
                newest = newest.max(time);
                if out.len() >= RECOVER_BATCH {
                    recovered += out.len() as u64;
                    self.hub.push_batch(std::mem::replace(
                        &mut out,
                        Batch::new(self.service.clone()),
                    ));
                }
            }
        }
        recovered += out.len() as u64;
        added += recovered;
        self.hub.push_batch(out);
        // The newest file ended in a fragment: the stream's first line goes on with it.
        if let Some(h) = head {
            *self.partial = Some(h);
        }
        let file = names.get(start.file).map_or("", String::as_str);
        if recovered > 0 {
            tracing::info!(pod = %self.who, lines = recovered, files = names.len(), gzipped, from_file = file, offset = start.offset, bytes = fetched, switched, "pod log lines the kubelet's stream skipped, read from the node's rotated log files");
        } else {
            tracing::debug!(pod = %self.who, files = names.len(), from_file = file, offset = start.offset, bytes = fetched, switched, "the node's rotated log files held no line the stream skipped");
        }
        if let Some(why) = failed {
            added += self.lost(newest, to, &why);
        }
        added
    }

    /// Says that what was written from `from` to `to` (None: now) is lost, and
    /// why. (A line the last stream ended in is still completed by the next line
    /// devenv reads, as the kubelet would have: after this line, it may be wrong.)
    fn lost(&mut self, from: i64, to: Option<i64>, why: &str) -> u64 {
        let mut b = Batch::new(self.service.clone());
        let to = to.unwrap_or_else(now_nanos);
        let text = gap_line(self.who, from, to, why);
        self.files.marked = self.files.marked.max(Some(to));
        tracing::warn!(pod = %self.who, "{text}");
        b.push(from, Stream::System, &text);
        let n = b.len() as u64;
        self.hub.push_batch(b);
        n
    }
}

/// A file beginning at `start` directly follows the one the stream read to its end
/// (`end`: that file's start-of-next, or its last line): the same file begun at a
/// known start, or one begun within [`NEXT_FILE`] of the stream's last line. A whole
/// file between would span a kubelet rotation check (at least 3 s apart, 10 s by
/// default) of output.
fn follows(end: Option<i64>, start: i64) -> bool {
    let near = i64::try_from(NEXT_FILE.as_nanos()).unwrap_or(i64::MAX);
    end.is_some_and(|e| start == e || (start > e && start - e < near))
}

/// What [`Copy::recover`] reads from the node.
#[derive(Debug, Clone, Copy)]
struct Want {
    /// The lines after this time (unix nanoseconds).
    from: i64,
    /// Up to the line the stream goes on with (None: to the files' end).
    to: Option<i64>,
    /// Where the file devenv read to its end stops (the known start of the one
    /// after it, or its last line; see [`follows`]).
    next: Option<i64>,
    /// Nothing is known to be missing: no gap line when the node has no files to
    /// show, or refuses them.
    looking: bool,
    /// The stream switched files at `to`: the file holding `from` is read to its
    /// end (lines containerd wrote into it late can be stamped after `to`).
    switched: bool,
}

impl Want {
    /// Lines are known to be missing.
    fn gap(from: i64, to: Option<i64>, next: Option<i64>) -> Self {
        Want {
            from,
            to,
            next,
            looking: false,
            switched: false,
        }
    }

    /// Lines may be missing.
    fn look(from: i64, next: Option<i64>) -> Self {
        Want {
            from,
            to: None,
            next,
            looking: true,
            switched: false,
        }
    }
}

/// See [`follows`].
const NEXT_FILE: Duration = Duration::from_secs(1);

/// Lines read from a rotated file go to the hub this many at a time.
const RECOVER_BATCH: usize = 4096;

/// The line that stands in the log where lines could not be read.
fn gap_line(who: &str, from: i64, to: i64, why: &str) -> String {
    let at = |t: i64| {
        k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(t))
            .map_or_else(|_| t.to_string(), |ts| format!("{ts:.3}"))
    };
    let span = Duration::from_nanos(u64::try_from(to - from).unwrap_or(0));
    format!(
        "{GAP_MARK} {who}: lines written between {} and {} ({:.3} s) were not read: \
         the kubelet rotated the log file holding them away (containerLogMaxSize / \
         containerLogMaxFiles) before devenv read it, and {why}; the kubelet keeps no \
         count of how many",
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
///
/// Only that repeated start is skipped. Within one stream the kubelet never sends
/// a line twice, but its times can step back: when it switches to the container's
/// new log file, the old file's last lines (containerd drains the old logger's pipe
/// into it after the new file has begun) can be newer than the new file's first
/// ones. Those are new lines, not repeats.
#[derive(Debug, Default)]
struct Seen {
    /// Time of the newest line admitted, and how many lines had exactly that time.
    last: Option<(i64, u64)>,
    /// A reopened stream is still sending what devenv had: lines older than
    /// `last`, and `skip` more at exactly its time.
    resending: bool,
    skip: u64,
}

impl Seen {
    fn admit(&mut self, time: i64) -> bool {
        if self.resending {
            match self.last {
                Some((t, _)) if time < t => return false,
                Some((t, _)) if time == t && self.skip > 0 => {
                    self.skip -= 1;
                    return false;
                }
                _ => self.resending = false,
            }
        }
        match &mut self.last {
            Some((t, n)) if time == *t => *n += 1,
            // An older time inside one stream: a file switch (see above).
            Some((t, _)) if time < *t => {}
            _ => self.last = Some((time, 1)),
        }
        true
    }

    /// What comes next repeats what devenv had up to its newest line.
    fn rewind(&mut self) {
        if let Some((_, n)) = self.last {
            self.skip = n;
            self.resending = true;
        }
    }

    /// The newest line's time.
    fn newest(&self) -> Option<i64> {
        self.last.map(|(t, _)| t)
    }

    /// Where to reopen the stream: the newest line's time (lines at it are counted
    /// and skipped once more).
    fn resume(&mut self) -> Option<k8s_openapi::jiff::Timestamp> {
        let (t, _) = self.last?;
        self.rewind();
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

    #[test]
    fn a_stream_whose_times_step_back_at_a_file_switch_keeps_every_line() {
        let mut seen = Seen::default();
        // The old file's last lines (55, 60) were stamped after the new file's first
        // ones (50, 52): one stream, every line new.
        let stream = [40, 55, 60, 50, 52, 61];
        assert!(stream.iter().all(|t| seen.admit(*t)));
        assert_eq!(seen.newest(), Some(61));
        // A reopen from the newest line still skips what it repeats.
        assert!(seen.resume().is_some());
        let again = [50, 52, 61, 62];
        let admitted: Vec<i64> = again.into_iter().filter(|t| seen.admit(*t)).collect();
        assert_eq!(admitted, [62]);
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
        /// Its node's rotated files: name and CRI text (gzipped when the name
        /// ends in `.gz`).
        rotated: Vec<(String, String)>,
        /// The node refuses devenv its files.
        refused: bool,
        /// Bytes of the files sent to devenv.
        served: std::sync::atomic::AtomicU64,
    }

    impl FakeFile {
        /// A file's bytes as the node keeps them.
        fn bytes(&self, name: &str) -> Result<Vec<u8>, Unreadable> {
            let Some((_, text)) = self.rotated.iter().find(|(n, _)| n == name) else {
                let gone = kube::core::Status::failure(name, "NotFound").with_code(404);
                return Err(Unreadable::Gone(kube::Error::Api(gone.boxed())));
            };
            if !rotated::is_gzip(name) {
                return Ok(text.clone().into_bytes());
            }
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
            Ok(gz.finish().unwrap())
        }

        fn serve(&self, n: usize) {
            self.served
                .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        }
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
        async fn rotated(&self) -> Result<Vec<String>, Unreadable> {
            if self.refused {
                return Err(Unreadable::Unscheduled);
            }
            Ok(self.rotated.iter().map(|(n, _)| n.clone()).collect())
        }
        async fn range(&self, name: &str, span: Span) -> Result<Chunk, Unreadable> {
            assert!(!rotated::is_gzip(name), "no ranges into {name}");
            let bytes = self.bytes(name)?;
            let size = bytes.len() as u64;
            let (at, len) = match span {
                Span::Tail(n) => (size.saturating_sub(n), n),
                Span::At { start, len } => (start.min(size), len),
            };
            let end = at.saturating_add(len).min(size);
            let bytes = bytes[at as usize..end as usize].to_vec();
            self.serve(bytes.len());
            Ok(Chunk { bytes, at, size })
        }
        async fn open_rotated(&self, name: &str, from: u64) -> Result<RotatedFile, Unreadable> {
            let bytes = self.bytes(name)?;
            let rest = bytes[(from as usize).min(bytes.len())..].to_vec();
            self.serve(rest.len());
            // Small reads, as a network stream's.
            let body = tokio::io::BufReader::with_capacity(1000, std::io::Cursor::new(rest));
            Ok(node::file_reader(body, rotated::is_gzip(name)))
        }
    }

    struct Rig {
        hub: LogHub,
        service: Arc<str>,
        seen: Seen,
        files: FileStarts,
        partial: Option<(i64, Vec<u8>)>,
        at_end: bool,
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
                partial: None,
                at_end: false,
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
                partial: &mut self.partial,
                at_end: self.at_end,
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

    /// A rotated file's CRI records: (time, partial, text).
    fn cri_file(records: &[(i64, bool, &str)]) -> String {
        let mut out = String::new();
        for (t, partial, text) in records {
            let ts = k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(*t)).unwrap();
            let tag = if *partial { "P" } else { "F" };
            out.push_str(&format!("{ts} stdout {tag} {text}\n"));
        }
        out
    }

    /// A kubelet stream's lines: (time, text), the last one without its newline
    /// when `cut`.
    fn stream_of(lines: &[(i64, &str)], cut: bool) -> Vec<u8> {
        let mut out = String::new();
        for (t, text) in lines {
            let ts = k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(*t)).unwrap();
            out.push_str(&format!("{ts} {text}\n"));
        }
        if cut {
            out.pop();
        }
        out.into_bytes()
    }

    fn texts(lines: &[(Stream, String)]) -> Vec<&str> {
        lines
            .iter()
            .map(|(s, t)| {
                if *s == Stream::System {
                    "GAP"
                } else {
                    t.as_str()
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn lines_the_reopened_stream_skips_are_read_from_the_newest_rotated_file() {
        let mut rig = Rig::after(T0 + SEC);
        rig.kubelet.rotated = vec![(
            "0.log.20231114-221330".into(),
            cri_file(&[
                (T0, false, "old"),
                (T0 + SEC, false, "had"),
                (T0 + 2 * SEC, false, "missed-1"),
                (T0 + 3 * SEC, true, "missed"),
                (T0 + 3 * SEC + 1, false, "-2"),
            ]),
        )];
        // The current file begins at 4 s: the stream sends nothing older.
        let stream = stream_of(&[(T0 + 4 * SEC, "new"), (T0 + 5 * SEC, "newer")], false);
        let copied = rig.run(Some(T0 + SEC), &stream[..]).await;
        assert_eq!(copied.added, 4);
        assert_eq!(
            texts(&rig.lines()),
            ["missed-1", "missed-2", "new", "newer"]
        );
    }

    #[tokio::test]
    async fn a_stream_that_ended_mid_line_is_completed_and_what_the_node_lost_is_marked() {
        // The stream stopped inside a line ("li" at 3 s) at the end of a file the
        // node has since compressed; its newest rotated file begins with the rest.
        let mut rig = Rig::after(T0);
        let first = stream_of(
            &[(T0 + SEC, "a"), (T0 + 2 * SEC, "b"), (T0 + 3 * SEC, "li")],
            true,
        );
        rig.run(None, &first[..]).await;
        assert_eq!(rig.partial, Some((T0 + 3 * SEC, b"li".to_vec())));
        rig.kubelet.rotated = vec![(
            "0.log.20231114-221340".into(),
            cri_file(&[
                (T0 + 4 * SEC, false, "ne-c"),
                (T0 + 5 * SEC, false, "d"),
                (T0 + 6 * SEC, true, "e-"),
            ]),
        )];
        let second = stream_of(&[(T0 + 7 * SEC, "end"), (T0 + 8 * SEC, "f")], false);
        let copied = rig.run(Some(T0 + 2 * SEC), &second[..]).await;
        assert_eq!(copied.added, 5, "a gap line and four lines");
        let lines = rig.lines();
        assert_eq!(
            texts(&lines),
            ["a", "b", "GAP", "line-c", "d", "e-end", "f"]
        );
        assert!(
            lines[2]
                .1
                .contains("no copy of the files before 0.log.20231114-221340"),
            "{}",
            lines[2].1
        );
        assert!(rig.partial.is_none());
    }

    #[tokio::test]
    async fn a_node_that_refuses_its_files_gets_a_gap_line_saying_why() {
        let mut rig = Rig::after(T0 + SEC);
        rig.kubelet.refused = true;
        let stream = stream_of(&[(T0 + 4 * SEC, "new")], false);
        let copied = rig.run(Some(T0 + SEC), &stream[..]).await;
        assert_eq!(copied.added, 2);
        let lines = rig.lines();
        assert_eq!(texts(&lines), ["GAP", "new"]);
        assert!(lines[0].1.contains("(3.000 s)"), "{}", lines[0].1);
        assert!(
            lines[0].1.contains(&Unreadable::Unscheduled.to_string()),
            "{}",
            lines[0].1
        );
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
        // Out of order: ignored.
        files.learn(T0 + 15 * SEC, Some(T0 + SEC));
        // Lines of the file devenv reads, then the next one: a switch.
        assert_eq!(files.pass(T0 + 9 * SEC), Passed::Within);
        assert_eq!(files.pass(T0 + 10 * SEC), Passed::Switched);
        // Straight from the file begun at 10 s into one begun at 20 s: a switch too.
        assert_eq!(files.pass(T0 + 21 * SEC), Passed::Switched);
        // But past two starts at once: the file from 30 s to 40 s was never sent.
        files.learn(T0 + 30 * SEC, Some(T0 + 21 * SEC));
        files.learn(T0 + 40 * SEC, Some(T0 + 21 * SEC));
        assert_eq!(
            files.pass(T0 + 41 * SEC),
            Passed::Skipped(T0 + 30 * SEC, T0 + 40 * SEC)
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
        // From the last line read to the next one the stream sent.
        assert!(lines[1].1.contains("(16.000 s)"), "{}", lines[1].1);
        assert_eq!(lines[2], (Stream::Stdout, "line-1".to_string()));
    }

    #[tokio::test]
    async fn a_quiet_stream_whose_known_file_is_gone_marks_the_end_once() {
        // The stream read up to 9 s; a file begun at 10 s was seen, then rotated away
        // before the reader got to it: the current file is empty, the stream quiet,
        // and the node has no copy.
        let mut rig = Rig::after(T0 + 9 * SEC);
        rig.files.learn(T0 + 10 * SEC, Some(T0 + 9 * SEC));
        let (_writer, reader) = tokio::io::duplex(64);
        let copied = tokio::time::timeout(Duration::from_secs(5), rig.run(None, reader))
            .await
            .expect("the stream is given up, to be reopened after the gap");
        assert_eq!(
            copied,
            Copied {
                added: 1,
                stalled: true
            }
        );
        let lines = rig.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert_eq!(lines[0].0, Stream::System);
        assert!(lines[0].1.starts_with(GAP_MARK));
        assert!(rig.files.marked.is_some_and(|m| m > T0 + 10 * SEC));
    }

    #[tokio::test]
    async fn a_quiet_stream_whose_known_file_is_gone_gets_its_lines_from_the_node() {
        // As above, but the node keeps that file uncompressed (the newest rotated
        // one): its lines, no gap line.
        let mut rig = Rig::after(T0 + 9 * SEC);
        rig.files.learn(T0 + 10 * SEC, Some(T0 + 9 * SEC));
        rig.kubelet.rotated = vec![(
            "0.log.20231114-221330".into(),
            cri_file(&[(T0 + 10 * SEC, false, "x"), (T0 + 11 * SEC, false, "y")]),
        )];
        let (_writer, reader) = tokio::io::duplex(64);
        let copied = tokio::time::timeout(Duration::from_secs(5), rig.run(None, reader))
            .await
            .expect("the stream is given up, to be reopened after the recovered lines");
        assert_eq!(
            copied,
            Copied {
                added: 2,
                stalled: true
            }
        );
        assert_eq!(texts(&rig.lines()), ["x", "y"]);
        assert_eq!(rig.seen.newest(), Some(T0 + 11 * SEC));
        assert!(rig.files.marked.is_none());
    }

    #[tokio::test]
    async fn a_quiet_stream_after_a_rotation_reads_the_file_its_reader_missed() {
        // The stream's reader sat at the end of a renamed file (it ended mid-line)
        // while the next file filled and was rotated too; the current one is empty.
        let mut rig = Rig::after(T0);
        let first = stream_of(&[(T0 + SEC, "1"), (T0 + SEC + 10, "2")], true);
        let (mut writer, reader) = tokio::io::duplex(1024);
        tokio::io::AsyncWriteExt::write_all(&mut writer, &first)
            .await
            .unwrap();
        rig.kubelet.rotated = vec![(
            "0.log.20231114-221330".into(),
            cri_file(&[(T0 + SEC + 50, false, "0"), (T0 + 2 * SEC, false, "3")]),
        )];
        let copied = tokio::time::timeout(Duration::from_secs(5), rig.run(None, reader))
            .await
            .expect("the stream is given up after the lines were read from the node");
        assert_eq!(
            copied,
            Copied {
                added: 3,
                stalled: true
            }
        );
        // "2" was cut after its first byte; the file goes on with the rest.
        assert_eq!(texts(&rig.lines()), ["1", "20", "3"]);
        // Looked once for this line: a quiet stream does not ask again.
        assert_eq!(rig.files.looked, Some(T0 + SEC));
    }

    #[tokio::test]
    async fn a_quiet_stream_says_nothing_when_the_node_keeps_its_files_to_itself() {
        let mut rig = Rig::after(T0);
        rig.kubelet.refused = true;
        let (_writer, reader) = tokio::io::duplex(64);
        let run = rig.run(None, reader);
        assert!(tokio::time::timeout(Duration::from_millis(300), run)
            .await
            .is_err());
        assert!(rig.lines().is_empty());
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

    /// `n` CRI records `prefix-I`, one per millisecond from `start`.
    fn numbered(start: i64, prefix: &str, n: usize) -> String {
        let recs: Vec<(i64, bool, String)> = (0..n)
            .map(|i| (start + i as i64 * 1_000_000, false, format!("{prefix}-{i}")))
            .collect();
        let refs: Vec<(i64, bool, &str)> =
            recs.iter().map(|(t, p, x)| (*t, *p, x.as_str())).collect();
        cri_file(&refs)
    }

    #[tokio::test]
    async fn lines_in_gzipped_rotated_files_are_read_in_place() {
        // The stream had 1 s; the node keeps two files the kubelet's reader never
        // sent, the older one gzipped (large enough for many reads of the
        // decompressor), then the stream goes on in the current file.
        let mut rig = Rig::after(T0 + SEC);
        rig.kubelet.rotated = vec![
            (
                "0.log.20231114-221330.gz".into(),
                cri_file(&[(T0, false, "old"), (T0 + SEC, false, "had")])
                    + &numbered(T0 + 2 * SEC, "gz", 8_000),
            ),
            (
                "0.log.20231114-221350".into(),
                numbered(T0 + 30 * SEC, "plain", 3),
            ),
        ];
        let stream = stream_of(&[(T0 + 40 * SEC, "new")], false);
        let copied = rig.run(Some(T0 + SEC), &stream[..]).await;
        assert_eq!(copied.added, 8_004);
        let lines = rig.lines();
        let texts = texts(&lines);
        assert!(!texts.contains(&"GAP"), "{:?}", &texts[..5]);
        assert_eq!(texts[0], "gz-0");
        assert_eq!(texts[7_999], "gz-7999");
        assert_eq!(texts[8_000..], ["plain-0", "plain-1", "plain-2", "new"]);
    }

    #[tokio::test]
    async fn files_the_node_deleted_are_a_gap_saying_so() {
        // The lines after 1 s were in files the node deleted (past
        // containerLogMaxFiles; gzipped or not); the oldest one it keeps begins at 30 s.
        let mut rig = Rig::after(T0 + SEC);
        rig.kubelet.rotated = vec![(
            "0.log.20231114-221350".into(),
            numbered(T0 + 30 * SEC, "plain", 2),
        )];
        let stream = stream_of(&[(T0 + 40 * SEC, "new")], false);
        let copied = rig.run(Some(T0 + SEC), &stream[..]).await;
        assert_eq!(copied.added, 4);
        let lines = rig.lines();
        assert_eq!(texts(&lines), ["GAP", "plain-0", "plain-1", "new"]);
        assert!(lines[0]
            .1
            .contains("no copy of the files before 0.log.20231114-221350"));
    }

    #[tokio::test]
    async fn a_quiet_check_reads_only_the_tail_of_a_large_rotated_file() {
        // 100,000 records (~5 MB): devenv has all but the last three.
        let file = numbered(T0, "x", 100_000);
        let size = file.len() as u64;
        let last_had = T0 + 99_996 * 1_000_000;
        let mut rig = Rig::after(last_had);
        rig.kubelet.rotated = vec![("0.log.20231114-221330".into(), file)];
        let (_writer, reader) = tokio::io::duplex(64);
        let copied = tokio::time::timeout(Duration::from_secs(5), rig.run(None, reader))
            .await
            .expect("the stream is given up after the lines were read from the node");
        assert_eq!(copied.added, 3);
        assert_eq!(texts(&rig.lines()), ["x-99997", "x-99998", "x-99999"]);
        let served = rig.kubelet.served.into_inner();
        // A head probe, the last 64 KiB, then the tail from the record found.
        assert!(
            served <= 32 * 1024 + 2 * tail::TAIL_BYTES,
            "{served} of {size}"
        );
    }

    #[tokio::test]
    async fn a_line_further_back_is_found_by_walking_back_from_the_end() {
        // The missing lines are the last ~250 KB: past the first 64 KiB read.
        let file = numbered(T0, "x", 100_000);
        let size = file.len() as u64;
        let last_had = T0 + 95_000 * 1_000_000;
        let mut rig = Rig::after(last_had);
        rig.kubelet.rotated = vec![("0.log.20231114-221330".into(), file)];
        let (_writer, reader) = tokio::io::duplex(64);
        let copied = tokio::time::timeout(Duration::from_secs(5), rig.run(None, reader))
            .await
            .expect("the stream is given up after the lines were read from the node");
        assert_eq!(copied.added, 4_999);
        let lines = rig.lines();
        assert_eq!(texts(&lines)[0], "x-95001");
        assert_eq!(texts(&lines)[4_998], "x-99999");
        let served = rig.kubelet.served.into_inner();
        let wanted = size * 5_000 / 100_000;
        assert!(
            served < 3 * wanted,
            "{served} for {wanted} wanted of {size}"
        );
    }

    #[tokio::test]
    async fn lines_written_into_the_old_file_after_the_switch_are_put_in_place() {
        // Behind, devenv learnt that a file began at 10 s. The stream sends the old
        // file to "b" (9.5 s) and goes on with the new file's first line; containerd
        // had written two more lines into the old file (draining its pipe at the
        // reopen, stamped after the new file's first line), which the kubelet's
        // reader never sent.
        let mut rig = Rig::after(T0 + 8 * SEC);
        rig.files.learn(T0 + 10 * SEC, Some(T0 + 8 * SEC));
        rig.kubelet.rotated = vec![(
            "0.log.20231114-221330".into(),
            cri_file(&[
                (T0 + 8 * SEC, false, "had"),
                (T0 + 9 * SEC, false, "a"),
                (T0 + 9 * SEC + SEC / 2, false, "b"),
                (T0 + 10 * SEC + SEC / 5, false, "late-1"),
                (T0 + 10 * SEC + SEC / 4, false, "late-2"),
            ]),
        )];
        let stream = stream_of(
            &[
                (T0 + 9 * SEC, "a"),
                (T0 + 9 * SEC + SEC / 2, "b"),
                (T0 + 10 * SEC, "c"),
                (T0 + 10 * SEC + SEC / 10, "d"),
            ],
            false,
        );
        let copied = rig.run(None, &stream[..]).await;
        assert_eq!(copied.added, 6);
        assert_eq!(
            texts(&rig.lines()),
            ["a", "b", "late-1", "late-2", "c", "d"]
        );
    }

    #[tokio::test]
    async fn a_switch_whose_old_file_ends_with_the_last_line_adds_nothing() {
        let mut rig = Rig::after(T0 + 8 * SEC);
        rig.files.learn(T0 + 10 * SEC, Some(T0 + 8 * SEC));
        rig.kubelet.rotated = vec![(
            "0.log.20231114-221330".into(),
            cri_file(&[(T0 + 8 * SEC, false, "had"), (T0 + 9 * SEC, false, "a")]),
        )];
        let stream = stream_of(&[(T0 + 9 * SEC, "a"), (T0 + 10 * SEC, "c")], false);
        let copied = rig.run(None, &stream[..]).await;
        assert_eq!(copied.added, 2);
        assert_eq!(texts(&rig.lines()), ["a", "c"]);
        // A node that refuses its files: no claim of a loss nobody saw.
        let mut rig = Rig::after(T0 + 8 * SEC);
        rig.files.learn(T0 + 10 * SEC, Some(T0 + 8 * SEC));
        rig.kubelet.refused = true;
        let copied = rig.run(None, &stream[..]).await;
        assert_eq!(copied.added, 2);
        assert_eq!(texts(&rig.lines()), ["a", "c"]);
    }

    #[test]
    fn stamped_lines_are_parsed() {
        let (t, text) = stamped(b"2024-05-01T12:00:00.000000123Z hello world\r").unwrap();
        assert_eq!(t, 1_714_564_800_000_000_123);
        assert_eq!(text, b"hello world");
        assert!(stamped(b"no-time here").is_none());
    }
}
