//! Dev mode's file sync for one service: a watcher on its `dev.sync` directories and
//! a task per running dev pod holding one long-lived sync session per rule.
//!
//! New pods (restarts, scale-up, a rollout) get an initial sync that sends only what
//! differs; after that every debounced batch of changes goes to every pod, then the
//! service's `onSync` runs in that pod. A pod's changes wait in its own bounded set
//! (past the cap: "compare everything"), so a slow pod never holds back the others
//! nor the watcher. A broken stream is reopened with a fresh initial sync.
//!
//! A rule whose local directory is missing, not a directory, unreadable or replaced
//! stops (phase `source-missing`, nothing deleted in the pod) while the other rules go
//! on; when the directory is back, the rule resumes with an initial sync. The roots
//! are looked at once a second ([`SOURCE_CHECK`]): the watcher has no event for a
//! root coming back (its parent is not watched) nor for one moved away (inotify
//! follows the inode). A root that comes back, or is another directory now, gets a
//! new watcher.
//!
//! Why one file of ~1.2k lines (150 of them tests): the watcher side ([`DevSync`],
//! `Sources`) and the per-pod task (`PodTask`) share the per-pod `Backlog` and the
//! pods context, and the per-pod task is one state machine (initial sync, batches,
//! `onSync`, reconnect with a fresh initial sync) that reads best in one piece. The
//! seam for a later split is `PodTask` and its helpers (`changes`, `sync_excludes`)
//! into a `pod.rs` beside this file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::io::BufReader;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Command, Dev, OnSync};
use crate::kube::devmode::DEV_ANNOTATION;
use crate::kube::KubeEnv;
use crate::logs::{LogHub, Stream};
use crate::status::ServiceStatus;
use crate::sync::lines::{read_line, skip_line, Line};
use crate::sync::{Change, Difference, RootState, Session, SessionStatus, SyncError, SyncTarget};
use crate::watch::{self, EnvWatcher, SyncHit, SyncSink, Target};

/// Changed paths kept per pod and rule before the pod gets a full comparison instead.
const MAX_PENDING: usize = 16 * 1024;
/// Reconnect back-off after a broken session: first and last.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);
/// Quiet time after which every session is pinged, and how long the answer may take.
const KEEPALIVE: Duration = Duration::from_secs(30);
const KEEPALIVE_LIMIT: Duration = Duration::from_secs(10);
/// A session that lasted this long is reopened without waiting when it breaks.
const STABLE: Duration = Duration::from_secs(10);
/// How long stopping a sync waits for its pod tasks to close their sessions.
const POD_STOP_LIMIT: Duration = Duration::from_secs(5);
/// An `onSync` command running longer is abandoned (its output stops being read).
const ON_SYNC_LIMIT: Duration = Duration::from_secs(300);
/// Of an `onSync` command's output, the lines kept (per stream) and their length.
const ON_SYNC_LINES: usize = 200;
const ON_SYNC_LINE_MAX: usize = 4096;
/// How often the rules' local directories are looked at.
pub const SOURCE_CHECK: Duration = Duration::from_secs(1);
/// How long a restarted watcher may take to set up its watches.
const WATCH_SETUP_LIMIT: Duration = Duration::from_secs(30);
/// The phase of a rule whose local directory is not there to sync from.
const SOURCE_MISSING: &str = "source-missing";

/// What `devenv sync status` shows for one rule in one pod.
#[derive(Debug, Clone)]
pub struct PodSync {
    pub service: String,
    pub phase: String,
    pub session: SessionStatus,
}

/// Result of `devenv sync verify`: per pod and rule, what differs.
#[derive(Debug, Clone)]
pub struct Verified {
    pub pod: String,
    pub remote_dir: String,
    pub local_dir: PathBuf,
    pub differences: Result<Vec<String>, String>,
}

type VerifyReply = oneshot::Sender<Vec<Verified>>;

#[derive(Default)]
struct Pending {
    paths: BTreeSet<PathBuf>,
    overflow: bool,
    /// The rule's local directory changed state (gone, back, replaced): compare the
    /// trees again.
    resync: bool,
}

/// Changes waiting to be copied into the pod, per sync rule (at most `MAX_PENDING`
/// paths, then marked as overflowed), and the wake-up of the task that copies them.
/// (The file watcher's own `watch::worker::Inbox` is where notify leaves events.)
struct Backlog {
    /// Per rule.
    pending: Mutex<Vec<Pending>>,
    notify: Notify,
}

impl Backlog {
    fn new(rules: usize) -> Self {
        Self {
            pending: Mutex::new((0..rules).map(|_| Pending::default()).collect()),
            notify: Notify::new(),
        }
    }

