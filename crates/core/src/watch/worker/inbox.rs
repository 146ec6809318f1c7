//! Where notify's callbacks leave events for the watcher's thread: a bounded,
//! coalescing set of changed paths and a one-slot wake-up.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use notify::event::{AccessKind, AccessMode, CreateKind, ModifyKind, RemoveKind, RenameMode};
use notify::EventKind;

/// Paths collected per burst before the burst counts as "everything changed".
pub(crate) const MAX_PENDING: usize = 8192;

/// Where notify's callbacks leave events for the thread: a bounded, coalescing set
/// and a one-slot wake-up.
#[derive(Debug)]
pub(crate) struct Inbox {
    pending: Mutex<Pending>,
    wake: SyncSender<()>,
    pub(crate) stop: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
pub(super) struct Pending {
    /// Changed paths, with whether each is a directory when the event says so.
    pub(super) changed: HashMap<PathBuf, Option<bool>>,
    /// Paths that may be new directories to watch.
    pub(super) created: Vec<PathBuf>,
    /// Paths that may be watched directories that went away.
    pub(super) gone: Vec<PathBuf>,
    /// More changes than [`MAX_PENDING`], or the kernel's queue overflowed.
    pub(super) overflow: bool,
    /// Directory events were lost: walk everything again.
    pub(super) rescan: bool,
}

impl Inbox {
    pub(crate) fn new() -> (Arc<Self>, Receiver<()>) {
        let (wake, rx) = std::sync::mpsc::sync_channel(1);
        let inbox = Self {
            pending: Mutex::default(),
            wake,
            stop: Arc::default(),
        };
        (Arc::new(inbox), rx)
    }

    pub(crate) fn wake(&self) {
        // Full: a wake-up is already due.
        let _ = self.wake.try_send(());
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// notify's callback: runs on notify's threads, so it only records.
    pub(super) fn handle(&self, res: notify::Result<notify::Event>) {
        let ev = match res {
            Ok(ev) => ev,
            Err(e) => {
                tracing::debug!(error = %e, "watch error event");
                return;
            }
        };
        if ev.need_rescan() {
            let mut p = self.lock();
            p.overflow = true;
            p.rescan = true;
            drop(p);
            self.wake();
            return;
        }
        let (is_dir, created, gone) = match ev.kind {
            // A write ends with the close: it extends the burst.
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => (None, false, false),
            // Reads (the restarted service opening its files) are not changes.
            EventKind::Access(_) => return,
            EventKind::Create(CreateKind::Folder) => (Some(true), true, false),
            EventKind::Create(CreateKind::File) => (Some(false), false, false),
            EventKind::Create(_) => (None, true, false),
            EventKind::Remove(RemoveKind::Folder) => (Some(true), false, true),
            EventKind::Remove(RemoveKind::File) => (Some(false), false, false),
            EventKind::Remove(_) => (None, false, true),
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) => (None, false, true),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => (None, true, false),
            // The pair of From and To, already reported one by one.
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => return,
            EventKind::Modify(ModifyKind::Name(_)) => (None, true, true),
            EventKind::Modify(_) | EventKind::Any | EventKind::Other => (None, false, false),
        };
        let mut p = self.lock();
        for path in ev.paths {
            p.record(path, is_dir, created, gone);
        }
        drop(p);
        self.wake();
    }

    /// Records one changed path; the caller wakes the thread.
    pub(crate) fn record(&self, path: PathBuf, is_dir: Option<bool>, created: bool, gone: bool) {
        self.lock().record(path, is_dir, created, gone);
    }
}

impl Pending {
    fn record(&mut self, path: PathBuf, is_dir: Option<bool>, created: bool, gone: bool) {
        if created {
            if self.created.len() < MAX_PENDING {
                self.created.push(path.clone());
            } else {
                self.rescan = true;
            }
        }
        if gone {
            if self.gone.len() < MAX_PENDING {
                self.gone.push(path.clone());
            } else {
                self.rescan = true;
            }
        }
        if self.overflow {
            return;
        }
        if self.changed.len() >= MAX_PENDING && !self.changed.contains_key(&path) {
            // Past this, the paths tell nothing a rescan would not.
            self.overflow = true;
            self.changed = HashMap::new();
            return;
        }
        let slot = self.changed.entry(path).or_insert(is_dir);
        if is_dir.is_some() {
            *slot = is_dir;
        }
    }
}
