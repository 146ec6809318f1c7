//! `devenv snapshot` of persistent volume claims on the cluster: a kubernetes
//! service's persistent volumes and a kubernetes preset's data claim, copied through
//! a helper pod (`kube::volcopy`) as a tar stream over exec, cut into the same chunk
//! store as local data while it arrives.
//!
//! Save lists the claim's files first (size and mtime) and streams only those that
//! changed since the last snapshot's record of the claim: an unchanged file (same
//! size and mtime, its mtime before the second the last listing was made, the way
//! git treats racy timestamps) keeps its recorded chunks without being read.
//!
//! Restore stages every claim's files inside the claim (`.devenv-restore`) while the
//! environment runs, every chunk checked as it is sent; then, with the environment
//! down, swaps them in by renames, the old files set aside until all data sets are
//! in (a failure puts them back); then the old files are removed. A claim that is
//! gone is made again from its recorded spec.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, BufWriter};
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio_util::io::SyncIoBridge;

use crate::config::{Environment, RuntimeKind, VolumeKind};
use crate::kube::volcopy::{self, Helper};
use crate::kube::{ClusterConn, KubeError};
use crate::snapshot::{tarstream, Chunks, Dataset, Entry, EntryKind, SnapshotError};

use super::EngineError;

/// Longest listing of a claim's files read (about 50 bytes a file: 400k files).
const LIST_MAX: usize = 20 * 1024 * 1024;
/// Bytes buffered between the tar stream and the exec.
const STREAM_BUFFER: usize = 256 * 1024;

/// A claim to copy and the kubernetes services that mount it.
#[derive(Debug, Clone)]
pub(super) struct ClaimPlan {
    /// `pvc/<claim>`.
    pub id: String,
    pub claim: String,
    pub users: Vec<String>,
}

/// The environment's claims devenv makes: the persistent volumes kubernetes
/// services mount, and each kubernetes preset's data claim (`<service>-data`,
/// unless a volume is mounted at its data dir).
pub(super) fn claims(env: &Environment) -> Vec<ClaimPlan> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for svc in env
        .services
        .iter()
        .filter(|s| s.runtime == RuntimeKind::Kubernetes)
    {
        let mut own = Vec::new();
        for m in &svc.volumes {
            if let Some(v) = env.volumes.iter().find(|v| v.name == m.name) {
                if matches!(v.kind, VolumeKind::Persistent { .. }) {
                    own.push(v.name.clone());
                }
            }
        }
        if let Some(preset) = svc.preset {
            let data_dir = crate::kube::render::preset_data_dir(preset);
            if !svc.volumes.iter().any(|m| m.path == data_dir) {
                own.push(format!("{}-data", svc.name));
            }
        }
        for claim in own {
            out.entry(claim).or_default().push(svc.name.clone());
        }
    }
    out.into_iter()
        .map(|(claim, users)| ClaimPlan {
            id: format!("pvc/{claim}"),
            claim,
            users,
        })
        .collect()
}

/// The claim a `pvc/<claim>` data set goes back to.
pub(super) fn claim_of(id: &str) -> Option<&str> {
    // A DNS subdomain, as Kubernetes names a claim: nothing a script could misread.
    id.strip_prefix("pvc/").filter(|c| {
        !c.is_empty()
            && c.len() <= 253
            && c.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            && !c.starts_with(['-', '.'])
    })
}