    fn push(&self, rule: usize, hit: &SyncHit) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = p.get_mut(rule) else { return };
        if hit.overflow || slot.overflow || slot.paths.len() + hit.paths.len() > MAX_PENDING {
            slot.overflow = true;
            slot.paths.clear();
        } else {
            slot.paths.extend(hit.paths.iter().cloned());
        }
        drop(p);
        self.notify.notify_one();
    }

    /// Returns what could not be applied (the stream broke): it is applied after the
    /// reconnection's initial sync, which alone could miss an edit made in the same
    /// second as the previous one.
    fn put_back(&self, rule: usize, back: Pending) {
        if back.resync {
            self.resync(rule);
        }
        let hit = SyncHit {
            paths: back.paths.into_iter().collect(),
            overflow: back.overflow,
        };
        self.push(rule, &hit);
    }

    fn resync(&self, rule: usize) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = p.get_mut(rule) else { return };
        slot.resync = true;
        drop(p);
        self.notify.notify_one();
    }

    fn take(&self) -> Vec<Pending> {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.iter_mut().map(std::mem::take).collect()
    }
}

struct PodEntry {
    /// The pod's uid and its first container's restart count: a new value is a new
    /// filesystem, which needs an initial sync.
    generation: (String, i32),
    backlog: Arc<Backlog>,
    verify: mpsc::Sender<VerifyReply>,
    status: Arc<Mutex<Vec<PodSync>>>,
    cancel: CancellationToken,
}

/// The shared view of a service's sync sessions.
#[derive(Default)]
pub struct SyncState {
    pods: Mutex<BTreeMap<String, PodEntry>>,
    /// The pod tasks, joined (bounded) when the sync stops.
    tasks: TaskTracker,
}

impl std::fmt::Debug for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pods: Vec<String> = self.lock().keys().cloned().collect();
        f.debug_struct("SyncState").field("pods", &pods).finish()
    }
}

impl SyncState {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, PodEntry>> {
        self.pods.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every pod's sessions, by pod name.
    pub fn status(&self) -> Vec<PodSync> {
        self.lock()
            .values()
            .flat_map(|e| e.status.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// Compares each pod's tree with the local one.
    pub async fn verify(&self) -> Vec<Verified> {
        let asks: Vec<(String, mpsc::Sender<VerifyReply>)> = self
            .lock()
            .iter()
            .map(|(name, e)| (name.clone(), e.verify.clone()))
            .collect();
        let mut out = Vec::new();
        for (pod, ask) in asks {
            let (tx, rx) = oneshot::channel();
            let answer = match ask.send(tx).await {
                Ok(()) => rx.await.ok(),
                Err(_) => None,
            };
            match answer {
                Some(v) => out.extend(v),
                None => out.push(Verified {
                    pod,
                    remote_dir: String::new(),
                    local_dir: PathBuf::new(),
                    differences: Err("the pod's sync ended".into()),
                }),
            }
        }
        out
    }
}

/// One service's sync, running while it is in dev mode.
pub struct DevSync {
    cancel: CancellationToken,
    /// Replaced by the sources task when a rule's directory comes back.
    watcher: Arc<tokio::sync::Mutex<Option<EnvWatcher>>>,
    pods_task: tokio::task::JoinHandle<()>,
    sources_task: tokio::task::JoinHandle<()>,
    pub state: Arc<SyncState>,
}

/// What it takes to start the rules' watcher (again).
struct WatchSetup {
    project_dir: PathBuf,
    targets: Vec<Target>,
    ctx: watch::Context,
}

impl WatchSetup {
    fn start(&self) -> Result<EnvWatcher, String> {
        EnvWatcher::start(&self.project_dir, self.targets.clone(), self.ctx.clone())
            .map_err(|e| e.to_string())
    }
}

impl DevSync {
    /// Starts watching the rules' directories and syncing into the pods matching
    /// `selector` that run the dev version.
    pub fn start(
        kenv: KubeEnv,
        service: &str,
        dev: &Dev,
        selector: String,
        logs: LogHub,
        project_dir: &Path,
    ) -> Result<Self, String> {
        let state = Arc::new(SyncState::default());
        let cancel = CancellationToken::new();
        let targets: Vec<Target> = dev
            .sync
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let state = state.clone();
                let sink = SyncSink(Arc::new(move |hit: SyncHit| {
                    for e in state.lock().values() {
                        e.backlog.push(i, &hit);
                    }
                }));
                Target {
                    service: service.to_owned(),
                    paths: vec![rule.from.clone()],
                    ignore: rule.exclude.clone(),
                    action: watch::Action::Sync(sink),
                }
            })
            .collect();
        let ctx = watch::Context {
            logs: logs.clone(),
            guardian: None,
            services: Arc::new(NoServices),
            options: watch::Options {
                ignore_files: false,
                ..watch::Options::from_env()
            },
        };
        let setup = WatchSetup {
            project_dir: project_dir.to_owned(),
            targets,
            ctx,
        };
        let roots: Vec<PathBuf> = dev.sync.iter().map(|r| r.from.clone()).collect();
        let seen: Vec<RootState> = roots.iter().map(|r| RootState::probe(r)).collect();
        let watcher = Arc::new(tokio::sync::Mutex::new(Some(setup.start()?)));
        let ctx = PodsCtx {
            kenv,
            service: Arc::from(service),
            dev: dev.clone(),
            logs,
            state: state.clone(),
        };
        let resync_state = state.clone();
        let say_ctx = ctx.clone();
        let sources = Sources {
            roots,
            seen,
            setup,
            watcher: watcher.clone(),
            resync: Box::new(move |rule| {
                for e in resync_state.lock().values() {
                    e.backlog.resync(rule);
                }
            }),
            say: Box::new(move |line| say_ctx.system(line)),
        };
        let sources_task = tokio::spawn(follow_sources(sources, cancel.clone()));
        let pods_task = tokio::spawn(follow_pods(ctx, selector, cancel.clone()));
        Ok(Self {
            cancel,
            watcher,
            pods_task,
            sources_task,
            state,
        })
    }

