//! Idle stop: what this daemon has seen of a workspace's use, and one watcher task per
//! running workspace with an `idleTimeout` that stops it after that long without any.
//!
//! Signals: a shell or exec open (never stopped while one is: the watcher waits for
//! the last to close), port-forward bytes (sampled from the forward's counters),
//! create/start, and the pod's CPU from `metrics.k8s.io` above the workspace's
//! `cpuActiveMillicores` when the timeout is due (a cluster without metrics-server has
//! no such API: the CPU signal is then reported missing, and the others decide), and
//! sync traffic: files written or deleted by `devenv workspace sync` (`sync.rs`).
//! A sync waiting for edits is no activity by itself, or a terminal left open would
//! keep a workspace up for ever.
//!
//! Changes wake the watcher through a `watch` channel of a generation number (no
//! missed wake-ups, no polling); it sleeps until the deadline otherwise.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::{Engine, Target, WorkspaceState};
use crate::config::Workspace;
use crate::kube::workspace as kws;
use crate::kube::ClusterConn;

/// After a failed stop (the API server unreachable), when the watcher tries again.
const RETRY: Duration = Duration::from_secs(30);

/// The signal that last saw a workspace in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Created,
    Started,
    /// Found running by this daemon (after a daemon restart, its first sight of it).
    Seen,
    Shell,
    PortForward,
    Cpu,
    /// Files copied into it or deleted by `devenv workspace sync`.
    Sync,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Started => "started",
            Self::Seen => "seen-running",
            Self::Shell => "shell",
            Self::PortForward => "port-forward",
            Self::Cpu => "cpu",
            Self::Sync => "sync",
        }
    }
}

#[derive(Debug)]
struct State {
    last: Option<(Signal, SystemTime)>,
    open_sessions: u32,
    timeout: Option<Duration>,
    /// The live watcher's epoch; `disarm` moves `epoch` on, which ends it.
    watcher: Option<u64>,
    epoch: u64,
    stopped_idle: Option<SystemTime>,
    cpu: String,
}

/// What this daemon knows of one workspace's use.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Activity {
    fn new() -> Self {
        Self {
            state: Mutex::new(State {
                last: None,
                open_sessions: 0,
                timeout: None,
                watcher: None,
                epoch: 0,
                stopped_idle: None,
                cpu: "not sampled yet (read when the idle timeout is due)".into(),
            }),
            changed: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self) {
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Records activity now.
    pub fn touch(&self, signal: Signal) {
        self.lock().last = Some((signal, SystemTime::now()));
        self.wake();
    }

    /// Counts an open shell/exec until the guard is dropped (which is activity too).
    pub fn open_session(self: &Arc<Self>) -> SessionGuard {
        {
            let mut s = self.lock();
            s.open_sessions += 1;
            s.last = Some((Signal::Shell, SystemTime::now()));
        }
        self.wake();
        SessionGuard(self.clone())
    }
}

/// An open shell or exec; its drop closes it.
#[derive(Debug)]
pub struct SessionGuard(Arc<Activity>);

impl Drop for SessionGuard {
    fn drop(&mut self) {
        {
            let mut s = self.0.lock();
            s.open_sessions = s.open_sessions.saturating_sub(1);
            s.last = Some((Signal::Shell, SystemTime::now()));
        }
        self.0.wake();
    }
}

/// Every workspace this daemon has seen, by `namespace/statefulset`: bounded by the
/// workspaces of the configs it was asked about.
#[derive(Debug, Default)]
pub(crate) struct Book(Mutex<HashMap<String, Arc<Activity>>>);

/// What `status` says about idle stop.
pub(super) struct Report {
    pub last: Option<(Signal, SystemTime)>,
    pub stops_at: Option<SystemTime>,
    pub open_sessions: u32,
    pub note: String,
    pub cpu: String,
}

impl Book {
    fn get(&self, key: &str) -> Arc<Activity> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(Activity::new()))
            .clone()
    }

    /// Ends the watcher (the user stopped or deleted the workspace).
    pub(super) fn disarm(&self, key: &str, idle: bool) {
        let a = self.get(key);
        {
            let mut s = a.lock();
            s.epoch += 1;
            s.watcher = None;
            s.stopped_idle = idle.then(SystemTime::now);
        }
        a.wake();
    }

    pub(super) fn forget(&self, key: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }

    pub(super) fn stopped_idle(&self, key: &str) -> bool {
        self.get(key).lock().stopped_idle.is_some()
    }

    pub(super) fn report(
        &self,
        key: &str,
        state: WorkspaceState,
        timeout: Option<Duration>,
    ) -> Report {
        let a = self.get(key);
        let s = a.lock();
        let stops_at = match (state, timeout, s.last, s.open_sessions) {
            (WorkspaceState::Running | WorkspaceState::Starting, Some(t), Some((_, at)), 0) => {
                Some(at + t)
            }
            _ => None,
        };
        let note = match (state, timeout) {
            (WorkspaceState::Absent, _) => String::new(),
            (WorkspaceState::Stopped, _) => match s.stopped_idle {
                Some(at) => format!(
                    "stopped for idleness at {}; only `devenv workspace start` starts it",
                    humantime::format_rfc3339_seconds(at)
                ),
                None => "stopped; only `devenv workspace start` starts it".into(),
            },
            (_, None) => "no idleTimeout: never stopped for idleness".into(),
            (_, Some(_)) if s.open_sessions > 0 => format!(
                "{} shell/exec session(s) open: not stopped while one is",
                s.open_sessions
            ),
            (_, Some(_)) => match stops_at {
                Some(at) => format!(
                    "stops at {} unless used before",
                    humantime::format_rfc3339_seconds(at)
                ),
                None => "not watched".into(),
            },
        };
        Report {
            last: s.last,
            stops_at,
            open_sessions: s.open_sessions,
            note,
            cpu: s.cpu.clone(),
        }
    }
}