fn worker_failed(e: tokio::task::JoinError) -> SnapshotError {
    SnapshotError::Io {
        path: "the snapshot worker".into(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// What a save of one claim made.
pub(super) struct Saved {
    pub dataset: Dataset,
    pub written: u64,
    /// Files taken over unread from the last record.
    pub reused: usize,
    /// Bytes streamed from the cluster.
    pub streamed: u64,
}

/// A claim's helper pod (read-only) and the claim's spec, for a save.
pub(super) struct Open {
    pub helper: Helper,
    pub spec: serde_json::Value,
}

/// Starts the helper pod of `plan`'s claim for a save. It serves both the listing
/// that decides whether the claim changed (while its users run) and the copy.
pub(super) async fn open(
    conn: &ClusterConn,
    image: &str,
    plan: &ClaimPlan,
) -> Result<Open, EngineError> {
    let spec = volcopy::claim_spec(conn, &plan.claim)
        .await?
        .ok_or_else(|| {
            KubeError::new(
                format!(
                    "the claim {} does not exist in namespace {}",
                    plan.claim, conn.namespace
                ),
                "`devenv up` makes it",
            )
        })?;
    let helper = Helper::start(conn, &plan.claim, image, true).await?;
    Ok(Open { helper, spec })
}

/// The claim's listing now.
pub(super) async fn probe(helper: &Helper) -> Result<volcopy::Listing, EngineError> {
    let out = helper
        .output("listing the claim's files", volcopy::LIST, &[], LIST_MAX)
        .await?;
    Ok(volcopy::parse_list(&out))
}

/// Saves the claim open in `open`: lists it, streams the files that changed since
/// `prev` (the last record of this claim) through `tar` in the helper pod into
/// `chunks`. `progress(done, total)` as bytes arrive.
pub(super) async fn save(
    open: &Open,
    plan: &ClaimPlan,
    prev: Option<&Dataset>,
    chunks: Chunks,
    progress: Arc<dyn Fn(u64, u64) + Send + Sync>,
) -> Result<Saved, EngineError> {
    let (mut dataset, written, reused, streamed) =
        save_with(&open.helper, prev, chunks, progress).await?;
    dataset.id = plan.id.clone();
    dataset.claim = Some(open.spec.clone());
    Ok(Saved {
        dataset,
        written,
        reused,
        streamed,
    })
}

async fn save_with(
    helper: &Helper,
    prev: Option<&Dataset>,
    chunks: Chunks,
    progress: Arc<dyn Fn(u64, u64) + Send + Sync>,
) -> Result<(Dataset, u64, usize, u64), EngineError> {
    let listing = probe(helper).await?;
    let names = helper
        .output("listing the claim's entries", volcopy::NAMES, &[], LIST_MAX)
        .await?;
    let (kept, send, total) = pick(&volcopy::parse_names(&names), &listing.files, prev);
    let reused = kept.len();

    let mut run = helper
        .exec("tar of the claim", volcopy::TAR_NAMED, &[], true)
        .await?;
    let stdin = run.process.stdin();
    let stdout = run
        .process
        .stdout()
        .ok_or_else(|| KubeError::new("the helper's exec has no stdout", ""))?;
    // The names go in while the tar comes out (xargs starts tar before it has read
    // them all); stdin stays open until the end (closing the writer would end the
    // session).
    let feeder = tokio::spawn(async move {
        let mut stdin = stdin?;
        let _ = stdin.write_all(&send).await;
        let _ = stdin.shutdown().await;
        Some(stdin)
    });
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = done.clone();
    let captured = tokio::task::spawn_blocking(move || {
        let reader = BufReader::with_capacity(STREAM_BUFFER, SyncIoBridge::new(stdout));
        let sink = move |n: u64| {
            let d = counted.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
            progress(d, total);
        };
        tarstream::capture(reader, kept, &chunks, &sink)
    })
    .await
    .map_err(worker_failed)?;
    let stdin = feeder.await.ok().flatten();
    let ended = run.finish().await;
    drop(stdin);
    let (entries, written) = captured?;
    ended?;
    Ok((
        Dataset {
            id: String::new(),
            redis_rdb: false,
            skip: Vec::new(),
            entries,
            claim: None,
            listed_at: listing.clock,
            fingerprint: listing.trusted.then_some(listing.fingerprint),
        },
        written,
        reused,
        done.load(std::sync::atomic::Ordering::Relaxed),
    ))
}

/// Which entries to stream: every name except the regular files whose size and
/// mtime match `prev`'s record, recorded before `prev`'s listing second. Returns
/// the kept entries, the names to send (NUL-terminated) and the bytes to stream.
fn pick(
    names: &[Vec<u8>],
    files: &BTreeMap<String, (u64, i64)>,
    prev: Option<&Dataset>,
) -> (Vec<Entry>, Vec<u8>, u64) {
    let before: HashMap<&str, &Entry> = prev
        .map(|d| d.entries.iter().map(|e| (e.path.as_str(), e)).collect())
        .unwrap_or_default();
    let listed_at = prev.and_then(|d| d.listed_at);
    let (mut kept, mut send, mut total) = (Vec::new(), Vec::new(), 0);
    for raw in names {
        let rel = String::from_utf8_lossy(raw);
        let rel = rel.strip_prefix("./").unwrap_or(&rel);
        if let Some(&(size, mtime)) = files.get(rel) {
            let unchanged = before.get(rel).is_some_and(|e| {
                matches!(&e.kind, EntryKind::File { size: s, .. } if *s == size)
                    && e.mtime == Some(mtime)
                    && listed_at.is_some_and(|t| mtime < t)
            });
            if unchanged {
                kept.push((*before[rel]).clone());
                continue;
            }
            total += size;
        }
        send.extend_from_slice(raw);
        send.push(0);
    }
    (kept, send, total)
}

/// The claim's regular files now, (size, mtime) by path, for `diff`.
pub(super) async fn list(
    conn: &ClusterConn,
    image: &str,
    claim: &str,
) -> Result<BTreeMap<String, (u64, i64)>, EngineError> {
    let helper = Helper::start(conn, claim, image, true).await?;
    let out = helper
        .output("listing the claim's files", volcopy::LIST, &[], LIST_MAX)
        .await;
    helper.remove().await;
    Ok(volcopy::parse_list(&out?).files)
}

/// Files added, removed and changed (size or mtime) since the snapshot's record.
pub(super) fn diff(
    then: &Dataset,
    now: &BTreeMap<String, (u64, i64)>,
) -> (Vec<String>, Vec<String>, Vec<String>, u64) {
    let files: BTreeMap<&str, (u64, Option<i64>)> = then
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::File { size, .. } => Some((e.path.as_str(), (*size, e.mtime))),
            _ => None,
        })
        .collect();
    let (mut added, mut changed) = (Vec::new(), Vec::new());
    for (path, (size, mtime)) in now {
        match files.get(path.as_str()) {
            None => added.push(path.clone()),
            Some((s, m)) if s != size || *m != Some(*mtime) => changed.push(path.clone()),
            Some(_) => {}
        }
    }
    let removed = files
        .keys()
        .filter(|p| !now.contains_key(**p))
        .map(|p| (*p).to_owned())
        .collect();
    (added, removed, changed, now.values().map(|(s, _)| s).sum())
}

/// A claim with the snapshot's files staged in it, and its helper pod.
pub(super) struct Staged {
    helper: Helper,
    /// The root's mode, uid, gid from the snapshot.
    root: (u32, u32, u32),
    swapped: bool,
}

/// Stages `dataset` in its claim (made from the recorded spec when it is gone):
/// a helper pod unpacks the snapshot's tar into `.devenv-restore`.
pub(super) async fn stage(
    conn: &ClusterConn,
    image: &str,
    dataset: &Dataset,
    chunks: Chunks,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<Staged, EngineError> {
    let claim = claim_of(&dataset.id)
        .ok_or_else(|| SnapshotError::BadManifest(format!("unknown data set `{}`", dataset.id)))?;
    if let Some(spec) = &dataset.claim {
        volcopy::ensure_claim(conn, claim, spec).await?;
    }
    let root = dataset
        .entries
        .iter()
        .find(|e| e.path == ".")
        .map_or((0o755, 0, 0), |e| (e.mode, e.uid, e.gid));
    let helper = Helper::start(conn, claim, image, false).await?;
    match stage_with(&helper, dataset, chunks, progress).await {
        Ok(()) => Ok(Staged {
            helper,
            root,
            swapped: false,
        }),
        Err(e) => {
            let _ = helper
                .output(
                    "removing the staged files",
                    volcopy::CLEAN_STAGED,
                    &[],
                    4096,
                )
                .await;
            helper.remove().await;
            Err(e)
        }
    }
}

async fn stage_with(
    helper: &Helper,
    dataset: &Dataset,
    chunks: Chunks,
    progress: Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<(), EngineError> {
    let mut run = helper
        .exec("unpacking the snapshot", volcopy::UNTAR_STAGED, &[], true)
        .await?;
    let stdin = run
        .process
        .stdin()
        .ok_or_else(|| KubeError::new("the helper's exec has no stdin", ""))?;
    let entries = dataset.entries.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut bridge = SyncIoBridge::new(stdin);
        let r = {
            let mut out = BufWriter::with_capacity(STREAM_BUFFER, &mut bridge);
            tarstream::write(&mut out, &entries, &chunks, &*progress)
        };
        if r.is_ok() {
            let _ = bridge.shutdown();
        }
        (r, bridge.into_inner())
    })
    .await
    .map_err(worker_failed)?;
    let (r, stdin) = written;
    if let Err(e) = r {
        drop(stdin);
        let _ = run.finish().await;
        return Err(e.into());
    }
    let ended = run.finish().await;
    drop(stdin);
    Ok(ended?)
}

/// Swaps each staged claim's files in (the old set aside). On a failure, puts back
/// those swapped.
pub(super) async fn swap(staged: &mut [Staged]) -> Result<(), EngineError> {
    for i in 0..staged.len() {
        let s = &staged[i];
        let (mode, uid, gid) = s.root;
        let args = [format!("{mode:o}"), uid.to_string(), gid.to_string()];
        let r = s
            .helper
            .output(
                "swapping the restored files in",
                volcopy::SWAP,
                &args,
                64 * 1024,
            )
            .await;
        staged[i].swapped = true;
        if let Err(e) = r {
            undo(staged).await;
            return Err(e.into());
        }
    }
    Ok(())
}

/// Puts back the old files of the swapped claims (a later data set failed).
pub(super) async fn undo(staged: &mut [Staged]) {
    for s in staged.iter_mut().filter(|s| s.swapped) {
        if let Err(e) = s
            .helper
            .output("putting the old files back", volcopy::UNDO, &[], 64 * 1024)
            .await
        {
            tracing::warn!(pod = %s.helper.name, "snapshot restore: {e}");
        }
        s.swapped = false;
    }
}

/// Ends a restore: removes the set-aside old files (`commit`) or the staged ones,
/// and the helper pods.
pub(super) async fn finish(staged: Vec<Staged>, commit: bool) {
    for s in staged {
        let script = if commit {
            volcopy::COMMIT
        } else {
            volcopy::CLEAN_STAGED
        };
        if let Err(e) = s
            .helper
            .output("removing the old files", script, &[], 64 * 1024)
            .await
        {
            tracing::warn!(pod = %s.helper.name, "snapshot restore: {e}");
        }
        s.helper.remove().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, size: u64, mtime: i64) -> Entry {
        Entry {
            path: path.into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: Some(mtime),
            kind: EntryKind::File {
                size,
                chunks: vec!["h".into()],
            },
        }
    }

    #[test]
    fn only_files_changed_or_too_recent_to_trust_are_streamed_again() {
        let prev = Dataset {
            id: "pvc/x".into(),
            redis_rdb: false,
            skip: Vec::new(),
            entries: vec![
                file("same", 10, 100),
                file("grown", 10, 100),
                file("touched", 10, 100),
                file("racy", 10, 200),
            ],
            claim: None,
            listed_at: Some(200),
            fingerprint: None,
        };
        let files: BTreeMap<String, (u64, i64)> = [
            ("same", (10, 100)),
            ("grown", (11, 100)),
            ("touched", (10, 101)),
            ("racy", (10, 200)),
            ("new", (5, 300)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let names: Vec<Vec<u8>> = [
            ".",
            "./same",
            "./grown",
            "./touched",
            "./racy",
            "./new",
            "./d",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
        let (kept, send, total) = pick(&names, &files, Some(&prev));
        assert_eq!(kept, vec![file("same", 10, 100)]);
        assert_eq!(
            send,
            b".\0./grown\0./touched\0./racy\0./new\0./d\0".to_vec()
        );
        assert_eq!(total, 11 + 10 + 10 + 5);
        let (kept, _, total) = pick(&names, &files, None);
        assert!(kept.is_empty());
        assert_eq!(total, 10 + 11 + 10 + 10 + 5);
    }
}
