//! A sync session: one long-lived receiver stream into one container, and what we know
//! of the tree it holds.
//!
//! Why one file of ~950 lines: a `Session` is one state machine over one stream
//! (send, acknowledge, retry, re-plan after a reconnect) whose methods share its
//! in-flight window; splitting its `impl` across files would hide that. The producer
//! side (what to send, tar frames) is `produce.rs`; the readers of the receiver's
//! replies and stderr are `replies.rs`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::SyncError;
use super::exclude::Excludes;
use super::local::LocalRoot;
use super::path::{refused_target, RelPath};
use super::plan::{compare, Difference, Limits, Plan};
use super::produce::{plan_changes, produce, Frame, Sent};
use super::receiver::{Reply, SCRIPT};
use super::replies::{read_replies, read_stderr, Event, LINE_MAX};
use super::tree::{self, Kind, Tree};

/// Unacknowledged bytes on the stream before the sender waits for acks.
const MAX_IN_FLIGHT: u64 = 16 << 20;
/// Bytes handed to the stream per write.
pub(super) const CHUNK: usize = 256 * 1024;
/// Without any reply for this long, the stream is considered dead.
const PROGRESS_LIMIT: Duration = Duration::from_secs(60);
/// The receiver must answer its first line within this.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How often `apply` retries paths that changed while they were being sent.
const STALE_ROUNDS: usize = 3;
/// Replies read ahead of the session: the reader waits (and so does the pod) beyond.
const EVENTS: usize = 1024;
/// Batches sent and not yet acknowledged, at most: fewer than [`EVENTS`], so that the
/// replies to them always fit while the session is busy writing.
const MAX_PENDING_BATCHES: usize = 512;
/// How long a local directory must stay empty before everything in a non-empty target
/// is deleted.
const WIPE_SETTLE: Duration = Duration::from_millis(500);
/// Comparisons tried while the local directory reads empty, then not.
const WIPE_ROUNDS: usize = 3;
/// Seconds within which an mtime is not trusted by the quick check (it has a
/// resolution of a second, and clocks differ a little).
const RACY_WINDOW: i64 = 2;

/// How files of equal size are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    /// By mtime, hashing the files whose mtime can't be trusted.
    Quick,
    /// By MD5.
    Checksums,
}

/// The container a session syncs into.
#[derive(Clone)]
pub struct SyncTarget {
    pub client: kube::Client,
    pub namespace: String,
    pub pod: String,
    /// Default: the pod's default container.
    pub container: Option<String>,
    /// Absolute directory in the container; created if missing.
    pub remote_dir: String,
}

impl std::fmt::Debug for SyncTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncTarget")
            .field("namespace", &self.namespace)
            .field("pod", &self.pod)
            .field("container", &self.container)
            .field("remote_dir", &self.remote_dir)
            .finish()
    }
}

/// A local change, by path relative to the local directory. Both kinds mean "make the
/// container match the local disk at this path now": the disk is read when the change
/// is sent, so a stale or reordered event can't put old content in place. A directory
/// is synced with everything below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Write(PathBuf),
    Remove(PathBuf),
}

impl Change {
    fn path(&self) -> &Path {
        match self {
            Change::Write(p) | Change::Remove(p) => p,
        }
    }
}

/// What one operation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncStats {
    /// Files, symlinks and directories written.
    pub written: u64,
    /// Paths removed (a directory counts once).
    pub deleted: u64,
    /// Content bytes of the files written.
    pub bytes: u64,
    /// Entries found identical and not sent (initial sync).
    pub unchanged: u64,
    pub batches: u64,
    pub duration: Duration,
}

