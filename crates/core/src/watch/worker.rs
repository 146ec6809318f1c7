//! The watcher's thread: owns the notify watchers and the set of watched directories,
//! sets them up, follows directories as they are created and removed, waits out each
//! burst of events and hands the batch, already matched against the rules, to the
//! dispatcher.
//!
//! A thread rather than a task: the walks and the watch calls are blocking file
//! system work, and an idle thread blocked on a channel costs nothing (no timers run
//! between bursts).
//!
//! Where notify's callbacks leave events (`Inbox`) is `worker/inbox.rs`.
//!
//! Why one file of ~760 lines: the thread's state (`Watches`, `State`) is shared by
//! the set-up walk, the directory following and the burst loop; each is a method of
//! the one `State` the thread owns.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{INotifyWatcher, RecursiveMode, Watcher as _};

use super::debounce::Window;
use super::filter::{is_ignore_file, Base, Chain, RuleFilter};
use super::poll::Poller;
use super::tree::{DirInfo, Forward, Rules, Sink as _, Walker};
use super::{Batch, Hit, Options, Target};
use crate::logs::{LogHub, Stream};

mod inbox;

pub(crate) use inbox::Inbox;

/// Directories found by the set-up walk waiting for their watch.
const WALK_QUEUE: usize = 1024;
/// Errors reported in the log when setting up, at most.
const MAX_REPORTED_ERRORS: usize = 5;

/// inotify watches held by every watcher of this daemon.
static INOTIFY_IN_USE: AtomicUsize = AtomicUsize::new(0);

/// What set-up found, for the log and for `ready`.
#[derive(Debug, Clone, Default)]
pub struct SetupReport {
    pub directories: usize,
    pub inotify: usize,
    pub polled: usize,
    pub elapsed: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Inotify,
    Poll,
}

#[derive(Debug)]
struct Watched {
    info: DirInfo,
    mode: Mode,
}

/// The watches themselves: inotify within the budget, polling past it.
struct Watches {
    inotify: Option<INotifyWatcher>,
    poll: Option<Poller>,
    inbox: Arc<Inbox>,
    poll_interval: Duration,
    budget: usize,
    limit: Option<usize>,
    inotify_used: usize,
    polled: usize,
}

impl Watches {
    fn add(&mut self, dir: &Path) -> Option<Mode> {
        if self.inotify_used < self.budget {
            if let Some(w) = self.inotify.as_mut() {
                match w.watch(dir, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.inotify_used += 1;
                        INOTIFY_IN_USE.fetch_add(1, Ordering::Relaxed);
                        return Some(Mode::Inotify);
                    }
                    Err(e) => match e.kind {
                        // The user's limit, shared with every other program: poll the rest.
                        notify::ErrorKind::MaxFilesWatch => self.budget = self.inotify_used,
                        notify::ErrorKind::PathNotFound => return None,
                        _ => {
                            tracing::debug!(error = %e, dir = %dir.display(), "cannot watch");
                            return None;
                        }
                    },
                }
            }
        }
        if self.poll.is_none() {
            match Poller::start(self.inbox.clone(), self.poll_interval) {
                Ok(p) => self.poll = Some(p),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start polling");
                    return None;
                }
            }
        }
        if !self.poll.as_ref()?.watch(dir) {
            return None;
        }
        self.polled += 1;
        Some(Mode::Poll)
    }

    fn remove(&mut self, dir: &Path, mode: Mode) {
        match mode {
            Mode::Inotify => {
                if let Some(i) = self.inotify.as_mut() {
                    // Not found: the kernel dropped it with the directory.
                    let _ = i.unwatch(dir);
                }
                self.inotify_used -= 1;
                INOTIFY_IN_USE.fetch_sub(1, Ordering::Relaxed);
            }
            Mode::Poll => {
                if let Some(p) = self.poll.as_ref() {
                    p.unwatch(dir);
                }
                self.polled -= 1;
            }
        }
    }

    /// Watches `dir` unless it is; returns whether it went to polling.
    fn ensure(
        watched: &mut BTreeMap<PathBuf, Watched>,
        this: &mut Self,
        dir: PathBuf,
        info: DirInfo,
    ) -> bool {
        if let Some(w) = watched.get_mut(&dir) {
            w.info = info;
            return false;
        }
        match this.add(&dir) {
            Some(mode) => {
                watched.insert(dir, Watched { info, mode });
                mode == Mode::Poll
            }
            None => false,
        }
    }

    fn release(&mut self) {
        INOTIFY_IN_USE.fetch_sub(self.inotify_used, Ordering::Relaxed);
        self.inotify_used = 0;
        // Dropping the watchers ends their threads.
        self.inotify = None;
        self.poll = None;
    }
}