impl Engine {
    pub(super) fn idle_book(&self) -> &Book {
        &self.workspaces
    }

    /// Records `signal` for the workspace (a `Seen` only when nothing was seen before)
    /// and makes sure a watcher runs when it has an idle timeout.
    pub(super) fn idle_arm(&self, t: &Target, signal: Signal) -> Arc<Activity> {
        let a = self.workspaces.get(&t.key());
        let spawn = {
            let mut s = a.lock();
            if signal != Signal::Seen || s.last.is_none() {
                s.last = Some((signal, SystemTime::now()));
            }
            if matches!(signal, Signal::Created | Signal::Started) {
                s.stopped_idle = None;
            }
            s.timeout = t.ws.idle_timeout;
            match (s.timeout, s.watcher) {
                (Some(_), None) => {
                    s.epoch += 1;
                    s.watcher = Some(s.epoch);
                    Some(s.epoch)
                }
                _ => None,
            }
        };
        a.wake();
        if let Some(epoch) = spawn {
            let watcher = Watcher {
                conn: t.conn.clone(),
                ws: t.ws.clone(),
                activity: a.clone(),
                epoch,
            };
            let closing = self.closing.clone();
            self.tasks.spawn(async move {
                tokio::select! {
                    () = watcher.run() => {}
                    () = closing.cancelled() => {}
                }
            });
        }
        a
    }
}

struct Watcher {
    conn: ClusterConn,
    ws: Workspace,
    activity: Arc<Activity>,
    epoch: u64,
}

enum Next {
    Exit,
    /// Wait for a change (sessions open).
    Change,
    Sleep(Duration),
    Due,
}

impl Watcher {
    fn next(&self) -> Next {
        let s = self.activity.lock();
        if s.watcher != Some(self.epoch) {
            return Next::Exit;
        }
        let Some(timeout) = s.timeout else {
            return Next::Exit;
        };
        if s.open_sessions > 0 {
            return Next::Change;
        }
        let since = s
            .last
            .map_or(Duration::ZERO, |(_, at)| at.elapsed().unwrap_or_default());
        match timeout.checked_sub(since) {
            Some(left) if !left.is_zero() => Next::Sleep(left),
            _ => Next::Due,
        }
    }