/// A session's health, for `devenv sync status`.
#[derive(Debug, Clone, Default)]
pub struct SessionStatus {
    pub pod: String,
    pub container: Option<String>,
    pub remote_dir: String,
    pub local_dir: PathBuf,
    /// False once the stream broke: the session must be reopened.
    pub connected: bool,
    pub last_sync: Option<SystemTime>,
    /// Time from sending the last batch to its acknowledgement.
    pub last_latency: Option<Duration>,
    /// Totals over the session.
    pub files: u64,
    pub bytes: u64,
    pub deleted: u64,
    pub errors: u64,
    pub last_error: Option<String>,
    /// Something sync decided that the user should know, though nothing failed: the
    /// target was emptied because the local directory is empty, or names in the
    /// container are not UTF-8 and are left alone.
    pub notice: Option<String>,
}

/// One container's sync stream. Not `Sync`: one owner drives it (a task per pod).
pub struct Session {
    name: String,
    local_dir: PathBuf,
    /// The local directory as opened by the last comparison: changes are read through
    /// it, and only while its path still names it.
    root: Option<Arc<LocalRoot>>,
    excludes: Excludes,
    stdin: Box<dyn AsyncWrite + Send + Unpin>,
    events: mpsc::Receiver<Event>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    readers: Vec<JoinHandle<()>>,
    /// Cancelled when the receiver's output ends (it exited, or the stream broke).
    closed: CancellationToken,
    /// Keeps the exec (or child process) alive; dropping it ends the stream.
    _process: Box<dyn std::any::Any + Send>,
    next_id: u64,
    /// What the container holds, as far as this session knows: kept to turn a change
    /// of type (file -> directory) into a delete first.
    model: BTreeMap<RelPath, Kind>,
    /// Directories in the container that hold names sync can't handle (not UTF-8):
    /// never removed whole.
    pinned: BTreeSet<RelPath>,
    /// Such names seen in the last listing: how many, and one of them.
    opaque: (u64, Option<String>),
    opaque_reported: bool,
    /// The last error was about the local directory: cleared once it is back.
    source_error: bool,
    limits: Limits,
    status: SessionStatus,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
    }
}

impl Session {
    /// Starts the receiver in the target container over one exec stream.
    pub async fn open(
        target: SyncTarget,
        local_dir: PathBuf,
        excludes: Vec<String>,
    ) -> Result<Session, SyncError> {
        let excludes = Excludes::new(&excludes)?;
        let pods: Api<Pod> = Api::namespaced(target.client.clone(), &target.namespace);
        let mut params = AttachParams::default()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .max_stdin_buf_size(CHUNK)
            .max_stdout_buf_size(64 * 1024);
        if let Some(c) = &target.container {
            params = params.container(c.clone());
        }
        let command = [
            "sh",
            "-c",
            SCRIPT,
            "devenv-sync",
            target.remote_dir.as_str(),
        ];
        let mut process = pods
            .exec(&target.pod, command, &params)
            .await
            .map_err(|source| SyncError::Exec {
                pod: target.pod.clone(),
                source,
            })?;
        let missing = |what: &str| SyncError::Start {
            pod: target.pod.clone(),
            message: format!("the exec has no {what}"),
        };
        let stdin = process.stdin().ok_or_else(|| missing("stdin"))?;
        let stdout = process.stdout().ok_or_else(|| missing("stdout"))?;
        let stderr = process.stderr().ok_or_else(|| missing("stderr"))?;
        let mut session = Session::start(
            target.pod.clone(),
            local_dir,
            excludes,
            Box::new(stdin),
            Box::new(stdout),
            Box::new(stderr),
            Box::new(process),
        )
        .await?;
        session.status.container = target.container;
        Ok(session)
    }

    /// Runs the receiver as a local `sh` process syncing into `remote_dir` on this
    /// machine: the same protocol without a cluster (tests, and local targets).
    pub async fn open_local(
        remote_dir: &Path,
        local_dir: PathBuf,
        excludes: Vec<String>,
    ) -> Result<Session, SyncError> {
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(SCRIPT)
            .arg("devenv-sync")
            .arg(remote_dir);
        let name = format!("local:{}", remote_dir.display());
        Session::open_command(command, name, local_dir, excludes).await
    }

