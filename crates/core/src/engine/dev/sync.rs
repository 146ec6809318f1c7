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
//! The per-pod task (`PodTask`: initial sync, batches, `onSync`, reconnect) is
//! `sync/pod.rs`, a child of this module: it shares the per-pod `Backlog` and the pods
//! context defined here. This file is ~700 lines, 125 of them tests.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Dev;
use crate::kube::devmode::DEV_ANNOTATION;
use crate::kube::ClusterConn;
use crate::logs::{LogHub, Stream};
use crate::status::ServiceStatus;
use crate::sync::{RootState, SessionStatus};
use crate::watch::{self, EnvWatcher, SyncHit, SyncSink, Target};

mod pod;

use pod::PodTask;

/// Changed paths kept per pod and rule before the pod gets a full comparison instead.
const MAX_PENDING: usize = 16 * 1024;
/// How long stopping a sync waits for its pod tasks to close their sessions.
const POD_STOP_LIMIT: Duration = Duration::from_secs(5);
/// How often the rules' local directories are looked at.
pub const SOURCE_CHECK: Duration = Duration::from_secs(1);
/// How long a restarted watcher may take to set up its watches.
const WATCH_SETUP_LIMIT: Duration = Duration::from_secs(30);

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

/// What differs between dev mode's sync and a workspace's (`devenv workspace sync`,
/// `engine::workspace::sync`), which runs this same machinery.
#[derive(Clone)]
pub struct SyncMode {
    /// Only pods running the dev version (annotated by dev mode); a workspace's pod
    /// is the user's own and always taken.
    pub dev_pods_only: bool,
    /// Called after files were written or deleted in a pod: a workspace's idle
    /// signal.
    pub on_traffic: Option<Arc<dyn Fn() + Send + Sync>>,
}

impl SyncMode {
    pub fn dev_mode() -> Self {
        Self {
            dev_pods_only: true,
            on_traffic: None,
        }
    }

    fn traffic(&self) {
        if let Some(f) = &self.on_traffic {
            f();
        }
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
        kenv: ClusterConn,
        service: &str,
        dev: &Dev,
        selector: String,
        logs: LogHub,
        project_dir: &Path,
        mode: SyncMode,
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
            mode,
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
    fn rebuild(&self, _: &str) -> bool {
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
    kenv: ClusterConn,
    service: Arc<str>,
    dev: Dev,
    logs: LogHub,
    state: Arc<SyncState>,
    mode: SyncMode,
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

/// The pod's sync generation when it can take files (and runs the dev version, when
/// `dev_pods_only`).
fn syncable(p: &Pod, dev_pods_only: bool) -> Option<(String, i32)> {
    if p.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let dev = p
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(DEV_ANNOTATION));
    if dev_pods_only && !dev {
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
        .filter_map(|(name, p)| syncable(p, ctx.mode.dev_pods_only).map(|g| (name, g)))
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

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

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