    /// Waits (bounded) until the watcher has its directories.
    pub async fn ready(&self, limit: Duration) {
        if let Some(w) = &*self.watcher.lock().await {
            w.ready(limit).await;
        }
    }

    pub async fn stop(mut self) {
        self.cancel.cancel();
        let _ = (&mut self.sources_task).await;
        if let Some(w) = self.watcher.lock().await.take() {
            w.stop().await;
        }
        let _ = (&mut self.pods_task).await;
        let entries: Vec<PodEntry> = std::mem::take(&mut *self.state.lock())
            .into_values()
            .collect();
        for e in entries {
            e.cancel.cancel();
        }
        // Pods already replaced were cancelled by `reconcile`; all end here.
        self.state.tasks.close();
        if tokio::time::timeout(POD_STOP_LIMIT, self.state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "sync tasks did not end within {POD_STOP_LIMIT:?}; they end with the process"
            );
        }
    }
}

/// The rules' local directories, as the sources task follows them.
struct Sources {
    roots: Vec<PathBuf>,
    /// Their state when last looked at.
    seen: Vec<RootState>,
    setup: WatchSetup,
    watcher: Arc<tokio::sync::Mutex<Option<EnvWatcher>>>,
    /// Makes every pod compare this rule's trees again.
    resync: Box<dyn Fn(usize) + Send>,
    /// A line for the service's log.
    say: Box<dyn Fn(&str) + Send>,
}

/// Looks at the rules' local directories every [`SOURCE_CHECK`]: when one changes
/// state (gone, back, replaced, unreadable) every pod compares that rule's trees again
/// (an initial sync, which deletes nothing while the directory is not there); when one
/// is a directory again, or another one, the watcher starts over to watch it.
async fn follow_sources(sources: Sources, cancel: CancellationToken) {
    let Sources {
        roots,
        mut seen,
        setup,
        watcher,
        resync,
        say,
    } = sources;
    let mut tick = tokio::time::interval(SOURCE_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let roots2 = roots.clone();
        let Ok(now) = tokio::task::spawn_blocking(move || {
            roots2
                .iter()
                .map(|r| RootState::probe(r))
                .collect::<Vec<_>>()
        })
        .await
        else {
            continue;
        };
        let mut rewatch = false;
        for (i, (before, after)) in seen.iter().zip(&now).enumerate() {
            if before == after {
                continue;
            }
            rewatch |= matches!(after, RootState::Dir(..));
            let what = match after {
                RootState::Dir(..) if matches!(before, RootState::Dir(..)) => "was replaced",
                RootState::Dir(..) => "is back",
                RootState::Missing => "is gone",
                RootState::NotADirectory => "is not a directory any more",
                RootState::Unreadable => "cannot be read",
            };
            say(&format!(
                "sync: {} {what}; comparing again",
                roots[i].display()
            ));
            resync(i);
        }
        seen = now;
        if rewatch {
            let mut w = watcher.lock().await;
            if let Some(old) = w.take() {
                old.stop().await;
            }
            match setup.start() {
                Ok(new) => {
                    // Watching before comparing: a change made meanwhile is in one or
                    // the other.
                    tokio::select! {
                        _ = cancel.cancelled() => {}
                        _ = new.ready(WATCH_SETUP_LIMIT) => {}
                    }
                    *w = Some(new);
                }
                Err(e) => say(&format!("sync: restarting the file watcher: {e}")),
            }
            drop(w);
            // Changes made while no watcher was looking: compared again.
            for i in 0..roots.len() {
                resync(i);
            }
        }
    }
}

struct NoServices;

impl watch::Services for NoServices {
    fn restart(&self, _: &str) -> bool {
        false
    }
    fn running(&self, _: &str) -> bool {
        false
    }
    fn status(&self, _: &str) -> Option<ServiceStatus> {
        None
    }
}

#[derive(Clone)]
struct PodsCtx {
    kenv: KubeEnv,
    service: Arc<str>,
    dev: Dev,
    logs: LogHub,
    state: Arc<SyncState>,
}

impl PodsCtx {
    fn system(&self, msg: &str) {
        self.logs.push(&self.service, Stream::System, msg);
    }
}

