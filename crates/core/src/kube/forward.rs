//! Port forwards from localhost to a kubernetes service's pods that survive pod
//! restarts and rollouts: the local listener stays up, and every new connection goes
//! to a currently ready pod of the workload (re-resolved from a pod watch).
//!
//! One task per forward owns the listener, the pod watch and the connections (a
//! `JoinSet`); the watch publishes the pod set on a `tokio::sync::watch` channel, from
//! which connections pick their pod, wait for one, and learn that theirs is gone.
//!
//! The warm spare streams (`Warm`, `Spare`) and the connection (`Conn`) are
//! `forward/conn.rs`, a child of this module: they share the `Shared` state and the pod
//! set defined here.
//!
//! Why ~910 lines here: 255 are tests; the rest is one forward's task, whose parts
//! (listener, pod set, status) share one `Shared` state under one lock and are each
//! small.

use std::collections::BTreeMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::WatchStreamExt;
use kube::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn, Instrument};

mod conn;

use conn::{keep_spare, Conn, Spare};

/// Connections served at once; further ones wait in the listen backlog.
const MAX_CONNECTIONS: usize = 256;
/// How long stopping waits for connections to end before aborting them.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Health of one forward, as `devenv forward ls` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardState {
    /// Listening; a ready pod exists and the last connection to it worked.
    Active,
    /// Listening, but no ready pod right now: new connections wait for one.
    Waiting,
    /// The last attempt to reach a pod failed; the next connection retries.
    Error,
    /// Not listening.
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardStatus {
    pub service: String,
    pub local_port: u16,
    pub remote_port: u16,
    pub state: ForwardState,
    /// The pod new connections go to now.
    pub pod: Option<String>,
    /// Connections accepted since the start.
    pub connections: u64,
    /// Local connections open now, including those waiting for a pod.
    pub active_connections: u32,
    /// Bytes from the pods to local clients.
    pub bytes_in: u64,
    /// Bytes from local clients to the pods.
    pub bytes_out: u64,
    /// Times the forward moved to another pod.
    pub reconnects: u32,
    pub last_error: Option<String>,
    /// When `state` last changed.
    pub since: SystemTime,
}

/// What to forward: `localhost:local_port` to `remote_port` of the pods matching
/// `selector` in `namespace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardSpec {
    pub service: String,
    /// 0 picks a free port (see [`ForwardStatus::local_port`]).
    pub local_port: u16,
    pub remote_port: u16,
    pub namespace: String,
    /// Label selector of the workload's pods, e.g.
    /// `devenv.dev/service=web,devenv.dev/environment=shop`.
    pub selector: String,
}

/// Starting a forward failed; nothing is left running.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("localhost:{port} is already in use{} (hint: stop it, or forward {service} from another local port)", by(.holder))]
    PortInUse {
        port: u16,
        service: String,
        /// The process listening there, when it can be found ("pid 42 (python3)").
        holder: Option<String>,
    },
    #[error("cannot listen on localhost:{port}: {source}")]
    Listen {
        port: u16,
        #[source]
        source: io::Error,
    },
}

fn by(holder: &Option<String>) -> String {
    holder
        .as_ref()
        .map(|h| format!(" by {h}"))
        .unwrap_or_default()
}

/// A running forward. [`Forwarder::stop`] ends it and waits; dropping it ends it in
/// the background.
pub struct Forwarder {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Forwarder {
    /// Binds 127.0.0.1:local_port now, then serves in a background task until stopped.
    pub async fn start(client: Client, spec: ForwardSpec) -> Result<Forwarder, ForwardError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, spec.local_port));
        let listener = match TcpListener::bind(addr).await {
            Ok(l) => l,
            Err(e) => return Err(bind_error(&spec, e).await),
        };
        let local_port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(spec.local_port);
        let shared = Arc::new(Shared::new(&spec, local_port));
        let cancel = CancellationToken::new();
        let span = tracing::info_span!(
            "forward",
            forward.service = %spec.service,
            forward.local_port = local_port,
            forward.remote_port = spec.remote_port,
        );
        let task = tokio::spawn(
            run(listener, client, spec, shared.clone(), cancel.clone()).instrument(span),
        );
        Ok(Forwarder {
            shared,
            cancel,
            task: Some(task),
        })
    }

    /// A snapshot of the forward's health and counters (no I/O, no waiting).
    pub fn status(&self) -> ForwardStatus {
        self.shared.status()
    }

    /// Closes the listener and all connections, and waits for that: the local port is
    /// free when this returns.
    pub async fn stop(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                warn!(error = %e, "forward task failed");
            }
        }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("status", &self.status())
            .finish()
    }
}

