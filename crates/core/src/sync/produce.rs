//! The producer side of a sync session: what to send for a set of changed paths
//! (`plan_changes`), and the batches turned into tar frames on a blocking thread
//! (`produce`), handed to the session through its bounded channel.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::time::Instant;

use tokio::sync::mpsc;

use super::error::SyncError;
use super::exclude::Excludes;
use super::local::LocalRoot;
use super::path::RelPath;
use super::plan::{Batch, Plan};
use super::session::CHUNK;
use super::tar;
use super::tree::Kind;

pub(super) enum Frame {
    Data(Vec<u8>),
    End(Sent),
    Failed(SyncError),
}

/// A batch as handed to the stream, waiting for its ack.
pub(super) struct Sent {
    pub(super) id: u64,
    pub(super) deletes: Vec<RelPath>,
    pub(super) written: Vec<(RelPath, Kind)>,
    pub(super) content_bytes: u64,
    /// Paths whose content changed while they were being sent.
    pub(super) stale: Vec<RelPath>,
    pub(super) wire_bytes: u64,
    pub(super) at: Instant,
}

/// The plan for changed `paths`, given what the container holds (`model`).
pub(super) fn plan_changes(
    root: &LocalRoot,
    excludes: &Excludes,
    model: &BTreeMap<RelPath, Kind>,
    pinned: &BTreeSet<RelPath>,
    paths: &[RelPath],
) -> Result<Plan, SyncError> {
    let mut plan = Plan::default();
    let mut deletes = std::collections::BTreeSet::new();
    for path in paths {
        let local = root.entry(path)?;
        if pinned.contains(path) && local.as_ref().is_some_and(|e| e.kind != Kind::Dir) {
            // It holds names sync can't handle: not replaced by a file or a link.
            continue;
        }
        let is_dir = local.as_ref().is_some_and(|e| e.kind == Kind::Dir);
        if excludes.excludes_within(path, is_dir) {
            continue;
        }
        let Some(entry) = local else {
            deletes.insert(path.clone());
            continue;
        };
        // Parents the container lacks (or holds as something else) come along.
        for a in path.ancestors() {
            match model.get(&a) {
                Some(Kind::Dir) => {}
                other => {
                    if other.is_some() {
                        deletes.insert(a.clone());
                    }
                    if let Some(e) = root.entry(&a)? {
                        plan.sends.insert(a, e);
                    }
                }
            }
        }
        if model.get(path).is_some_and(|k| *k != entry.kind) {
            deletes.insert(path.clone());
        }
        if entry.kind == Kind::Dir {
            // Everything below, and removal of what the container has there but the
            // local disk no longer does.
            let (below, _) = root.scan(Some(path), excludes)?;
            for (p, k) in model
                .range(path.clone()..)
                .take_while(|(k, _)| k.as_str().starts_with(path.as_str()))
                .filter(|(k, _)| k.starts_with(path) && *k != path)
            {
                match below.get(p) {
                    Some(e) if e.kind == *k => {}
                    Some(_) => {
                        deletes.insert(p.clone());
                    }
                    None if !excludes.excludes_within(p, *k == Kind::Dir) => {
                        deletes.insert(p.clone());
                    }
                    None => {}
                }
            }
            plan.sends.extend(below);
        }
        plan.sends.insert(path.clone(), entry);
    }
    // A directory holding names sync can't handle goes child by child, never whole.
    for p in pinned {
        if deletes.remove(p) {
            deletes.extend(
                model
                    .range(p.clone()..)
                    .take_while(|(k, _)| k.as_str().starts_with(p.as_str()))
                    .filter(|(k, _)| k.starts_with(p) && *k != p && !pinned.contains(*k))
                    .map(|(k, _)| k.clone()),
            );
        }
    }
    // A delete inside another delete is redundant.
    let all = deletes.clone();
    plan.deletes = deletes
        .into_iter()
        .filter(|d| !d.ancestors().any(|a| all.contains(&a)))
        .collect();
    Ok(plan)
}

/// Builds the batches' bytes in a blocking thread, reading files as it goes; at most
/// the channel's capacity of chunks is buffered.
pub(super) fn produce(
    root: &LocalRoot,
    batches: Vec<Batch>,
    first_id: u64,
    tx: &mpsc::Sender<Frame>,
) {
    for (i, batch) in batches.into_iter().enumerate() {
        let id = first_id + i as u64;
        match produce_batch(root, &batch, id, tx) {
            Ok(Some(sent)) => {
                if tx.blocking_send(Frame::End(sent)).is_err() {
                    return;
                }
            }
            Ok(None) => return,
            Err(e) => {
                let _ = tx.blocking_send(Frame::Failed(e));
                return;
            }
        }
    }
}

/// `Ok(None)` when the receiving side went away.
fn produce_batch(
    root: &LocalRoot,
    batch: &Batch,
    id: u64,
    tx: &mpsc::Sender<Frame>,
) -> Result<Option<Sent>, SyncError> {
    let mut buf = batch.head(id);
    let mut stale = Vec::new();
    let mut content_bytes = 0;
    let mut chunk = vec![0u8; CHUNK];
    for (path, entry) in &batch.entries {
        tar::append_header(&mut buf, path, entry);
        if entry.kind != Kind::File {
            continue;
        }
        // Exactly entry.size bytes, whatever the file holds now: the receiver reads the
        // size announced. A file that changed meanwhile is sent again afterwards.
        // Opened below the root without following a symlink: a file or directory
        // replaced by a link since the plan sends zeros (and again later), never
        // what the link points to.
        let mut left = entry.size;
        match root.open_file(path) {
            Ok(mut file) => {
                while left > 0 {
                    let want = chunk.len().min(left as usize);
                    let n = match file.read(&mut chunk[..want]) {
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(_) => 0,
                    };
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    left -= n as u64;
                    if buf.len() >= CHUNK
                        && tx
                            .blocking_send(Frame::Data(std::mem::take(&mut buf)))
                            .is_err()
                    {
                        return Ok(None);
                    }
                }
                let grew = file.read(&mut chunk[..1]).is_ok_and(|n| n > 0);
                if left > 0 || grew {
                    stale.push(path.clone());
                }
            }
            Err(_) => stale.push(path.clone()),
        }
        buf.resize(buf.len() + left as usize, 0);
        buf.resize(buf.len() + tar::padding(entry.size), 0);
        content_bytes += entry.size;
    }
    if !batch.entries.is_empty() {
        buf.extend_from_slice(&tar::END);
    }
    if tx.blocking_send(Frame::Data(buf)).is_err() {
        return Ok(None);
    }
    Ok(Some(Sent {
        id,
        deletes: batch.deletes.clone(),
        written: batch
            .entries
            .iter()
            .map(|(p, e)| (p.clone(), e.kind))
            .collect(),
        content_bytes,
        stale,
        wire_bytes: 0,
        at: Instant::now(),
    }))
}