/// Follows the service's pods: a sync task per running dev pod.
async fn follow_pods(ctx: PodsCtx, selector: String, cancel: CancellationToken) {
    let api: Api<Pod> = Api::namespaced(ctx.kenv.client.clone(), &ctx.kenv.namespace);
    let config = watcher::Config::default().labels(&selector);
    let mut stream = std::pin::pin!(watcher(api, config).default_backoff());
    let mut known: BTreeMap<String, Pod> = BTreeMap::new();
    let mut init: BTreeMap<String, Pod> = BTreeMap::new();
    loop {
        let ev = tokio::select! {
            _ = cancel.cancelled() => break,
            ev = stream.try_next() => ev,
        };
        match ev {
            Ok(Some(watcher::Event::Apply(p))) => {
                known.insert(p.metadata.name.clone().unwrap_or_default(), p);
            }
            Ok(Some(watcher::Event::Delete(p))) => {
                known.remove(p.metadata.name.as_deref().unwrap_or_default());
            }
            Ok(Some(watcher::Event::Init)) => init.clear(),
            Ok(Some(watcher::Event::InitApply(p))) => {
                init.insert(p.metadata.name.clone().unwrap_or_default(), p);
            }
            Ok(Some(watcher::Event::InitDone)) => known = std::mem::take(&mut init),
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "sync pod watch");
                continue;
            }
        }
        reconcile(&ctx, &known);
    }
    for e in std::mem::take(&mut *ctx.state.lock()).into_values() {
        e.cancel.cancel();
    }
}

/// The pod's sync generation when it runs the dev version and can take files.
fn syncable(p: &Pod) -> Option<(String, i32)> {
    if p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let dev = p
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(DEV_ANNOTATION));
    if !dev {
        return None;
    }
    let first = p.spec.as_ref()?.containers.first()?.name.clone();
    let st = p
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == first)?;
    st.state.as_ref()?.running.as_ref()?;
    Some((p.metadata.uid.clone().unwrap_or_default(), st.restart_count))
}

fn reconcile(ctx: &PodsCtx, pods: &BTreeMap<String, Pod>) {
    let mut entries = ctx.state.lock();
    let wanted: BTreeMap<&String, (String, i32)> = pods
        .iter()
        .filter_map(|(name, p)| syncable(p).map(|g| (name, g)))
        .collect();
    entries.retain(|name, e| {
        let keep = wanted.get(name) == Some(&e.generation);
        if !keep {
            e.cancel.cancel();
        }
        keep
    });
    for (name, generation) in wanted {
        if entries.contains_key(name) {
            continue;
        }
        let container = pods[name]
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .map(|c| c.name.clone())
            .unwrap_or_default();
        let backlog = Arc::new(Backlog::new(ctx.dev.sync.len()));
        let (verify_tx, verify_rx) = mpsc::channel(4);
        let status = Arc::new(Mutex::new(Vec::new()));
        let cancel = CancellationToken::new();
        let pod = PodTask {
            ctx: ctx.clone(),
            pod: name.clone(),
            container,
            backlog: backlog.clone(),
            status: status.clone(),
        };
        ctx.state.tasks.spawn(pod.run(verify_rx, cancel.clone()));
        entries.insert(
            name.clone(),
            PodEntry {
                generation,
                backlog,
                verify: verify_tx,
                status,
                cancel,
            },
        );
    }
}

/// The sync of one pod.
struct PodTask {
    ctx: PodsCtx,
    pod: String,
    container: String,
    backlog: Arc<Backlog>,
    status: Arc<Mutex<Vec<PodSync>>>,
}

/// A pod's open sessions, one per rule, and the rules stopped because their local
/// directory is not there.
struct Live {
    sessions: Vec<Session>,
    /// Per rule: why it is stopped, if it is.
    paused: Vec<Option<String>>,
    /// Per rule: the last notice written to the log.
    noticed: Vec<Option<String>>,
}