    /// Runs `command` as the receiver (it must speak the protocol of `receiver.rs` on
    /// its stdin and stdout): a local container's exec, or a test's impostor.
    pub async fn open_command(
        mut command: tokio::process::Command,
        name: String,
        local_dir: PathBuf,
        excludes: Vec<String>,
    ) -> Result<Session, SyncError> {
        let excludes = Excludes::new(&excludes)?;
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| SyncError::Start {
                pod: name.clone(),
                message: format!("{:?}: {e}", command.as_std().get_program()),
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            unreachable!("all three are piped");
        };
        Session::start(
            name,
            local_dir,
            excludes,
            Box::new(stdin),
            Box::new(stdout),
            Box::new(stderr),
            Box::new(child),
        )
        .await
    }

    async fn start(
        name: String,
        local_dir: PathBuf,
        excludes: Excludes,
        stdin: Box<dyn AsyncWrite + Send + Unpin>,
        stdout: Box<dyn AsyncRead + Send + Unpin>,
        stderr: Box<dyn AsyncRead + Send + Unpin>,
        process: Box<dyn std::any::Any + Send>,
    ) -> Result<Session, SyncError> {
        let (tx, events) = mpsc::channel(EVENTS);
        let stderr_lines = Arc::new(Mutex::new(VecDeque::new()));
        let closed = CancellationToken::new();
        let readers = vec![
            tokio::spawn(read_replies(stdout, tx, closed.clone())),
            tokio::spawn(read_stderr(stderr, name.clone(), stderr_lines.clone())),
        ];
        let mut session = Session {
            status: SessionStatus {
                pod: name.clone(),
                local_dir: local_dir.clone(),
                connected: true,
                ..Default::default()
            },
            name,
            local_dir,
            root: None,
            excludes,
            stdin,
            events,
            stderr: stderr_lines,
            readers,
            closed,
            _process: process,
            next_id: 1,
            model: BTreeMap::new(),
            pinned: BTreeSet::new(),
            opaque: (0, None),
            opaque_reported: false,
            source_error: false,
            limits: Limits::default(),
        };
        match tokio::time::timeout(START_LIMIT, session.events.recv()).await {
            Ok(Some(Event::Reply(Reply::Ready(dir)))) => {
                // The target may be a symlink in the container (to `/`, to `/etc`).
                if let Some(why) = refused_target(&dir) {
                    return Err(SyncError::Start {
                        pod: session.name.clone(),
                        message: format!("the target resolves to {dir}: {why}"),
                    });
                }
                session.status.remote_dir = dir;
                Ok(session)
            }
            Ok(Some(Event::Reply(other))) => Err(SyncError::Start {
                pod: session.name.clone(),
                message: format!("unexpected first reply {other:?}"),
            }),
            Ok(Some(Event::Garbage(line) | Event::TooLong(line))) => Err(SyncError::Start {
                pod: session.name.clone(),
                message: format!("unexpected output {line:?}"),
            }),
            Ok(Some(Event::Closed) | None) => {
                let message = session.stderr_tail();
                Err(SyncError::Start {
                    pod: session.name.clone(),
                    message: if message.is_empty() {
                        "the receiver exited".into()
                    } else {
                        message
                    },
                })
            }
            Err(_) => Err(SyncError::Start {
                pod: session.name.clone(),
                message: format!("no answer within {START_LIMIT:?}"),
            }),
        }
    }

    /// Makes the container's target equal the local tree, sending only what differs
    /// and deleting what is only in the container (excluded paths excepted). Files are
    /// compared like rsync's quick check: equal size and mtime means equal, except that
    /// a file is hashed on both sides when its mtime can't be trusted — the receiver
    /// wrote it within [`RACY_WINDOW`] of that mtime (it may have changed again in the
    /// same second), or it changed locally within the window. For a new pod or a
    /// reconnect; after lost changes use [`Session::full_sync`].
    pub async fn initial_sync(&mut self) -> Result<SyncStats, SyncError> {
        self.sync_tree(Check::Quick).await
    }