    async fn run(self) {
        let mut changes = self.activity.changed.subscribe();
        loop {
            changes.borrow_and_update();
            match self.next() {
                Next::Exit => return,
                Next::Change => {
                    if changes.changed().await.is_err() {
                        return;
                    }
                }
                Next::Sleep(d) => {
                    tokio::select! {
                        () = tokio::time::sleep(d) => {}
                        r = changes.changed() => if r.is_err() { return },
                    }
                }
                Next::Due => {
                    if self.cpu_busy().await {
                        self.activity.touch(super::Signal::Cpu);
                        continue;
                    }
                    // The CPU read awaited: a shell may have opened meanwhile.
                    if !matches!(self.next(), Next::Due) {
                        continue;
                    }
                    match kws::set_replicas(&self.conn, &self.ws, 0).await {
                        Ok(()) => {
                            tracing::info!(
                                workspace = %self.ws.name,
                                owner = %self.ws.owner,
                                "stopped the workspace: idle for its idleTimeout"
                            );
                            let mut s = self.activity.lock();
                            if s.watcher == Some(self.epoch) {
                                s.watcher = None;
                                s.stopped_idle = Some(SystemTime::now());
                            }
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(workspace = %self.ws.name, error = %e, "idle stop failed; trying again");
                            tokio::select! {
                                () = tokio::time::sleep(RETRY) => {}
                                r = changes.changed() => if r.is_err() { return },
                            }
                        }
                    }
                }
            }
        }
    }

    /// Whether the pod's CPU is above the workspace's threshold now, recording what
    /// was read (or why nothing could be).
    async fn cpu_busy(&self) -> bool {
        let pod = format!("{}-0", self.ws.object_name());
        let read = pod_cpu_millicores(&self.conn, &pod).await;
        let busy = matches!(read, Ok(m) if m >= u64::from(self.ws.cpu_active_millicores));
        let line = match read {
            Ok(m) => format!(
                "{m}m at {} (active at {}m or more)",
                humantime::format_rfc3339_seconds(SystemTime::now()),
                self.ws.cpu_active_millicores
            ),
            Err(why) => why,
        };
        self.activity.lock().cpu = line;
        busy
    }
}

/// The pod's CPU use in millicores from the metrics API, or why it is unknown.
async fn pod_cpu_millicores(conn: &ClusterConn, pod: &str) -> Result<u64, String> {
    let url = format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods/{pod}",
        conn.namespace
    );
    let req = http::Request::get(url)
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let v: serde_json::Value = match conn.client.request(req).await {
        Ok(v) => v,
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 503 => {
            return Err(
                "no CPU signal: the cluster does not serve metrics.k8s.io (no metrics-server)"
                    .into(),
            )
        }
        Err(e) => return Err(format!("no CPU signal: {}", crate::kube::first_line(&e))),
    };
    let total = v["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["usage"]["cpu"].as_str())
        .filter_map(millicores)
        .sum();
    Ok(total)
}

/// A CPU quantity (`250m`, `1`, `12345n`, `5u`) in millicores.
fn millicores(q: &str) -> Option<u64> {
    let (num, div) = if let Some(n) = q.strip_suffix('n') {
        (n, 1_000_000.0)
    } else if let Some(n) = q.strip_suffix('u') {
        (n, 1_000.0)
    } else if let Some(n) = q.strip_suffix('m') {
        (n, 1.0)
    } else {
        (q, 0.001)
    };
    let v: f64 = num.parse().ok()?;
    Some((v / div).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities_in_millicores() {
        assert_eq!(millicores("250m"), Some(250));
        assert_eq!(millicores("1"), Some(1000));
        assert_eq!(millicores("12345678n"), Some(12));
        assert_eq!(millicores("5000u"), Some(5));
        assert_eq!(millicores("x"), None);
    }

    #[test]
    fn an_open_session_keeps_the_stop_unscheduled() {
        let book = Book::default();
        let a = book.get("ns/ws-dev-ann");
        a.lock().timeout = Some(Duration::from_secs(60));
        a.touch(Signal::Created);
        let r = book.report(
            "ns/ws-dev-ann",
            WorkspaceState::Running,
            Some(Duration::from_secs(60)),
        );
        assert!(r.stops_at.is_some());
        let guard = a.open_session();
        let r = book.report(
            "ns/ws-dev-ann",
            WorkspaceState::Running,
            Some(Duration::from_secs(60)),
        );
        assert_eq!(r.open_sessions, 1);
        assert!(r.stops_at.is_none(), "never stopped while a shell is open");
        assert!(r.note.contains("not stopped while one is"), "{}", r.note);
        drop(guard);
        let r = book.report(
            "ns/ws-dev-ann",
            WorkspaceState::Running,
            Some(Duration::from_secs(60)),
        );
        assert_eq!(r.open_sessions, 0);
        assert_eq!(r.last.map(|l| l.0), Some(Signal::Shell));
        assert!(r.stops_at.is_some());
    }
}