impl PodTask {
    fn publish(&self, live: Option<&Live>, phase: &str, error: Option<&str>) {
        let mut out: Vec<PodSync> = live
            .map(|l| {
                l.sessions
                    .iter()
                    .zip(&l.paused)
                    .map(|(s, paused)| {
                        let mut session = s.status();
                        let phase = match paused {
                            Some(why) => {
                                session.last_error = Some(why.clone());
                                SOURCE_MISSING
                            }
                            None => {
                                if let Some(e) = error {
                                    session.last_error = Some(e.to_owned());
                                }
                                phase
                            }
                        };
                        PodSync {
                            service: self.ctx.service.to_string(),
                            phase: phase.to_owned(),
                            session,
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        if out.is_empty() {
            out = self
                .ctx
                .dev
                .sync
                .iter()
                .map(|r| PodSync {
                    service: self.ctx.service.to_string(),
                    phase: phase.to_owned(),
                    session: SessionStatus {
                        pod: self.pod.clone(),
                        container: Some(self.container.clone()),
                        remote_dir: r.to.clone(),
                        local_dir: r.from.clone(),
                        last_error: error.map(str::to_owned),
                        ..SessionStatus::default()
                    },
                })
                .collect();
        }
        *self.status.lock().unwrap_or_else(|p| p.into_inner()) = out;
    }

    async fn run(self, mut verify: mpsc::Receiver<VerifyReply>, cancel: CancellationToken) {
        let mut retry = RETRY_FIRST;
        loop {
            self.publish(None, "connecting", None);
            let opened = tokio::select! {
                _ = cancel.cancelled() => return,
                r = self.open_all() => r,
            };
            let mut live = match opened {
                Ok(l) => l,
                Err(e) => {
                    let msg = e.to_string();
                    self.ctx
                        .system(&format!("sync into pod {}: {msg}", self.pod));
                    self.publish(None, "retrying", Some(&msg));
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                    continue;
                }
            };
            self.publish(Some(&live), "watching", None);
            let served = Instant::now();
            let end = self.serve(&mut live, &mut verify, &cancel).await;
            for s in live.sessions {
                let _ = s.close().await;
            }
            match end {
                None => return,
                Some(msg) => {
                    self.ctx
                        .system(&format!("sync into pod {}: {msg}; reconnecting", self.pod));
                    self.publish(None, "retrying", Some(&msg));
                    // A stream that worked for a while is reopened at once; one that
                    // keeps breaking soon after opening backs off.
                    if served.elapsed() >= STABLE {
                        retry = RETRY_FIRST;
                        continue;
                    }
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(retry) => {}
                    }
                    retry = (retry * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Opens a session per rule and brings each tree in line; a rule whose local
    /// directory is not there starts stopped (nothing deleted in the pod).
    async fn open_all(&self) -> Result<Live, SyncError> {
        let started = Instant::now();
        let mut live = Live {
            sessions: Vec::new(),
            paused: Vec::new(),
            noticed: Vec::new(),
        };
        let (mut files, mut bytes, mut deleted, mut same) = (0, 0, 0, 0);
        for rule in &self.ctx.dev.sync {
            let target = SyncTarget {
                client: self.ctx.kenv.client.clone(),
                namespace: self.ctx.kenv.namespace.clone(),
                pod: self.pod.clone(),
                container: Some(self.container.clone()),
                remote_dir: rule.to.clone(),
            };
            let mut s =
                Session::open(target, rule.from.clone(), sync_excludes(&rule.exclude)).await?;
            self.publish(None, "syncing", None);
            let paused = match s.initial_sync().await {
                Ok(st) => {
                    files += st.written;
                    bytes += st.bytes;
                    deleted += st.deleted;
                    same += st.unchanged;
                    None
                }
                Err(e) if e.is_source() => {
                    self.ctx.system(&format!(
                        "sync: pod {}: {e}; {} is left as it is",
                        self.pod, rule.to
                    ));
                    Some(e.to_string())
                }
                Err(e) => return Err(e),
            };
            live.sessions.push(s);
            live.paused.push(paused);
            live.noticed.push(None);
        }
        self.ctx.system(&format!(
            "sync: pod {} in sync in {} ms ({files} sent, {} bytes, {deleted} deleted, {same} unchanged)",
            self.pod,
            started.elapsed().as_millis(),
            bytes
        ));
        self.log_notices(&mut live);
        Ok(live)
    }

    /// Writes each session's new notice (target emptied, names left alone) to the log.
    fn log_notices(&self, live: &mut Live) {
        for (s, noticed) in live.sessions.iter().zip(&mut live.noticed) {
            let notice = s.status().notice;
            if notice.is_some() && notice != *noticed {
                if let Some(n) = &notice {
                    self.ctx.system(&format!("sync: pod {}: {n}", self.pod));
                }
                *noticed = notice;
            }
        }
    }

    /// One rule's pending work. `Ok(None)` when there was nothing to do.
    async fn sync_rule(
        &self,
        live: &mut Live,
        i: usize,
        p: &Pending,
    ) -> Result<Option<crate::sync::SyncStats>, SyncError> {
        let (Some(rule), Some(session)) = (self.ctx.dev.sync.get(i), live.sessions.get_mut(i))
        else {
            return Ok(None);
        };
        let paused = live.paused[i].is_some();
        let result = if p.resync || (paused && (p.overflow || !p.paths.is_empty())) {
            // The directory changed state (or the rule is stopped and something
            // moved there): compare the trees; deletes nothing while it is missing.
            session.initial_sync().await
        } else if paused {
            return Ok(None);
        } else if p.overflow {
            // Changes were dropped: compare every file by content.
            session.full_sync().await
        } else if p.paths.is_empty() {
            return Ok(None);
        } else {
            let changes = changes(&rule.from, p.paths.clone());
            if changes.is_empty() {
                return Ok(None);
            }
            session.apply(&changes).await
        };
        match &result {
            Ok(_) if paused => {
                live.paused[i] = None;
                self.ctx.system(&format!(
                    "sync: pod {}: {} is back; syncing into {} again",
                    self.pod,
                    rule.from.display(),
                    rule.to
                ));
            }
            Err(e) if e.is_source() => {
                if !paused {
                    self.ctx.system(&format!(
                        "sync: pod {}: {e}; {} is left as it is",
                        self.pod, rule.to
                    ));
                }
                live.paused[i] = Some(e.to_string());
                return Ok(None);
            }
            _ => {}
        }
        result.map(Some)
    }

    /// Applies changes until cancelled (`None`) or a session breaks (the reason).
    async fn serve(
        &self,
        live: &mut Live,
        verify: &mut mpsc::Receiver<VerifyReply>,
        cancel: &CancellationToken,
    ) -> Option<String> {
        let closed: Vec<CancellationToken> = live.sessions.iter().map(Session::closed).collect();
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => return None,
                _ = any_cancelled(&closed) => {
                    let msg = "the receiver's stream ended".to_owned();
                    self.publish(Some(live), "broken", Some(&msg));
                    return Some(msg);
                }
                // The stream's end is the event for a receiver that died; a ping after
                // a quiet spell also catches one that stopped answering without it.
                _ = tokio::time::sleep(KEEPALIVE) => {
                    for s in live.sessions.iter_mut() {
                        let failed = match tokio::time::timeout(KEEPALIVE_LIMIT, s.ping()).await {
                            Ok(Ok(_)) => continue,
                            Ok(Err(e)) => e.to_string(),
                            Err(_) => format!("no answer to a keepalive within {KEEPALIVE_LIMIT:?}"),
                        };
                        self.publish(Some(live), "broken", Some(&failed));
                        return Some(failed);
                    }
                }
                _ = self.backlog.notify.notified() => {
                    let pending = self.backlog.take();
                    let started = Instant::now();
                    let (mut written, mut deleted, mut bytes) = (0, 0, 0);
                    let mut errors = Vec::new();
                    let was_paused = live.paused.clone();
                    let mut pending = pending.into_iter().enumerate();
                    while let Some((i, p)) = pending.next() {
                        match self.sync_rule(live, i, &p).await {
                            Ok(Some(st)) => {
                                written += st.written;
                                deleted += st.deleted;
                                bytes += st.bytes;
                            }
                            Ok(None) => {}
                            Err(e) if e.is_fatal() => {
                                self.backlog.put_back(i, p);
                                for (j, rest) in pending {
                                    self.backlog.put_back(j, rest);
                                }
                                self.publish(Some(live), "broken", Some(&e.to_string()));
                                return Some(e.to_string());
                            }
                            Err(e) => errors.push(e.to_string()),
                        }
                    }
                    self.log_notices(live);
                    if was_paused != live.paused {
                        self.publish(Some(live), "watching", None);
                    }
                    if written + deleted == 0 && errors.is_empty() {
                        continue;
                    }
                    let ms = started.elapsed().as_secs_f64() * 1000.0;
                    let mut line = format!(
                        "sync: pod {}: {written} written ({bytes} bytes), {deleted} deleted in {ms:.0} ms",
                        self.pod
                    );
                    for e in &errors {
                        line.push_str("; ");
                        line.push_str(e);
                    }
                    self.ctx.system(&line);
                    self.publish(Some(live), "watching", errors.first().map(String::as_str));
                    if written + deleted > 0 {
                        self.on_sync().await;
                    }
                }
                ask = verify.recv() => {
                    let reply = ask?;
                    let mut out = Vec::new();
                    let mut broken = None;
                    for s in live.sessions.iter_mut() {
                        let st = s.status();
                        let r = s.verify().await;
                        if let Err(e) = &r {
                            if e.is_fatal() {
                                broken = Some(e.to_string());
                            }
                        }
                        out.push(Verified {
                            pod: self.pod.clone(),
                            remote_dir: st.remote_dir,
                            local_dir: st.local_dir,
                            differences: r
                                .map(|d| d.iter().map(Difference::to_string).collect())
                                .map_err(|e| e.to_string()),
                        });
                    }
                    let _ = reply.send(out);
                    if let Some(b) = broken {
                        return Some(b);
                    }
                }
            }
        }
    }

    /// Runs the service's `onSync` in the pod after a batch landed.
    async fn on_sync(&self) {
        let argv: Vec<String> = match &self.ctx.dev.on_sync {
            OnSync::None => return,
            // The dev command runs under devmode::SUPERVISOR as PID 1: HUP restarts it.
            OnSync::Restart => vec!["kill".into(), "-HUP".into(), "1".into()],
            OnSync::Exec(Command::Shell(s)) => vec!["sh".into(), "-c".into(), s.clone()],
            OnSync::Exec(Command::Exec(v)) => v.clone(),
        };
        let started = Instant::now();
        let r = tokio::time::timeout(
            ON_SYNC_LIMIT,
            exec_in(&self.ctx.kenv, &self.pod, &self.container, argv),
        )
        .await;
        let what = match &self.ctx.dev.on_sync {
            OnSync::Restart => "restart",
            _ => "onSync",
        };
        match r {
            Ok(Ok((output, ok))) => {
                for line in output.lines().filter(|l| !l.is_empty()) {
                    self.ctx.logs.push(&self.ctx.service, Stream::Stdout, line);
                }
                let ms = started.elapsed().as_millis();
                if ok {
                    self.ctx
                        .system(&format!("sync: pod {}: {what} done in {ms} ms", self.pod));
                } else {
                    self.ctx.system(&format!(
                        "sync: pod {}: {what} failed after {ms} ms",
                        self.pod
                    ));
                }
            }
            Ok(Err(e)) => self
                .ctx
                .system(&format!("sync: pod {}: {what}: {e}", self.pod)),
            Err(_) => self.ctx.system(&format!(
                "sync: pod {}: {what} still running after {}s; no longer waiting",
                self.pod,
                ON_SYNC_LIMIT.as_secs()
            )),
        }
    }
}

/// A rule's excludes, after the version-control directories the watcher never watches
/// either (so they are not half-synced: sent once, then never updated).
fn sync_excludes(rule: &[String]) -> Vec<String> {
    crate::watch::VCS_DIRS
        .iter()
        .map(|d| format!("{d}/"))
        .chain(rule.iter().cloned())
        .collect()
}

/// Resolves when any of `tokens` is cancelled (never, when there are none).
async fn any_cancelled(tokens: &[CancellationToken]) {
    if tokens.is_empty() {
        return std::future::pending().await;
    }
    futures::future::select_all(tokens.iter().map(|t| Box::pin(t.cancelled()))).await;
}

/// The changes of one rule, relative to its directory, from what is on disk now.
fn changes(root: &Path, paths: BTreeSet<PathBuf>) -> Vec<Change> {
    paths
        .into_iter()
        .filter_map(|abs| {
            let rel = abs.strip_prefix(root).ok()?.to_path_buf();
            if rel.as_os_str().is_empty() {
                return None;
            }
            Some(if std::fs::symlink_metadata(&abs).is_ok() {
                Change::Write(rel)
            } else {
                Change::Remove(rel)
            })
        })
        .collect()
}

/// Runs `argv` in the pod's container; its combined output and whether it exited 0.
async fn exec_in(
    kenv: &KubeEnv,
    pod: &str,
    container: &str,
    argv: Vec<String>,
) -> Result<(String, bool), String> {
    let api: Api<Pod> = Api::namespaced(kenv.client.clone(), &kenv.namespace);
    let params = AttachParams::default()
        .container(container)
        .stdin(false)
        .stdout(true)
        .stderr(true);
    let mut proc = api
        .exec(pod, argv, &params)
        .await
        .map_err(|e| crate::kube::error::explain(&e, &kenv.context).to_string())?;
    // At most ON_SYNC_LINES lines of ON_SYNC_LINE_MAX bytes kept per stream; the rest
    // is read (so the command is not blocked) and counted.
    let read = |r: Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>| async move {
        let mut kept = String::new();
        let Some(r) = r else { return kept };
        let mut reader = BufReader::new(r);
        let (mut lines, mut dropped) = (0usize, 0u64);
        loop {
            let line = match read_line(&mut reader, ON_SYNC_LINE_MAX).await {
                Ok(Some(Line::Full(l))) => l,
                Ok(Some(Line::Long(mut l))) => {
                    if skip_line(&mut reader).await.is_err() {
                        break;
                    }
                    l.extend_from_slice(" [cut]".as_bytes());
                    l
                }
                Ok(None) | Err(_) => break,
            };
            if lines == ON_SYNC_LINES {
                dropped += 1;
                continue;
            }
            lines += 1;
            kept.push_str(&String::from_utf8_lossy(&line));
            kept.push('\n');
        }
        if dropped > 0 {
            kept.push_str(&format!("[{dropped} more line(s) not kept]\n"));
        }
        kept
    };
    let stdout = proc
        .stdout()
        .map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
    let stderr = proc
        .stderr()
        .map(|r| Box::new(r) as Box<dyn tokio::io::AsyncRead + Send + Unpin>);
    let status = proc.take_status();
    let (mut out, e) = tokio::join!(read(stdout), read(stderr));
    out.push_str(&e);
    let ok = match status {
        Some(s) => s
            .await
            .is_none_or(|s| s.status.as_deref() == Some("Success")),
        None => true,
    };
    let _ = proc.join().await;
    Ok((out, ok))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_relative_and_read_from_disk() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "x").unwrap();
        let paths: BTreeSet<PathBuf> = [
            dir.path().join("a"),
            dir.path().join("gone"),
            dir.path().to_path_buf(),
            PathBuf::from("/elsewhere/x"),
        ]
        .into_iter()
        .collect();
        let c = changes(dir.path(), paths);
        assert_eq!(
            c,
            vec![Change::Write("a".into()), Change::Remove("gone".into())]
        );
    }

    #[test]
    fn version_control_directories_are_not_synced() {
        use crate::sync::{Excludes, RelPath};
        let ex = Excludes::new(&sync_excludes(&["*.tmp".into()])).unwrap();
        let p = |s: &str| RelPath::new(s).unwrap();
        assert!(ex.excludes_within(&p(".git"), true));
        assert!(ex.excludes_within(&p(".git/objects/ab/cdef"), false));
        assert!(ex.excludes_within(&p("vendor/lib/.hg"), true));
        assert!(ex.excludes_within(&p("a.tmp"), false));
        assert!(!ex.excludes_within(&p("src/main.rs"), false));
        assert!(!ex.excludes_within(&p(".gitignore"), false));
    }

    #[test]
    fn a_full_inbox_turns_into_a_full_comparison() {
        let backlog = Backlog::new(1);
        let many: Vec<PathBuf> = (0..MAX_PENDING + 1)
            .map(|i| PathBuf::from(format!("/p/{i}")))
            .collect();
        backlog.push(
            0,
            &SyncHit {
                paths: many,
                overflow: false,
            },
        );
        let p = backlog.take();
        assert!(p[0].overflow && p[0].paths.is_empty());
        let p = backlog.take();
        assert!(!p[0].overflow, "taken once");
    }

    /// A rule's directory removed, then created again: each change of state asks for
    /// a resync, and the new directory is watched (a write into it reaches the rule).
    #[tokio::test]
    async fn a_source_that_comes_back_is_resynced_and_watched_again() {
        use std::sync::mpsc as std_mpsc;
        let tmp = tempfile::tempdir().unwrap();
        let site = tmp.path().join("site");
        std::fs::create_dir(&site).unwrap();
        let (hits_tx, hits) = std_mpsc::channel::<SyncHit>();
        let hits_tx = Mutex::new(hits_tx);
        let target = Target {
            service: "web".into(),
            paths: vec![site.clone()],
            ignore: Vec::new(),
            action: watch::Action::Sync(SyncSink(Arc::new(move |hit| {
                let _ = hits_tx.lock().unwrap().send(hit);
            }))),
        };
        let setup = WatchSetup {
            project_dir: tmp.path().to_owned(),
            targets: vec![target],
            ctx: watch::Context {
                logs: LogHub::new(),
                guardian: None,
                services: Arc::new(NoServices),
                options: watch::Options {
                    ignore_files: false,
                    ..watch::Options::default()
                },
            },
        };
        let first = setup.start().unwrap();
        first.ready(Duration::from_secs(30)).await;
        let watcher = Arc::new(tokio::sync::Mutex::new(Some(first)));
        let (resync_tx, mut resyncs) = mpsc::unbounded_channel::<usize>();
        let sources = Sources {
            roots: vec![site.clone()],
            seen: vec![RootState::probe(&site)],
            setup,
            watcher: watcher.clone(),
            resync: Box::new(move |rule| {
                let _ = resync_tx.send(rule);
            }),
            say: Box::new(|_| {}),
        };
        let cancel = CancellationToken::new();
        let task = tokio::spawn(follow_sources(sources, cancel.clone()));

        std::fs::remove_dir(&site).unwrap();
        assert_eq!(next_resync(&mut resyncs).await, Some(0), "gone");
        std::fs::create_dir(&site).unwrap();
        assert_eq!(next_resync(&mut resyncs).await, Some(0), "back");
        // After the watcher restarted, every rule is resynced once more.
        assert_eq!(next_resync(&mut resyncs).await, Some(0), "rewatched");
        while hits.try_recv().is_ok() {}
        std::fs::write(site.join("index.html"), "new").unwrap();
        let want = site.join("index.html");
        let seen = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            while let Some(left) = deadline.checked_duration_since(Instant::now()) {
                match hits.recv_timeout(left) {
                    Ok(hit) if hit.paths.contains(&want) => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
            false
        })
        .await
        .unwrap();
        assert!(seen, "a write into the re-created directory was not seen");
        cancel.cancel();
        task.await.unwrap();
        let last = watcher.lock().await.take();
        if let Some(w) = last {
            w.stop().await;
        }
    }

    async fn next_resync(r: &mut mpsc::UnboundedReceiver<usize>) -> Option<usize> {
        tokio::time::timeout(Duration::from_secs(10), r.recv())
            .await
            .expect("a resync within 10 s")
    }

    #[test]
    fn a_resync_survives_being_put_back() {
        let backlog = Backlog::new(2);
        backlog.resync(1);
        let mut p = backlog.take();
        assert!(!p[0].resync && p[1].resync);
        backlog.put_back(1, std::mem::take(&mut p[1]));
        let p = backlog.take();
        assert!(
            p[1].resync,
            "a stream that broke mid-resync resyncs after reconnecting"
        );
        assert!(!backlog.take()[1].resync);
    }
}
