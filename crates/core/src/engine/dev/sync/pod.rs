//! The sync of one running dev pod: a session per rule, the initial sync, then every
//! batch of changes followed by the service's `onSync`, and a fresh initial sync after
//! a broken stream.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::BufReader;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Backlog, Pending, PodSync, PodsCtx, Verified, VerifyReply};
use crate::config::{Command, OnSync};
use crate::kube::ClusterConn;
use crate::logs::Stream;
use crate::sync::lines::{read_line, skip_line, Line};
use crate::sync::{Change, Difference, Session, SessionStatus, SyncError, SyncTarget};

/// Reconnect back-off after a broken session: first and last.
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(15);
/// Quiet time after which every session is pinged, and how long the answer may take.
const KEEPALIVE: Duration = Duration::from_secs(30);
const KEEPALIVE_LIMIT: Duration = Duration::from_secs(10);
/// A session that lasted this long is reopened without waiting when it breaks.
const STABLE: Duration = Duration::from_secs(10);
/// An `onSync` command running longer is abandoned (its output stops being read).
const ON_SYNC_LIMIT: Duration = Duration::from_secs(300);
/// Of an `onSync` command's output, the lines kept (per stream) and their length.
const ON_SYNC_LINES: usize = 200;
const ON_SYNC_LINE_MAX: usize = 4096;
/// The phase of a rule whose local directory is not there to sync from.
const SOURCE_MISSING: &str = "source-missing";

/// The sync of one pod.
pub(super) struct PodTask {
    pub(super) ctx: PodsCtx,
    pub(super) pod: String,
    pub(super) container: String,
    pub(super) backlog: Arc<Backlog>,
    pub(super) status: Arc<Mutex<Vec<PodSync>>>,
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

    pub(super) async fn run(
        self,
        mut verify: mpsc::Receiver<VerifyReply>,
        cancel: CancellationToken,
    ) {
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
        if files + deleted > 0 {
            self.ctx.mode.traffic();
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
                    if written + deleted > 0 {
                        self.ctx.mode.traffic();
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
    kenv: &ClusterConn,
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
}