    /// Like [`Session::initial_sync`], comparing every file of equal size by MD5.
    pub async fn full_sync(&mut self) -> Result<SyncStats, SyncError> {
        self.sync_tree(Check::Checksums).await
    }

    /// A missing, non-directory or unreadable local directory is a [`SyncError::Source`]
    /// and nothing is sent or deleted: an empty tree is only ever one read successfully.
    async fn sync_tree(&mut self, check: Check) -> Result<SyncStats, SyncError> {
        let started = Instant::now();
        // A directory that is empty, then not, then empty again... is compared a few
        // times, then left to the next change.
        for _ in 1..WIPE_ROUNDS {
            if let Some(stats) = self.sync_tree_once(check, started, false).await? {
                return Ok(stats);
            }
        }
        let stats = self.sync_tree_once(check, started, true).await?;
        Ok(stats.unwrap_or_default())
    }

    /// `None` when the local directory read empty and then was not: compare again.
    /// With `last`, an empty local directory that does not stay empty deletes nothing.
    async fn sync_tree_once(
        &mut self,
        check: Check,
        started: Instant,
        last: bool,
    ) -> Result<Option<SyncStats>, SyncError> {
        let root = Arc::new(self.source(LocalRoot::open(&self.local_dir))?);
        self.root = Some(root.clone());
        let (local, remote) = self.both_trees(&root, check).await?;
        let diffs = compare(&local, &remote, &self.excludes, &self.pinned);
        let plan = Plan::from_differences(&diffs, &local, &remote, &self.excludes, &self.pinned);
        let unchanged = local.len() as u64 - plan.sends.len() as u64;
        self.model = remote.iter().map(|(p, e)| (p.clone(), e.kind)).collect();
        // Read as the directory was; still the directory the rule names?
        self.source(root.check())?;
        let empties = local.is_empty() && plan.sends.is_empty() && self.empties(&plan.deletes);
        if empties && !self.still_empty(&root).await? {
            // Something appeared meanwhile: compare again.
            return Ok(if last {
                Some(SyncStats::default())
            } else {
                None
            });
        }
        let mut stats = self.send_plan(plan).await?;
        if empties {
            self.emptied(stats.deleted);
        }
        stats.unchanged = unchanged;
        stats.duration = started.elapsed();
        if std::mem::take(&mut self.source_error) {
            self.status.last_error = None;
        }
        Ok(Some(stats))
    }

    /// Whether deleting `deletes` leaves the container's target empty (and it is not).
    fn empties(&self, deletes: &[RelPath]) -> bool {
        if deletes.is_empty() || self.model.is_empty() || !self.pinned.is_empty() {
            return false;
        }
        let deletes: BTreeSet<&RelPath> = deletes.iter().collect();
        self.model
            .keys()
            .all(|k| deletes.contains(k) || k.ancestors().any(|a| deletes.contains(&a)))
    }

    /// Before everything in the target is deleted: after [`WIPE_SETTLE`] the directory
    /// is still the same, still there, and read whole it is empty. A `rm -rf` or `git
    /// clean` in progress empties a directory before removing it: that must read as a
    /// missing source (nothing deleted), not as an empty one.
    async fn still_empty(&mut self, root: &Arc<LocalRoot>) -> Result<bool, SyncError> {
        tokio::time::sleep(WIPE_SETTLE).await;
        self.source(root.check())?;
        let local = root.clone();
        let excludes = self.excludes.clone();
        let scan = tokio::task::spawn_blocking(move || local.scan(None, &excludes))
            .await
            .expect("the scan does not panic");
        let (tree, _) = self.source(scan)?;
        self.source(root.check())?;
        Ok(tree.is_empty())
    }

    fn emptied(&mut self, deleted: u64) {
        let message = format!(
            "emptied {}: the local directory {} is empty ({deleted} deleted)",
            self.status.remote_dir,
            self.local_dir.display()
        );
        tracing::warn!(pod = %self.name, "sync: {message}");
        self.status.notice = Some(message);
    }