pub(crate) struct Worker {
    pub(crate) targets: Vec<Target>,
    pub(crate) project_dir: PathBuf,
    pub(crate) options: Options,
    pub(crate) logs: LogHub,
    pub(crate) inbox: Arc<Inbox>,
    pub(crate) wake: Receiver<()>,
    pub(crate) batches: tokio::sync::mpsc::Sender<Batch>,
    pub(crate) ready: tokio::sync::watch::Sender<Option<SetupReport>>,
}

/// The thread's state once started.
struct State {
    targets: Vec<Target>,
    project_dir: PathBuf,
    options: Options,
    logs: LogHub,
    inbox: Arc<Inbox>,
    filters: Vec<RuleFilter>,
    /// Directories named by rules, and the rules naming each.
    roots: HashMap<PathBuf, Vec<u16>>,
    /// Files named by rules: their directory is watched, only they count.
    file_roots: HashMap<PathBuf, Vec<u16>>,
    bases: HashMap<PathBuf, Arc<Base>>,
    watched: BTreeMap<PathBuf, Watched>,
    watches: Watches,
    said_polling: bool,
    /// Set-up is over: later fallbacks to polling are reported as they happen.
    set_up: bool,
}

impl Worker {
    pub(crate) fn run(self) {
        let Worker {
            targets,
            project_dir,
            options,
            logs,
            inbox,
            wake,
            batches,
            ready,
        } = self;
        let started = Instant::now();
        let mut errors = Vec::new();
        let handler_inbox = inbox.clone();
        let inotify = match INotifyWatcher::new(
            move |ev| handler_inbox.handle(ev),
            notify::Config::default(),
        ) {
            Ok(w) => Some(w),
            Err(e) => {
                errors.push(format!("cannot use inotify ({e}): polling instead"));
                None
            }
        };
        let limit = max_user_watches();
        let budget = match (options.inotify_budget, limit) {
            (Some(b), _) => b,
            (None, Some(l)) => (l / 2).saturating_sub(INOTIFY_IN_USE.load(Ordering::Relaxed)),
            (None, None) => 4096,
        };
        let watches = Watches {
            inotify,
            poll: None,
            inbox: inbox.clone(),
            poll_interval: options.poll_interval,
            budget,
            limit,
            inotify_used: 0,
            polled: 0,
        };
        let mut state = State {
            filters: Vec::new(),
            roots: HashMap::new(),
            file_roots: HashMap::new(),
            bases: HashMap::new(),
            watched: BTreeMap::new(),
            watches,
            said_polling: false,
            set_up: false,
            targets,
            project_dir,
            options,
            logs,
            inbox,
        };
        state.index_rules(&mut errors);
        state.watch_all(&mut errors);
        let report = SetupReport {
            directories: state.watched.len(),
            inotify: state.watches.inotify_used,
            polled: state.watches.polled,
            elapsed: started.elapsed(),
        };
        state.report_setup(&report, &errors);
        state.set_up = true;
        ready.send_replace(Some(report));
        state.event_loop(&wake, &batches);
        state.watches.release();
    }
}

impl State {
    fn stopped(&self) -> bool {
        self.inbox.stop.load(Ordering::Relaxed)
    }

    fn index_rules(&mut self, errors: &mut Vec<String>) {
        for (i, t) in self.targets.iter().enumerate() {
            let i = u16::try_from(i).unwrap_or(u16::MAX);
            let mut dirs = Vec::new();
            for p in &t.paths {
                match std::fs::metadata(p) {
                    Ok(m) if m.is_dir() => {
                        dirs.push(p.clone());
                        self.roots.entry(p.clone()).or_default().push(i);
                    }
                    Ok(_) => self.file_roots.entry(p.clone()).or_default().push(i),
                    Err(e) => {
                        errors.push(format!("{}: cannot watch {}: {e}", t.service, self.rel(p)))
                    }
                }
            }
            let mut errs = Vec::new();
            self.filters
                .push(RuleFilter::new(&dirs, &t.ignore, &mut errs));
            errors.extend(errs.into_iter().map(|e| format!("{}: {e}", t.service)));
        }
    }

