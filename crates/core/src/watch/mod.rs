//! File watching for services' `watch` rules: one watcher per environment.
//!
//! - [`filter`]: what is ignored (`.gitignore`, `.ignore`, excludes, rule globs).
//! - [`tree`]: which directories to watch, found without entering ignored trees.
//! - [`worker`]: the thread that owns the notify watchers (inotify, and polling past
//!   the inotify budget), follows new and removed directories, and batches events.
//! - [`poll`]: polling the directories past the budget.
//! - [`debounce`]: when a burst of events is over.
//! - [`actions`]: what a batch does: restart a service or run its command.
//!
//! Watches are per directory and non-recursive, so an ignored subtree costs nothing:
//! no watch, no events. Between bursts nothing runs: the thread waits on a channel.

mod actions;
mod debounce;
mod filter;
mod poll;
mod tree;
mod worker;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

pub use debounce::Debounce;
pub(crate) use filter::VCS_DIRS;
pub use worker::SetupReport;

use crate::config::{Command, Service, WatchAction};
use crate::logs::LogHub;
use crate::process::Guardian;
use crate::status::ServiceStatus;

/// Variable that caps the inotify watches of one environment's watcher (default:
/// half the user's `fs.inotify.max_user_watches`, less what the daemon already holds).
pub const INOTIFY_BUDGET_VAR: &str = "DEVENV_WATCH_INOTIFY_BUDGET";

/// Batches waiting for the dispatcher; past this the thread waits (its pending set
/// keeps coalescing meanwhile).
const BATCH_QUEUE: usize = 4;

/// What the watcher acts on: the engine's view of one environment's services.
pub trait Services: Send + Sync + 'static {
    /// Asks the running supervisor of `service` to restart it (graceful stop, start,
    /// readiness again); false when it does not run.
    fn restart(&self, service: &str) -> bool;
    /// Asks the running container of `service` (built with `build:`) to rebuild its
    /// image and to replace itself when the image changed; false when it does not run.
    fn rebuild(&self, service: &str) -> bool;
    /// Whether `service` has a running supervisor.
    fn running(&self, service: &str) -> bool;
    fn status(&self, service: &str) -> Option<ServiceStatus>;
}

/// One service's watch rule, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub service: String,
    /// Absolute directories or files.
    pub paths: Vec<PathBuf>,
    /// `.gitignore`-style globs relative to each path.
    pub ignore: Vec<String>,
    pub action: Action,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Restart,
    /// A container built with `build:`: rebuild its image, replace it if it changed.
    Rebuild,
    /// Runs in the service's working directory with its environment.
    Exec {
        command: Command,
        workdir: PathBuf,
        env: BTreeMap<String, String>,
    },
    /// Hands the changed paths to a sync (dev mode's `dev.sync` rules).
    Sync(SyncSink),
}

/// Where a sync rule's changes go: called on the dispatcher task, so it must not block.
#[derive(Clone)]
pub struct SyncSink(pub Arc<dyn Fn(SyncHit) + Send + Sync>);

/// One debounced batch of a sync rule.
#[derive(Debug, Clone)]
pub struct SyncHit {
    /// Absolute paths, sorted.
    pub paths: Vec<PathBuf>,
    /// Too many changes to list (or events lost): compare everything.
    pub overflow: bool,
}

impl std::fmt::Debug for SyncSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SyncSink")
    }
}

impl PartialEq for SyncSink {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Target {
    /// The watch rule of `svc`, if it has one. `vars` is the client's environment,
    /// which (with the service's `env`) an `exec` command runs with, as the service does.
    pub fn of(svc: &Service, env_name: &str, vars: &BTreeMap<String, String>) -> Option<Self> {
        let w = svc.watch.as_ref()?;
        let action = match &w.action {
            WatchAction::Restart if svc.runtime == crate::config::RuntimeKind::Container => {
                Action::Rebuild
            }
            WatchAction::Restart => Action::Restart,
            WatchAction::Exec(command) => {
                let mut env: BTreeMap<String, String> = vars
                    .iter()
                    .filter(|(k, _)| k.as_str() != crate::process::MARKER_VAR)
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                env.extend(svc.env.iter().map(|(k, v)| (k.clone(), v.clone())));
                env.insert("DEVENV_SERVICE".into(), svc.name.clone());
                env.insert("DEVENV_ENVIRONMENT".into(), env_name.to_owned());
                Action::Exec {
                    command: command.clone(),
                    workdir: svc.workdir.clone(),
                    env,
                }
            }
        };
        Some(Self {
            service: svc.name.clone(),
            paths: w.paths.clone(),
            ignore: w.ignore.clone(),
            action,
        })
    }

    fn same_watch(&self, other: &Self) -> bool {
        self.service == other.service && self.paths == other.paths && self.ignore == other.ignore
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Most inotify watches this watcher holds; `None`: half the user's limit less
    /// what the daemon holds already. Directories past it are polled.
    pub inotify_budget: Option<usize>,
    /// How often polled directories are scanned.
    pub poll_interval: Duration,
    pub debounce: Debounce,
    /// Whether `.gitignore`/`.ignore` files and git's excludes apply (false for sync
    /// rules, whose own excludes say what is left out, as in the initial sync).
    pub ignore_files: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            inotify_budget: None,
            poll_interval: Duration::from_secs(1),
            debounce: Debounce::default(),
            ignore_files: true,
        }
    }
}