    fn source<T>(&mut self, r: Result<T, SyncError>) -> Result<T, SyncError> {
        r.map_err(|e| {
            let e = self.note_error(e);
            self.source_error = e.is_source();
            e
        })
    }

    /// Applies local changes, reading the local disk now. Every path is checked first:
    /// one that could leave the directory (`..`, absolute, NUL, newline) fails the call
    /// before anything is sent.
    pub async fn apply(&mut self, changes: &[Change]) -> Result<SyncStats, SyncError> {
        let started = Instant::now();
        let mut paths = Vec::with_capacity(changes.len());
        for c in changes {
            paths.push(RelPath::from_path(c.path())?);
        }
        paths.sort();
        paths.dedup();
        let root = match &self.root {
            Some(r) => r.clone(),
            None => {
                let r = Arc::new(self.source(LocalRoot::open(&self.local_dir))?);
                self.root = Some(r.clone());
                r
            }
        };
        let mut total = SyncStats::default();
        for _ in 0..STALE_ROUNDS {
            // A directory moved away or replaced (a `git clean`, a branch switch)
            // reads as "everything deleted": nothing is planned from it.
            self.source(root.check())?;
            let local = root.clone();
            let excludes = self.excludes.clone();
            let model = std::mem::take(&mut self.model);
            let pinned = std::mem::take(&mut self.pinned);
            let (plan, model, pinned) = tokio::task::spawn_blocking(move || {
                let plan = plan_changes(&local, &excludes, &model, &pinned, &paths);
                (plan, model, pinned)
            })
            .await
            .expect("planning does not panic");
            self.model = model;
            self.pinned = pinned;
            let plan = plan?;
            self.source(root.check())?;
            let mut empties = false;
            if plan.sends.is_empty() && self.empties(&plan.deletes) {
                // Deleting everything needs the directory read whole, and empty.
                if !self.still_empty(&root).await? {
                    // Events and disk disagree: compare everything instead.
                    let mut stats = Box::pin(self.sync_tree(Check::Quick)).await?;
                    stats.add(&total);
                    stats.duration = started.elapsed();
                    return Ok(stats);
                }
                empties = true;
            }
            let (stats, stale) = self.send_plan_inner(plan).await?;
            if empties {
                self.emptied(stats.deleted);
            }
            total.add(&stats);
            if stale.is_empty() {
                break;
            }
            paths = stale;
        }
        total.duration = started.elapsed();
        Ok(total)
    }

    /// Compares the local tree with the container's by MD5, mode, type and symlink
    /// target; empty when they are equal.
    pub async fn verify(&mut self) -> Result<Vec<Difference>, SyncError> {
        let root = Arc::new(self.source(LocalRoot::open(&self.local_dir))?);
        let (local, remote) = self.both_trees(&root, Check::Checksums).await?;
        Ok(compare(&local, &remote, &self.excludes, &self.pinned))
    }

    pub fn status(&self) -> SessionStatus {
        self.status.clone()
    }

    /// Cancelled as soon as the stream ends, even while the session is idle: the owner
    /// reopens it then rather than when the next change fails to go through.
    pub fn closed(&self) -> CancellationToken {
        self.closed.clone()
    }

    /// The directory the receiver writes into, symlinks resolved.
    pub fn remote_dir(&self) -> &str {
        &self.status.remote_dir
    }

    /// One round trip on the stream (no work in the container).
    pub async fn ping(&mut self) -> Result<Duration, SyncError> {
        let started = Instant::now();
        let id = self.take_id();
        self.write(format!("P {id}\n").as_bytes()).await?;
        self.wait_ack(id, &mut Vec::new()).await?;
        Ok(started.elapsed())
    }