    fn walker(&self) -> Walker<'_> {
        Walker {
            filters: &self.filters,
            roots: &self.roots,
            stop: &self.inbox.stop,
        }
    }

    /// The ignore files that apply to `dir` itself: those of its ancestors up to the
    /// repository root (or the project directory, outside a repository).
    fn chain_above(&mut self, dir: &Path, errors: &mut Vec<String>) -> Arc<Chain> {
        let top = self.top_of(dir);
        let base = match self.bases.get(&top) {
            Some(b) => b.clone(),
            None => {
                let b = if self.options.ignore_files {
                    let (b, errs) = Base::load(&top);
                    errors.extend(errs);
                    b
                } else {
                    Base::off()
                };
                let b = Arc::new(b);
                self.bases.insert(top.clone(), b.clone());
                b
            }
        };
        let mut chain = Chain::top(base);
        if let Some(parent) = dir.parent().filter(|p| p.starts_with(&top)) {
            let mut ancestors: Vec<&Path> = parent
                .ancestors()
                .take_while(|a| a.starts_with(&top))
                .collect();
            ancestors.reverse();
            for a in ancestors {
                chain = chain.descend_probe(a, errors);
            }
        }
        chain
    }

    fn top_of(&self, dir: &Path) -> PathBuf {
        if let Some(repo) = dir.ancestors().find(|a| a.join(".git").exists()) {
            return repo.to_path_buf();
        }
        if dir.starts_with(&self.project_dir) {
            return self.project_dir.clone();
        }
        dir.to_path_buf()
    }

    /// Watches every directory the rules want, and only those. The walk runs on a
    /// second thread and hands each directory over as it finds it, so that reading
    /// the tree and adding watches (a round trip to notify's thread each) overlap.
    fn watch_all(&mut self, errors: &mut Vec<String>) {
        let mut starts: Vec<(PathBuf, Vec<u16>)> = self
            .roots
            .iter()
            .map(|(p, r)| (p.clone(), r.clone()))
            .collect();
        // Outer roots first: a root inside another is reached by that walk.
        starts.sort_by_key(|(p, _)| p.components().count());
        let starts: Vec<(PathBuf, Arc<Chain>, Rules)> = starts
            .into_iter()
            .map(|(dir, mut rules)| {
                rules.sort_unstable();
                rules.dedup();
                let above = self.chain_above(&dir, errors);
                (dir, above, rules.into())
            })
            .collect();
        // Directories of rules naming single files: watched, not walked.
        let mut file_dirs = Vec::new();
        let parents: Vec<PathBuf> = self
            .file_roots
            .keys()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        for dir in parents {
            let above = self.chain_above(&dir, errors);
            let chain = above.descend_probe(&dir, errors);
            let rules = Rules::from(Vec::new());
            file_dirs.push((
                dir,
                DirInfo {
                    above,
                    chain,
                    rules,
                },
            ));
        }

        let walker = Walker {
            filters: &self.filters,
            roots: &self.roots,
            stop: &self.inbox.stop,
        };
        let watched = &mut self.watched;
        let watches = &mut self.watches;
        let mut wanted: HashSet<PathBuf> = HashSet::new();
        let mut polled = 0;
        let walk_errors = std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel(WALK_QUEUE);
            let walking = s.spawn(move || {
                let mut errors = Vec::new();
                let mut sink = Forward {
                    seen: HashSet::new(),
                    tx,
                };
                for (dir, above, rules) in starts {
                    if !sink.contains(&dir) {
                        walker.walk(dir, above, rules, &mut sink, &mut errors);
                    }
                }
                errors
            });
            for (dir, info) in rx {
                wanted.insert(dir.clone());
                polled += usize::from(Watches::ensure(watched, watches, dir, info));
            }
            walking.join().unwrap_or_default()
        });
        errors.extend(walk_errors);
        for (dir, info) in file_dirs {
            if wanted.insert(dir.clone()) {
                polled += usize::from(Watches::ensure(watched, watches, dir, info));
            }
        }
        let stale: Vec<PathBuf> = self
            .watched
            .keys()
            .filter(|p| !wanted.contains(*p))
            .cloned()
            .collect();
        for p in stale {
            self.unwatch(&p);
        }
        if polled > 0 && self.set_up && !self.said_polling {
            self.say_polling();
        }
    }

    /// Makes the watched set under `scope` equal `desired`.
    fn reconcile(&mut self, desired: BTreeMap<PathBuf, DirInfo>, scope: &Path) {
        let stale: Vec<PathBuf> = self
            .watched
            .range(scope.to_path_buf()..)
            .take_while(|(p, _)| p.starts_with(scope))
            .filter(|(p, _)| !desired.contains_key(*p))
            .map(|(p, _)| p.clone())
            .collect();
        for p in stale {
            self.unwatch(&p);
        }
        let mut polled = 0;
        for (dir, info) in desired {
            if self.stopped() {
                return;
            }
            polled += usize::from(Watches::ensure(
                &mut self.watched,
                &mut self.watches,
                dir,
                info,
            ));
        }
        if polled > 0 && self.set_up && !self.said_polling {
            self.say_polling();
        }
    }

    fn unwatch(&mut self, dir: &Path) {
        if let Some(w) = self.watched.remove(dir) {
            self.watches.remove(dir, w.mode);
        }
    }

    fn event_loop(&mut self, wake: &Receiver<()>, batches: &tokio::sync::mpsc::Sender<Batch>) {
        loop {
            // Idle: blocked without a timer until notify has something.
            if wake.recv().is_err() || self.stopped() {
                return;
            }
            let mut window = Window::start(Instant::now());
            self.follow_dirs();
            loop {
                let now = Instant::now();
                let deadline = window.deadline(&self.options.debounce);
                if now >= deadline {
                    break;
                }
                match wake.recv_timeout(deadline - now) {
                    Ok(()) => {
                        if self.stopped() {
                            return;
                        }
                        window.event(Instant::now());
                        self.follow_dirs();
                    }
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
            self.follow_dirs();
            let (changed, overflow) = {
                let mut p = self.inbox.lock();
                (
                    std::mem::take(&mut p.changed),
                    std::mem::take(&mut p.overflow),
                )
            };
            if changed.is_empty() && !overflow {
                continue;
            }
            let batch = self.classify(changed, overflow);
            if batch.hits.is_empty() {
                continue;
            }
            if self.stopped() {
                return;
            }
            if batches.blocking_send(batch).is_err() {
                return;
            }
        }
    }

    /// Watches directories created since the last look and drops those removed, at
    /// once (not after the burst): files written into a new directory right away
    /// should be seen.
    fn follow_dirs(&mut self) {
        let (created, gone, rescan) = {
            let mut p = self.inbox.lock();
            (
                std::mem::take(&mut p.created),
                std::mem::take(&mut p.gone),
                std::mem::take(&mut p.rescan),
            )
        };
        let mut errors = Vec::new();
        if rescan {
            self.watch_all(&mut errors);
        } else {
            for path in gone {
                if self.watched.contains_key(&path) && !is_real_dir(&path) {
                    self.reconcile(BTreeMap::new(), &path);
                }
            }
            for path in created {
                if !self.watched.contains_key(&path) && is_real_dir(&path) {
                    self.add_subtree(&path, &mut errors);
                }
            }
        }
        for e in errors {
            tracing::debug!(error = %e, "watch");
        }
    }

    /// Watches `dir`, a new directory, and what is below it, if the rules want it.
    fn add_subtree(&mut self, dir: &Path, errors: &mut Vec<String>) {
        let Some(parent) = dir.parent().and_then(|p| self.watched.get(p)) else {
            return;
        };
        if parent.info.chain.is_ignored(dir, true) && !self.roots.contains_key(dir) {
            return;
        }
        let above = parent.info.chain.clone();
        let rules = self.walker().rules_for(dir, &parent.info.rules);
        if rules.is_empty() {
            return;
        }
        let mut desired = BTreeMap::new();
        self.walker()
            .walk(dir.to_path_buf(), above, rules, &mut desired, errors);
        self.reconcile(desired, dir);
    }

    /// An ignore file changed: what is watched below its directory may change.
    fn rescan_dir(&mut self, dir: &Path) {
        let Some(w) = self.watched.get(dir) else {
            return;
        };
        let (above, rules) = (w.info.above.clone(), w.info.rules.clone());
        let mut errors = Vec::new();
        let mut desired = BTreeMap::new();
        self.walker()
            .walk(dir.to_path_buf(), above, rules, &mut desired, &mut errors);
        self.reconcile(desired, dir);
    }

    /// The rules each changed path triggers.
    fn classify(&mut self, changed: HashMap<PathBuf, Option<bool>>, overflow: bool) -> Batch {
        let mut hits: BTreeMap<u16, Hit> = BTreeMap::new();
        if overflow {
            let mut errors = Vec::new();
            self.watch_all(&mut errors);
            for i in 0..self.targets.len() {
                let rule = u16::try_from(i).unwrap_or(u16::MAX);
                hits.insert(
                    rule,
                    Hit {
                        rule,
                        count: 0,
                        paths: Vec::new(),
                        overflow: true,
                    },
                );
            }
            return Batch {
                hits: hits.into_values().collect(),
            };
        }
        let mut ignore_dirs = BTreeSet::new();
        for (path, is_dir) in &changed {
            let rules = self.rules_hit(path, *is_dir);
            if rules.is_empty() {
                continue;
            }
            if is_ignore_file(path) {
                if let Some(dir) = path.parent() {
                    ignore_dirs.insert(dir.to_path_buf());
                }
            }
            for rule in rules {
                let hit = hits.entry(rule).or_insert_with(|| Hit {
                    rule,
                    count: 0,
                    paths: Vec::new(),
                    overflow: false,
                });
                hit.count += 1;
                hit.paths.push(path.clone());
            }
        }
        for dir in ignore_dirs {
            self.rescan_dir(&dir);
        }
        for hit in hits.values_mut() {
            hit.paths.sort();
        }
        Batch {
            hits: hits.into_values().collect(),
        }
    }

    fn rules_hit(&self, path: &Path, is_dir: Option<bool>) -> BTreeSet<u16> {
        let mut out = BTreeSet::new();
        // A file a rule names counts whatever the ignore files say.
        if let Some(r) = self.file_roots.get(path) {
            out.extend(r.iter().copied());
        }
        let Some(parent) = path.parent() else {
            return out;
        };
        let Some(dir) = self.watched.get(parent) else {
            // A watched directory's event about itself, when its parent is not
            // watched: a rule's own directory.
            if let Some(r) = self.roots.get(path) {
                out.extend(r.iter().copied());
            }
            return out;
        };
        if dir.info.rules.is_empty() {
            return out;
        }
        let is_dir = is_dir.unwrap_or_else(|| {
            self.watched.contains_key(path)
                || std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
        });
        if dir.info.chain.is_ignored(path, is_dir) {
            return out;
        }
        for r in dir.info.rules.iter() {
            if !self.filters[usize::from(*r)].is_ignored(path, is_dir) {
                out.insert(*r);
            }
        }
        out
    }

    fn rel(&self, p: &Path) -> String {
        rel(&self.project_dir, p)
    }

    fn say(&self, service: &str, line: &str) {
        self.logs.push(&Arc::from(service), Stream::System, line);
    }

    fn report_setup(&mut self, report: &SetupReport, errors: &[String]) {
        let mut per_rule = vec![0usize; self.targets.len()];
        for w in self.watched.values() {
            for r in w.info.rules.iter() {
                if let Some(n) = per_rule.get_mut(usize::from(*r)) {
                    *n += 1;
                }
            }
        }
        for (i, t) in self.targets.iter().enumerate() {
            let paths: Vec<String> = t.paths.iter().map(|p| self.rel(p)).collect();
            self.say(
                &t.service,
                &format!(
                    "watching {} for changes ({} directories, set up in {} ms)",
                    paths.join(", "),
                    per_rule[i],
                    report.elapsed.as_millis()
                ),
            );
            for e in errors.iter().take(MAX_REPORTED_ERRORS) {
                self.say(&t.service, &format!("watch: {e}"));
            }
        }
        tracing::info!(
            directories = report.directories,
            inotify = report.inotify,
            polled = report.polled,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "watcher set up"
        );
        if report.polled > 0 {
            self.say_polling();
        }
    }

    fn say_polling(&mut self) {
        self.said_polling = true;
        let limit = self
            .watches
            .limit
            .map(|l| format!(" (fs.inotify.max_user_watches is {l})"))
            .unwrap_or_default();
        let line = format!(
            "watch: inotify budget of {} watches reached{limit}: polling {} directories every {:.1}s; raise the limit to watch them all by events",
            self.watches.budget,
            self.watches.polled,
            self.options.poll_interval.as_secs_f64()
        );
        tracing::warn!("{line}");
        for t in &self.targets {
            self.say(&t.service, &line);
        }
    }
}

fn is_real_dir(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir())
}

/// `p` relative to the project, `./`-prefixed, or as it is outside the project.
pub(crate) fn rel(project: &Path, p: &Path) -> String {
    match p.strip_prefix(project) {
        Ok(r) if r.as_os_str().is_empty() => ".".to_string(),
        Ok(r) => format!("./{}", r.display()),
        Err(_) => p.display().to_string(),
    }
}

/// The user's inotify watch limit, when the kernel tells it.
fn max_user_watches() -> Option<usize> {
    std::fs::read_to_string("/proc/sys/fs/inotify/max_user_watches")
        .ok()?
        .trim()
        .parse()
        .ok()
}
