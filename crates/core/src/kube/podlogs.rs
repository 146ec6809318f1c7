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

/// One run of one container (a restart is another).
struct Container {
    api: Api<Pod>,
    pod: String,
    name: String,
    restarts: i32,
}

impl Container {
    /// Its lines into the hub from `from` (or its start), reopening the stream with
    /// `sinceTime` whenever it ends while the container still runs.
    async fn follow(
        &self,
        from: Option<k8s_openapi::jiff::Timestamp>,
        hub: LogHub,
        service: Arc<str>,
    ) {
        let mut seen = Seen::default();
        let mut since = from;
        let mut reopen = 0;
        let mut last_pass = false;
        loop {
            let params = LogParams {
                container: Some(self.name.clone()),
                follow: true,
                timestamps: true,
                since_time: since,
                ..Default::default()
            };
            let added = match self.api.log_stream(&self.pod, &params).await {
                Ok(stream) => copy_stamped(&hub, stream.compat(), &service, &mut seen).await,
                Err(e) => {
                    tracing::debug!(error = %e, pod = %self.pod, "cannot stream pod logs");
                    0
                }
            };
            // Ended: the container exited, or the connection was cut mid-way. Once
            // it no longer runs, one more pass from the last line reads what a cut
            // left (a stopped container's stream sends all and ends).
            if last_pass {
                return;
            }
            last_pass = !self.running().await;
            if added > 0 {
                reopen = 0;
            }
            if !last_pass {
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

/// Copies `<RFC 3339 time> <text>` lines (the kubelet's `timestamps=true` form) into
/// the hub with those times, skipping lines `seen` already had. Returns how many
/// lines it added.
async fn copy_stamped(
    hub: &LogHub,
    mut stream: impl AsyncRead + Unpin,
    service: &Arc<str>,
    seen: &mut Seen,
) -> u64 {
    let mut buf = vec![0u8; READ_BYTES];
    let mut carry: Vec<u8> = Vec::new();
    let mut added = 0;
    let mut dirty = false;
    loop {
        let read = if dirty {
            match tokio::time::timeout(IDLE_FLUSH, stream.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => {
                    hub.flush_service(service);
                    dirty = false;
                    continue;
                }
            }
        } else {
            stream.read(&mut buf).await
        };
        let n = match read {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        carry.extend_from_slice(&buf[..n]);
        let mut batch = Batch::new(service.clone());
        let end = carry.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        for line in carry[..end].split(|b| *b == b'\n') {
            if line.is_empty() {
                continue;
            }
            if let Some((time, text)) = stamped(line) {
                if seen.admit(time) {
                    batch.push(time, Stream::Stdout, &String::from_utf8_lossy(text));
                }
            }
        }
        carry.drain(..end);
        // A line with no end in sight: kept bounded (the rest is lost to a cut).
        if carry.len() > 2 * MAX_LINE_BYTES {
            carry.clear();
        }
        added += batch.len() as u64;
        if !batch.is_empty() {
            hub.push_batch(batch);
            dirty = true;
        }
    }
    hub.flush_service(service);
    added
}

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

    #[test]
    fn stamped_lines_are_parsed() {
        let (t, text) = stamped(b"2024-05-01T12:00:00.000000123Z hello world\r").unwrap();
        assert_eq!(t, 1_714_564_800_000_000_123);
        assert_eq!(text, b"hello world");
        assert!(stamped(b"no-time here").is_none());
    }
}