async fn bind_error(spec: &ForwardSpec, e: io::Error) -> ForwardError {
    if e.kind() != io::ErrorKind::AddrInUse {
        return ForwardError::Listen {
            port: spec.local_port,
            source: e,
        };
    }
    let port = spec.local_port;
    let holder = tokio::task::spawn_blocking(move || crate::ports::holder(port))
        .await
        .ok()
        .flatten();
    ForwardError::PortInUse {
        port,
        service: spec.service.clone(),
        holder,
    }
}

// ---------------------------------------------------------------------------------
// Pods
// ---------------------------------------------------------------------------------

/// What the forward needs to know of one pod.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PodInfo {
    name: String,
    uid: String,
    running: bool,
    ready: bool,
    terminating: bool,
    /// Container restarts: a change means the process behind a connection is gone.
    restarts: i32,
    created: Option<Time>,
}

impl PodInfo {
    fn of(pod: &Pod) -> Option<Self> {
        let meta = &pod.metadata;
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .is_some_and(|c| c.status == "True");
        let restarts = status
            .and_then(|s| s.container_statuses.as_ref())
            .map(|cs| cs.iter().map(|c| c.restart_count).sum())
            .unwrap_or(0);
        Some(Self {
            name: meta.name.clone()?,
            uid: meta.uid.clone()?,
            running: status.and_then(|s| s.phase.as_deref()) == Some("Running"),
            ready,
            terminating: meta.deletion_timestamp.is_some(),
            restarts,
            created: meta.creation_timestamp.clone(),
        })
    }

    /// New connections may go here.
    fn is_candidate(&self) -> bool {
        self.running && self.ready && !self.terminating
    }

    /// Open connections may stay here: a terminating pod keeps serving them during its
    /// grace period, until its containers stop.
    fn keeps_connections(&self) -> bool {
        self.running && (self.ready || !self.terminating)
    }
}

/// The pods matching the selector, as the watch last reported them.
#[derive(Debug, Default, Clone)]
struct PodSet {
    pods: BTreeMap<String, PodInfo>,
    /// Pods of a relist in progress; they replace `pods` when it completes.
    relist: Option<BTreeMap<String, PodInfo>>,
}

impl PodSet {
    /// Applies one watch event; true if the set of pods changed.
    fn apply(&mut self, event: watcher::Event<Pod>) -> bool {
        match event {
            watcher::Event::Init => {
                self.relist = Some(BTreeMap::new());
                false
            }
            watcher::Event::InitApply(pod) => {
                if let (Some(relist), Some(info)) = (self.relist.as_mut(), PodInfo::of(&pod)) {
                    relist.insert(info.name.clone(), info);
                }
                false
            }
            watcher::Event::InitDone => {
                let listed = self.relist.take().unwrap_or_default();
                let changed = listed != self.pods;
                self.pods = listed;
                changed
            }
            watcher::Event::Apply(pod) => {
                let Some(info) = PodInfo::of(&pod) else {
                    return false;
                };
                let old = self.pods.insert(info.name.clone(), info.clone());
                old.as_ref() != Some(&info)
            }
            watcher::Event::Delete(pod) => pod
                .metadata
                .name
                .as_ref()
                .is_some_and(|name| self.pods.remove(name).is_some()),
        }
    }

    /// The pod a new connection should go to: `prefer` (the one used last) while it is
    /// ready, else the newest ready pod (in a rollout, the new version), never `avoid`
    /// (a uid that just failed).
    fn pick(&self, prefer: Option<&str>, avoid: Option<&str>) -> Option<&PodInfo> {
        let mut candidates = self
            .pods
            .values()
            .filter(|p| p.is_candidate() && Some(p.uid.as_str()) != avoid);
        if let Some(p) = prefer.and_then(|name| self.pods.get(name)) {
            if p.is_candidate() && Some(p.uid.as_str()) != avoid {
                return Some(p);
            }
        }
        let first = candidates.next()?;
        Some(candidates.fold(first, |best, p| {
            if (&p.created, &p.name) > (&best.created, &best.name) {
                p
            } else {
                best
            }
        }))
    }

    fn has_candidates(&self) -> bool {
        self.pods.values().any(PodInfo::is_candidate)
    }

