//! Polling, for the directories past the inotify budget: each interval, every polled
//! directory is listed and its entries' metadata compared with the last look.
//!
//! Our own rather than notify's `PollWatcher`, which compares modification times in
//! whole seconds and so misses a second save within the same second. Here a change
//! of the nanosecond mtime, ctime, size, inode or mode counts. Only directories past
//! the budget are polled, so an environment within it runs no timer at all.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::worker::Inbox;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    mtime: (i64, i64),
    ctime: (i64, i64),
    size: u64,
    ino: u64,
    mode: u32,
}

impl Stamp {
    fn of(m: &std::fs::Metadata) -> Self {
        Self {
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
            size: m.size(),
            ino: m.ino(),
            mode: m.mode(),
        }
    }

    fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }
}

type Listing = HashMap<OsString, Stamp>;

/// Directories polled by one watcher, and the thread polling them.
#[derive(Debug)]
pub(crate) struct Poller {
    dirs: Arc<Mutex<BTreeMap<PathBuf, Listing>>>,
    /// Dropped to stop the thread (its receiver sees the disconnect at once).
    _stop: Sender<()>,
}

impl Poller {
    pub(crate) fn start(inbox: Arc<Inbox>, interval: Duration) -> std::io::Result<Self> {
        let dirs: Arc<Mutex<BTreeMap<PathBuf, Listing>>> = Arc::default();
        let (stop, stopped) = std::sync::mpsc::channel();
        let polled = dirs.clone();
        std::thread::Builder::new()
            .name("devenv-watch-poll".into())
            .spawn(move || run(&polled, &inbox, &stopped, interval))?;
        Ok(Self { dirs, _stop: stop })
    }

    /// Starts polling `dir`; false when it cannot be read.
    pub(crate) fn watch(&self, dir: &Path) -> bool {
        let Some(listing) = list(dir) else {
            return false;
        };
        self.lock().insert(dir.to_path_buf(), listing);
        true
    }

    pub(crate) fn unwatch(&self, dir: &Path) {
        self.lock().remove(dir);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<PathBuf, Listing>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn run(
    dirs: &Mutex<BTreeMap<PathBuf, Listing>>,
    inbox: &Inbox,
    stopped: &Receiver<()>,
    interval: Duration,
) {
    loop {
        match stopped.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let mut dirs = dirs.lock().unwrap_or_else(|p| p.into_inner());
        let mut any = false;
        for (dir, old) in dirs.iter_mut() {
            let Some(new) = list(dir) else {
                // The directory itself went away: its parent's listing reports it.
                continue;
            };
            for (name, stamp) in &new {
                match old.get(name) {
                    Some(o) if o == stamp => {}
                    Some(_) => {
                        inbox.record(dir.join(name), Some(stamp.is_dir()), false, false);
                        any = true;
                    }
                    None => {
                        let is_dir = stamp.is_dir();
                        inbox.record(dir.join(name), Some(is_dir), is_dir, false);
                        any = true;
                    }
                }
            }
            for (name, stamp) in old.iter() {
                if !new.contains_key(name) {
                    let is_dir = stamp.is_dir();
                    inbox.record(dir.join(name), Some(is_dir), false, is_dir);
                    any = true;
                }
            }
            *old = new;
        }
        drop(dirs);
        if any {
            inbox.wake();
        }
    }
}

/// The entries of `dir` with their metadata (symlinks as themselves).
fn list(dir: &Path) -> Option<Listing> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut out = HashMap::new();
    for e in entries.flatten() {
        if let Ok(m) = std::fs::symlink_metadata(e.path()) {
            out.insert(e.file_name(), Stamp::of(&m));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_write_within_the_same_second_is_a_change() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("a");
        std::fs::write(&f, "1").unwrap();
        let before = list(t.path()).unwrap();
        std::fs::write(&f, "22").unwrap();
        let after = list(t.path()).unwrap();
        assert_ne!(before, after);
        assert!(!after[&OsString::from("a")].is_dir());
    }
}