    /// Ends the receiver and waits for the stream to close.
    pub async fn close(mut self) -> Result<(), SyncError> {
        let _ = self.stdin.write_all(b"Q\n").await;
        let _ = self.stdin.shutdown().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(e) = self.events.recv().await {
                if matches!(e, Event::Closed) {
                    break;
                }
            }
        })
        .await;
        Ok(())
    }

    /// The local tree and the container's, listed concurrently, with the MD5s on both
    /// sides of the files `check` wants compared by content.
    async fn both_trees(
        &mut self,
        root: &Arc<LocalRoot>,
        check: Check,
    ) -> Result<(Tree, Tree), SyncError> {
        let local = root.clone();
        let excludes = self.excludes.clone();
        let scan = tokio::task::spawn_blocking(move || local.scan(None, &excludes));
        let remote = self.list(check == Check::Checksums).await;
        let (mut local, skipped) = self.source(scan.await.expect("the scan does not panic"))?;
        let mut remote = remote?;
        for path in skipped {
            tracing::warn!(path = %path.display(), "sync: name can't be synced (not UTF-8 or has a newline)");
        }
        // Only files of equal size can be equal; which of those to hash.
        let racy_since = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
            - RACY_WINDOW;
        let wanted: BTreeSet<RelPath> = local
            .iter()
            .filter(|(p, l)| {
                remote.get(*p).is_some_and(|r| {
                    l.kind == Kind::File
                        && r.kind == Kind::File
                        && l.size == r.size
                        && match check {
                            Check::Checksums => true,
                            Check::Quick => {
                                l.mtime != r.mtime
                                    || r.ctime - r.mtime <= RACY_WINDOW
                                    || l.mtime >= racy_since
                            }
                        }
                })
            })
            .map(|(p, _)| p.clone())
            .collect();
        let hasher = root.clone();
        let to_hash = wanted.clone();
        let hashing = tokio::task::spawn_blocking(move || {
            hasher
                .hash(&mut local, |p, _| to_hash.contains(p))
                .map(|()| local)
        });
        if check == Check::Quick && !wanted.is_empty() {
            let paths: Vec<RelPath> = wanted.into_iter().collect();
            let lines = self.checksums(&paths).await?;
            for line in tree::add_listing(&mut remote, &lines).iter().take(5) {
                tracing::warn!(pod = %self.name, line, "sync: checksum line not understood");
            }
        }
        let local = hashing.await.expect("hashing does not panic")?;
        Ok((local, remote))
    }

    /// The container's MD5s of `paths` (files), as `M` listing lines.
    async fn checksums(&mut self, paths: &[RelPath]) -> Result<Vec<String>, SyncError> {
        let id = self.take_id();
        let mut request = format!("H {id} {}\n", paths.len());
        for p in paths {
            request.push_str(p.as_str());
            request.push('\n');
        }
        self.write(request.as_bytes()).await?;
        let mut lines = Vec::new();
        self.wait_ack(id, &mut lines).await?;
        Ok(lines)
    }

    async fn list(&mut self, sums: bool) -> Result<Tree, SyncError> {
        let id = self.take_id();
        self.write(format!("L {id} {}\n", u8::from(sums)).as_bytes())
            .await?;
        let mut lines = Vec::new();
        self.pinned.clear();
        self.opaque = (0, None);
        self.wait_ack(id, &mut lines).await?;
        let (tree, bad) = tree::parse_listing(&lines);
        for line in bad.iter().take(5) {
            tracing::warn!(pod = %self.name, line, "sync: listing line not understood");
        }
        self.report_opaque();
        Ok(tree)
    }

    /// A listing line naming a path sync can't handle: its directories are kept.
    fn opaque_line(&mut self, line: &[u8]) {
        self.pinned.extend(tree::opaque_ancestors(line));
        self.opaque.0 += 1;
        if self.opaque.1.is_none() {
            let shown = String::from_utf8_lossy(line);
            let name = shown
                .find("./")
                .map_or(&shown[..], |i| &shown[i + 2..])
                .chars()
                .take(200)
                .collect();
            self.opaque.1 = Some(name);
        }
    }

    /// Says once per session that names were left alone.
    fn report_opaque(&mut self) {
        let (count, Some(example)) = &self.opaque else {
            return;
        };
        if self.opaque_reported {
            return;
        }
        self.opaque_reported = true;
        let message = format!(
            "{count} name(s) in {} are not UTF-8 or too long (e.g. {example:?}): left alone, never deleted",
            self.status.remote_dir
        );
        tracing::warn!(pod = %self.name, "sync: {message}");
        self.status.notice = Some(message);
    }

    async fn wait_ack(&mut self, id: u64, lines: &mut Vec<String>) -> Result<(), SyncError> {
        loop {
            match self.next_event().await? {
                Reply::Ack(a) if a == id => return Ok(()),
                Reply::Error(e, message) if e == id => {
                    return Err(self.note_error(SyncError::Refused {
                        pod: self.name.clone(),
                        count: 1,
                        message,
                    }))
                }
                Reply::Listing(line) => lines.push(line),
                Reply::Opaque(line) => self.opaque_line(&line),
                other => return Err(self.protocol(format!("{other:?}"))),
            }
        }
    }

    async fn next_event(&mut self) -> Result<Reply, SyncError> {
        match tokio::time::timeout(PROGRESS_LIMIT, self.events.recv()).await {
            Ok(Some(Event::Reply(r))) => Ok(r),
            Ok(Some(Event::Garbage(line))) => Err(self.protocol(line)),
            Ok(Some(Event::TooLong(start))) => Err(self.protocol(format!(
                "a line longer than {LINE_MAX} bytes, starting {start:?}"
            ))),
            Ok(Some(Event::Closed) | None) => Err(self.broken("the receiver exited".into())),
            Err(_) => Err(self.broken(format!("no reply within {PROGRESS_LIMIT:?}"))),
        }
    }

    async fn send_plan(&mut self, plan: Plan) -> Result<SyncStats, SyncError> {
        let (mut stats, mut stale) = self.send_plan_inner(plan).await?;
        // Files that changed while being sent: once more, from the disk as it is now.
        for _ in 1..STALE_ROUNDS {
            if stale.is_empty() {
                break;
            }
            let changes: Vec<Change> = stale
                .iter()
                .map(|p| Change::Write(PathBuf::from(p.as_str())))
                .collect();
            let more = self.apply(&changes).await?;
            stats.add(&more);
            stale.clear();
        }
        Ok(stats)
    }

    /// Streams the plan's batches, pipelined, with at most MAX_IN_FLIGHT bytes
    /// unacknowledged; returns the stats and the paths that changed while being sent.
    async fn send_plan_inner(
        &mut self,
        plan: Plan,
    ) -> Result<(SyncStats, Vec<RelPath>), SyncError> {
        let mut stats = SyncStats::default();
        if plan.is_empty() {
            return Ok((stats, Vec::new()));
        }
        let batches = plan.into_batches(self.limits);
        let first_id = self.next_id;
        self.next_id += batches.len() as u64;
        let (tx, mut rx) = mpsc::channel(8);
        let root = match &self.root {
            Some(r) => r.clone(),
            None => Arc::new(self.source(LocalRoot::open(&self.local_dir))?),
        };
        let producer = tokio::task::spawn_blocking(move || produce(&root, batches, first_id, &tx));

        let mut pending: VecDeque<Sent> = VecDeque::new();
        let mut in_flight = 0u64;
        let mut batch_bytes = 0u64;
        let mut produced_all = false;
        let mut stale = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        let result: Result<(), SyncError> = async {
            while !(produced_all && pending.is_empty()) {
                // A reply can only be matched once its batch is in `pending` (its End
                // frame read): the receiver may ack a batch before the producer's End
                // arrives here, so replies are read only while something is pending,
                // and sending never stalls while nothing is.
                let can_send = !produced_all
                    && ((in_flight < MAX_IN_FLIGHT && pending.len() < MAX_PENDING_BATCHES)
                        || pending.is_empty());
                tokio::select! {
                    frame = rx.recv(), if can_send => match frame {
                        Some(Frame::Data(data)) => {
                            self.write(&data).await?;
                            in_flight += data.len() as u64;
                            batch_bytes += data.len() as u64;
                        }
                        Some(Frame::End(mut sent)) => {
                            sent.wire_bytes = std::mem::take(&mut batch_bytes);
                            sent.at = Instant::now();
                            pending.push_back(sent);
                        }
                        Some(Frame::Failed(e)) => return Err(e),
                        None => produced_all = true,
                    },
                    reply = self.next_event(), if !pending.is_empty() => {
                        let reply = reply?;
                        let (id, error) = match reply {
                            Reply::Ack(id) => (id, None),
                            Reply::Error(id, m) => (id, Some(m)),
                            other => return Err(self.protocol(format!("{other:?}"))),
                        };
                        let Some(sent) = pending.pop_front().filter(|s| s.id == id) else {
                            return Err(self.protocol(format!("ack for unknown batch {id}")));
                        };
                        in_flight -= sent.wire_bytes;
                        self.status.last_latency = Some(sent.at.elapsed());
                        stats.batches += 1;
                        match error {
                            None => self.applied(sent, &mut stats, &mut stale),
                            Some(m) => {
                                // Unknown state in the container for these paths.
                                for (p, _) in &sent.written {
                                    self.model.remove(p);
                                }
                                refused.push(m);
                            }
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        drop(rx);
        let _ = producer.await;
        result?;
        self.status.last_sync = Some(SystemTime::now());
        if !refused.is_empty() {
            return Err(self.note_error(SyncError::Refused {
                pod: self.name.clone(),
                count: refused.len(),
                message: refused.join("; "),
            }));
        }
        Ok((stats, stale))
    }

    fn applied(&mut self, sent: Sent, stats: &mut SyncStats, stale: &mut Vec<RelPath>) {
        for p in &sent.deletes {
            let under: Vec<RelPath> = self
                .model
                .range(p.clone()..)
                .take_while(|(k, _)| k.as_str().starts_with(p.as_str()))
                .filter(|(k, _)| k.starts_with(p))
                .map(|(k, _)| k.clone())
                .collect();
            for k in under {
                self.model.remove(&k);
            }
        }
        for (p, kind) in &sent.written {
            self.model.insert(p.clone(), *kind);
        }
        stats.deleted += sent.deletes.len() as u64;
        stats.written += sent.written.len() as u64;
        stats.bytes += sent.content_bytes;
        self.status.deleted += sent.deletes.len() as u64;
        self.status.files += sent.written.len() as u64;
        self.status.bytes += sent.content_bytes;
        stale.extend(sent.stale);
    }

    async fn write(&mut self, data: &[u8]) -> Result<(), SyncError> {
        let r = async {
            self.stdin.write_all(data).await?;
            self.stdin.flush().await
        }
        .await;
        r.map_err(|e| self.broken(format!("writing: {e}")))
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("; ")
    }

    fn broken(&mut self, message: String) -> SyncError {
        self.status.connected = false;
        let tail = self.stderr_tail();
        let message = if tail.is_empty() {
            message
        } else {
            format!("{message} (stderr: {tail})")
        };
        self.note_error(SyncError::Stream {
            pod: self.name.clone(),
            message,
        })
    }

    fn protocol(&mut self, line: String) -> SyncError {
        self.status.connected = false;
        self.note_error(SyncError::Protocol {
            pod: self.name.clone(),
            line,
        })
    }

    fn note_error(&mut self, e: SyncError) -> SyncError {
        self.source_error = false;
        self.status.errors += 1;
        self.status.last_error = Some(e.to_string());
        e
    }
}

impl SyncStats {
    fn add(&mut self, other: &SyncStats) {
        self.written += other.written;
        self.deleted += other.deleted;
        self.bytes += other.bytes;
        self.unchanged += other.unchanged;
        self.batches += other.batches;
    }
}