    /// A connection opened to pod `uid` when it had `restarts` may go on.
    fn keeps(&self, uid: &str, restarts: i32) -> bool {
        self.pods
            .values()
            .find(|p| p.uid == uid)
            .is_some_and(|p| p.keeps_connections() && p.restarts == restarts)
    }
}

// ---------------------------------------------------------------------------------
// Shared status
// ---------------------------------------------------------------------------------

/// Counters and state of one forward; written by its task and connections, read by
/// [`Forwarder::status`]. The mutex is held only to copy or set a few fields.
struct Shared {
    service: String,
    local_port: u16,
    remote_port: u16,
    connections: AtomicU64,
    active: AtomicU32,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    reconnects: AtomicU32,
    inner: Mutex<Inner>,
}

/// The facts the state is derived from.
struct Inner {
    state: ForwardState,
    since: SystemTime,
    /// The pod new connections go to now.
    pod: Option<String>,
    /// The pod the last successful connection went to.
    last_used: Option<String>,
    last_error: Option<String>,
    stopped: bool,
    has_candidates: bool,
    watch_failing: bool,
    attempt_failed: bool,
}

impl Inner {
    fn refresh(&mut self) {
        let state = if self.stopped {
            ForwardState::Stopped
        } else if self.watch_failing && !self.has_candidates {
            ForwardState::Error
        } else if !self.has_candidates {
            ForwardState::Waiting
        } else if self.attempt_failed {
            ForwardState::Error
        } else {
            ForwardState::Active
        };
        if state != self.state {
            self.state = state;
            self.since = SystemTime::now();
        }
    }
}