impl Options {
    /// Defaults, with the budget from [`INOTIFY_BUDGET_VAR`] when it is set.
    pub fn from_env() -> Self {
        Self {
            inotify_budget: std::env::var(INOTIFY_BUDGET_VAR)
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            ..Self::default()
        }
    }
}

/// What a watcher needs from its environment.
#[derive(Clone)]
pub struct Context {
    pub logs: LogHub,
    /// Told about `exec` commands, so they die with the daemon.
    pub guardian: Option<Arc<Guardian>>,
    pub services: Arc<dyn Services>,
    pub options: Options,
}

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot start the file watcher thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A debounced batch of changes, by rule.
#[derive(Debug)]
pub(crate) struct Batch {
    pub hits: Vec<Hit>,
}

#[derive(Debug)]
pub(crate) struct Hit {
    /// Index into the watcher's targets.
    pub rule: u16,
    pub count: usize,
    /// The changed paths (absolute), sorted; at most the pending cap.
    pub paths: Vec<PathBuf>,
    /// Too many changes to list (or events lost): everything may have changed.
    pub overflow: bool,
}

/// The file watcher of one environment: a thread watching the files and a task acting
/// on what changed. Stop it with [`EnvWatcher::stop`]; dropping it stops both too,
/// without waiting.
pub struct EnvWatcher {
    targets: tokio::sync::watch::Sender<Arc<Vec<Target>>>,
    inbox: Arc<worker::Inbox>,
    thread: Option<std::thread::JoinHandle<()>>,
    dispatcher: Option<tokio::task::JoinHandle<()>>,
    cancel: tokio_util::sync::CancellationToken,
    ready: tokio::sync::watch::Receiver<Option<SetupReport>>,
}

impl std::fmt::Debug for EnvWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let services: Vec<String> = self
            .targets
            .borrow()
            .iter()
            .map(|t| t.service.clone())
            .collect();
        f.debug_struct("EnvWatcher")
            .field("services", &services)
            .finish_non_exhaustive()
    }
}

impl EnvWatcher {
    /// Starts watching `targets` (paths relative to `project_dir` are shown that way
    /// in the log). Set-up runs in the background; [`EnvWatcher::ready`] waits for it.
    /// Must be called within a tokio runtime.
    pub fn start(
        project_dir: &Path,
        targets: Vec<Target>,
        ctx: Context,
    ) -> Result<Self, WatchError> {
        let (inbox, wake) = worker::Inbox::new();
        let (batch_tx, batch_rx) = tokio::sync::mpsc::channel(BATCH_QUEUE);
        let (ready_tx, ready) = tokio::sync::watch::channel(None);
        let targets = Arc::new(targets);
        let (targets_tx, targets_rx) = tokio::sync::watch::channel(targets.clone());
        let worker = worker::Worker {
            targets: targets.to_vec(),
            project_dir: project_dir.to_path_buf(),
            options: ctx.options.clone(),
            logs: ctx.logs.clone(),
            inbox: inbox.clone(),
            wake,
            batches: batch_tx,
            ready: ready_tx,
        };
        let thread = std::thread::Builder::new()
            .name("devenv-watch".into())
            .spawn(move || worker.run())
            .map_err(WatchError::Thread)?;
        let cancel = tokio_util::sync::CancellationToken::new();
        let dispatcher = actions::Dispatcher {
            cancel: cancel.clone(),
            targets: targets_rx,
            services: ctx.services,
            logs: ctx.logs,
            guardian: ctx.guardian,
            project_dir: project_dir.to_path_buf(),
        };
        let dispatcher = tokio::spawn(dispatcher.run(batch_rx));
        Ok(Self {
            targets: targets_tx,
            inbox,
            thread: Some(thread),
            dispatcher: Some(dispatcher),
            cancel,
            ready,
        })
    }

    /// Whether this watcher watches exactly what `targets` asks for (their actions
    /// may differ: see [`EnvWatcher::set_targets`]).
    pub fn watches_same(&self, targets: &[Target]) -> bool {
        let current = self.targets.borrow();
        current.len() == targets.len() && current.iter().zip(targets).all(|(a, b)| a.same_watch(b))
    }

    /// Replaces the actions (e.g. the environment an `exec` runs with) of targets
    /// that watch the same paths.
    pub fn set_targets(&self, targets: Vec<Target>) {
        if self.watches_same(&targets) {
            self.targets.send_replace(Arc::new(targets));
        }
    }

    /// Waits (at most `limit`) until the initial directories are watched.
    pub async fn ready(&self, limit: Duration) -> Option<SetupReport> {
        let mut rx = self.ready.clone();
        let r = tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await;
        match r {
            Ok(Ok(report)) => report.clone(),
            _ => None,
        }
    }

    /// Stops watching, ends any `exec` still running, and waits for both workers.
    pub async fn stop(mut self) {
        self.signal_stop();
        if let Some(d) = self.dispatcher.take() {
            // It ends the `exec` commands it runs before it returns.
            let _ = d.await;
        }
        if let Some(t) = self.thread.take() {
            // The thread notices the stop at its next wake-up or directory.
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
    }

    fn signal_stop(&self) {
        self.cancel.cancel();
        self.inbox.stop.store(true, Ordering::Relaxed);
        self.inbox.wake();
    }
}

impl Drop for EnvWatcher {
    fn drop(&mut self) {
        self.signal_stop();
        if let Some(d) = self.dispatcher.take() {
            d.abort();
        }
    }
}