impl Shared {
    fn new(spec: &ForwardSpec, local_port: u16) -> Self {
        Self {
            service: spec.service.clone(),
            local_port,
            remote_port: spec.remote_port,
            connections: AtomicU64::new(0),
            active: AtomicU32::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            reconnects: AtomicU32::new(0),
            inner: Mutex::new(Inner {
                state: ForwardState::Waiting,
                since: SystemTime::now(),
                pod: None,
                last_used: None,
                last_error: None,
                stopped: false,
                has_candidates: false,
                watch_failing: false,
                attempt_failed: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave these plain fields inconsistent.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn status(&self) -> ForwardStatus {
        let inner = self.lock();
        ForwardStatus {
            service: self.service.clone(),
            local_port: self.local_port,
            remote_port: self.remote_port,
            state: inner.state,
            pod: inner.pod.clone(),
            connections: self.connections.load(Ordering::Relaxed),
            active_connections: self.active.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            last_error: inner.last_error.clone(),
            since: inner.since,
        }
    }

    fn last_used(&self) -> Option<String> {
        self.lock().last_used.clone()
    }

    fn pods_seen(&self, pods: &PodSet) {
        let mut inner = self.lock();
        inner.watch_failing = false;
        inner.has_candidates = pods.has_candidates();
        inner.pod = pods
            .pick(inner.last_used.as_deref(), None)
            .map(|p| p.name.clone());
        inner.refresh();
    }

    fn watch_failed(&self, message: String) {
        let message = one_line(message);
        warn!(error = %message, "pod watch failed");
        let mut inner = self.lock();
        inner.watch_failing = true;
        inner.last_error = Some(message);
        inner.refresh();
    }

    /// A connection reached `pod`.
    fn connected(&self, pod: &str) {
        let mut inner = self.lock();
        if inner.last_used.as_deref().is_some_and(|last| last != pod) {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        inner.last_used = Some(pod.to_owned());
        inner.pod = Some(pod.to_owned());
        inner.attempt_failed = false;
        inner.refresh();
    }

    /// Reaching a pod failed.
    fn attempt_failed(&self, message: String) {
        let message = one_line(message);
        debug!(error = %message, "connection failed");
        let mut inner = self.lock();
        inner.attempt_failed = true;
        inner.last_error = Some(message);
        inner.refresh();
    }

    /// A connection gave up waiting for a pod (the state already says Waiting).
    fn gave_up(&self, message: String) {
        let message = one_line(message);
        debug!(error = %message, "connection closed");
        self.lock().last_error = Some(message);
    }

    fn stopped(&self) {
        let mut inner = self.lock();
        inner.stopped = true;
        inner.refresh();
    }
}

fn one_line(message: String) -> String {
    if message.contains(['\n', '\r']) {
        message
            .split(['\n', '\r'])
            .next()
            .unwrap_or_default()
            .to_owned()
    } else {
        message
    }
}

/// Counts a connection as active while it lives.
struct ActiveGuard(Arc<Shared>);

impl ActiveGuard {
    fn new(shared: Arc<Shared>) -> Self {
        shared.active.fetch_add(1, Ordering::Relaxed);
        Self(shared)
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------
// The forward's task
// ---------------------------------------------------------------------------------

async fn run(
    listener: TcpListener,
    client: Client,
    spec: ForwardSpec,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) {
    let api: Api<Pod> = Api::namespaced(client, &spec.namespace);
    let config = watcher::Config::default().labels(&spec.selector);
    let mut events = std::pin::pin!(watcher(api.clone(), config).default_backoff());
    let (pods_tx, pods_rx) = watch::channel(PodSet::default());
    let mut conns = JoinSet::new();
    let spare = Arc::new(Spare::default());
    let spare_task = tokio::spawn(keep_spare(
        api.clone(),
        spec.remote_port,
        shared.clone(),
        spare.clone(),
        pods_rx.clone(),
        cancel.child_token(),
    ));
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            Some(joined) = conns.join_next() => {
                if let Err(e) = joined {
                    if e.is_panic() {
                        warn!(error = %e, "a forwarded connection panicked");
                    }
                }
            }
            event = events.next() => match event {
                Some(Ok(event)) => {
                    pods_tx.send_if_modified(|pods| pods.apply(event));
                    shared.pods_seen(&pods_tx.borrow());
                }
                Some(Err(e)) => shared.watch_failed(format!(
                    "watching pods ({}) in {}: {}",
                    spec.selector,
                    spec.namespace,
                    bottom(&e)
                )),
                None => {
                    shared.watch_failed("the pod watch ended; the forward stops".to_owned());
                    break;
                }
            },
            accepted = listener.accept(), if conns.len() < MAX_CONNECTIONS => match accepted {
                Ok((socket, peer)) => {
                    shared.connections.fetch_add(1, Ordering::Relaxed);
                    let conn = Conn {
                        api: api.clone(),
                        spare: spare.clone(),
                        remote_port: spec.remote_port,
                        service: spec.service.clone(),
                        shared: shared.clone(),
                        pods: pods_rx.clone(),
                    };
                    let span = tracing::debug_span!("forward.conn", conn.peer = %peer);
                    conns.spawn(conn.serve(socket, cancel.child_token()).instrument(span));
                }
                Err(e) => {
                    // Out of file descriptors and the like: say so and do not spin.
                    let port = shared.local_port;
                    shared.attempt_failed(format!("accepting on localhost:{port}: {e}"));
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            },
        }
    }
    drop(listener);
    spare_task.abort();
    let _ = spare_task.await;
    spare.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    // The connections saw the cancellation; give them a moment to close cleanly.
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        conns.shutdown().await;
    }
    shared.stopped();
}

/// The innermost cause of an error, on one line.
fn bottom(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => bottom(other),
    }
}

/// The kubelet's port-forward error names netns paths and container ids; the cause is
/// at the end of its IPv4 part ("... dial tcp4 127.0.0.1:80: connect: connection refused").
fn summarize_pod_error(message: &str) -> String {
    let ipv4 = message
        .split_once("IPv4: ")
        .map(|(_, rest)| rest.split(" IPv6").next().unwrap_or(rest));
    let text = match ipv4.and_then(|part| part.rsplit(": ").next()) {
        Some(cause) if !cause.trim().is_empty() => cause.trim(),
        _ => message.lines().next().unwrap_or_default().trim(),
    };
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodStatus};
    use kube::api::ObjectMeta;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;

    fn pod(name: &str, created_secs: i64, phase: &str, ready: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                uid: Some(format!("uid-{name}")),
                creation_timestamp: Some(Time(
                    k8s_openapi::jiff::Timestamp::from_second(created_secs).unwrap(),
                )),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.to_owned()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".to_owned(),
                    status: if ready { "True" } else { "False" }.to_owned(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn deleting(mut p: Pod) -> Pod {
        p.metadata.deletion_timestamp = p.metadata.creation_timestamp.clone();
        p
    }

    fn restarted(mut p: Pod, count: i32) -> Pod {
        p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            restart_count: count,
            ..Default::default()
        }]);
        p
    }

    fn set_of(pods: Vec<Pod>) -> PodSet {
        let mut set = PodSet::default();
        set.apply(watcher::Event::Init);
        for p in pods {
            set.apply(watcher::Event::InitApply(p));
        }
        set.apply(watcher::Event::InitDone);
        set
    }

    fn picked(set: &PodSet, prefer: Option<&str>, avoid: Option<&str>) -> Option<String> {
        set.pick(prefer, avoid).map(|p| p.name.clone())
    }

    #[test]
    fn only_running_ready_live_pods_are_candidates() {
        let set = set_of(vec![
            pod("pending", 1, "Pending", false),
            pod("unready", 2, "Running", false),
            deleting(pod("terminating", 3, "Running", true)),
            pod("failed", 4, "Failed", false),
        ]);
        assert!(!set.has_candidates());
        assert_eq!(picked(&set, None, None), None);
        let set = set_of(vec![pod("a", 1, "Running", true)]);
        assert_eq!(picked(&set, None, None).as_deref(), Some("a"));
    }

    #[test]
    fn pick_prefers_the_last_pod_then_the_newest() {
        let set = set_of(vec![
            pod("old", 1, "Running", true),
            pod("new", 5, "Running", true),
            pod("mid", 3, "Running", true),
        ]);
        assert_eq!(picked(&set, None, None).as_deref(), Some("new"));
        assert_eq!(picked(&set, Some("old"), None).as_deref(), Some("old"));
        assert_eq!(picked(&set, Some("gone"), None).as_deref(), Some("new"));
        assert_eq!(
            picked(&set, Some("old"), Some("uid-old")).as_deref(),
            Some("new")
        );
        assert_eq!(picked(&set, None, Some("uid-new")).as_deref(), Some("mid"));
    }

    #[test]
    fn a_rollout_moves_new_connections_to_the_new_pod() {
        let mut set = set_of(vec![pod("v1", 1, "Running", true)]);
        assert!(set.apply(watcher::Event::Apply(pod("v2", 9, "Running", false))));
        assert_eq!(picked(&set, Some("v1"), None).as_deref(), Some("v1"));
        assert!(set.apply(watcher::Event::Apply(pod("v2", 9, "Running", true))));
        // Still sticky while v1 is ready...
        assert_eq!(picked(&set, Some("v1"), None).as_deref(), Some("v1"));
        // ...until it starts terminating.
        assert!(set.apply(watcher::Event::Apply(deleting(pod(
            "v1", 1, "Running", true
        )))));
        assert_eq!(picked(&set, Some("v1"), None).as_deref(), Some("v2"));
        assert!(set.apply(watcher::Event::Delete(pod("v1", 1, "Running", true))));
        assert!(!set.apply(watcher::Event::Delete(pod("v1", 1, "Running", true))));
        assert_eq!(set.pods.len(), 1);
    }

    #[test]
    fn open_connections_end_when_their_pod_stops_serving() {
        let mut set = set_of(vec![pod("a", 1, "Running", true)]);
        assert!(set.keeps("uid-a", 0));
        // A readiness blip keeps connections; so does the grace period of a deletion.
        set.apply(watcher::Event::Apply(pod("a", 1, "Running", false)));
        assert!(set.keeps("uid-a", 0));
        set.apply(watcher::Event::Apply(deleting(pod(
            "a", 1, "Running", true,
        ))));
        assert!(set.keeps("uid-a", 0));
        // Terminating and no longer ready, failed, restarted, or gone: the process behind
        // the connection is gone.
        set.apply(watcher::Event::Apply(deleting(pod(
            "a", 1, "Running", false,
        ))));
        assert!(!set.keeps("uid-a", 0));
        set.apply(watcher::Event::Apply(pod("a", 1, "Failed", false)));
        assert!(!set.keeps("uid-a", 0));
        set.apply(watcher::Event::Apply(restarted(
            pod("a", 1, "Running", true),
            1,
        )));
        assert!(!set.keeps("uid-a", 0));
        assert!(set.keeps("uid-a", 1));
        set.apply(watcher::Event::Delete(pod("a", 1, "Running", true)));
        assert!(!set.keeps("uid-a", 1));
    }

    #[test]
    fn a_relist_replaces_the_set_and_unchanged_events_are_quiet() {
        let mut set = set_of(vec![pod("a", 1, "Running", true)]);
        assert!(!set.apply(watcher::Event::Apply(pod("a", 1, "Running", true))));
        set.apply(watcher::Event::Init);
        set.apply(watcher::Event::InitApply(pod("b", 2, "Running", true)));
        // Until the relist completes, the old set stands.
        assert_eq!(picked(&set, None, None).as_deref(), Some("a"));
        assert!(set.apply(watcher::Event::InitDone));
        assert_eq!(set.pods.keys().collect::<Vec<_>>(), ["b"]);
        set.apply(watcher::Event::Init);
        set.apply(watcher::Event::InitApply(pod("b", 2, "Running", true)));
        assert!(!set.apply(watcher::Event::InitDone));
    }

    #[test]
    fn state_follows_pods_attempts_and_the_watch() {
        let spec = ForwardSpec {
            service: "web".into(),
            local_port: 8080,
            remote_port: 80,
            namespace: "ns".into(),
            selector: "app=web".into(),
        };
        let shared = Shared::new(&spec, 8080);
        assert_eq!(shared.status().state, ForwardState::Waiting);
        let mut set = set_of(vec![pod("a", 1, "Running", true)]);
        shared.pods_seen(&set);
        let s = shared.status();
        assert_eq!(
            (s.state, s.pod.as_deref()),
            (ForwardState::Active, Some("a"))
        );
        shared.connected("a");
        shared.attempt_failed("pod a: boom".into());
        assert_eq!(shared.status().state, ForwardState::Error);
        set.apply(watcher::Event::Apply(pod("b", 2, "Running", true)));
        set.apply(watcher::Event::Delete(pod("a", 1, "Running", true)));
        shared.pods_seen(&set);
        assert_eq!(shared.status().pod.as_deref(), Some("b"));
        shared.connected("b");
        let s = shared.status();
        assert_eq!((s.state, s.reconnects), (ForwardState::Active, 1));
        assert_eq!(s.last_error.as_deref(), Some("pod a: boom"));
        shared.watch_failed("watching pods: forbidden".into());
        assert_eq!(shared.status().state, ForwardState::Active);
        shared.pods_seen(&set_of(vec![]));
        assert_eq!(shared.status().state, ForwardState::Waiting);
        shared.stopped();
        assert_eq!(shared.status().state, ForwardState::Stopped);
    }

    #[test]
    fn pod_errors_are_one_short_line() {
        let kubelet = "error forwarding port 9999 to pod 7e26, uid : failed to execute portforward in network namespace \"/run/netns/cni-2e\": failed to connect to localhost:9999 inside namespace \"7e26\", IPv4: dial tcp4 127.0.0.1:9999: connect: connection refused IPv6 dial tcp6: address localhost: no suitable address found ";
        assert_eq!(summarize_pod_error(kubelet), "connection refused");
        assert_eq!(summarize_pod_error("something odd\nmore"), "something odd");
    }

    fn offline_client() -> Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        Client::try_from(config).unwrap()
    }

    #[tokio::test]
    async fn a_taken_port_is_named_with_its_holder() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let spec = ForwardSpec {
            service: "web".into(),
            local_port: port,
            remote_port: 80,
            namespace: "ns".into(),
            selector: "app=web".into(),
        };
        let err = Forwarder::start(offline_client(), spec).await.unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("localhost:{port} is already in use")),
            "{message}"
        );
        assert!(matches!(err, ForwardError::PortInUse { .. }));
        if cfg!(target_os = "linux") {
            assert!(
                message.contains(&format!("by pid {} (", std::process::id())),
                "{message}"
            );
        }
        assert!(!message.contains('\n'));
    }

    #[tokio::test]
    async fn stop_frees_the_port_and_reports_waiting_meanwhile() {
        let spec = ForwardSpec {
            service: "web".into(),
            local_port: 0,
            remote_port: 80,
            namespace: "ns".into(),
            selector: "app=web".into(),
        };
        let forwarder = Forwarder::start(offline_client(), spec).await.unwrap();
        let status = forwarder.status();
        assert_ne!(status.local_port, 0);
        assert!(matches!(
            status.state,
            ForwardState::Waiting | ForwardState::Error
        ));
        // A connection waits for a pod (none will come from an unreachable API server).
        let mut pending = TcpStream::connect(("127.0.0.1", status.local_port))
            .await
            .unwrap();
        forwarder.stop().await;
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), pending.read(&mut buf))
            .await
            .expect("a waiting connection closes on stop");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        std::net::TcpListener::bind(("127.0.0.1", status.local_port))
            .expect("the port is free after stop");
    }
}
