//! The chunk store: content-addressed, zstd-compressed chunks shared by every snapshot
//! of every environment, `<data dir>/snapshots/chunks/<2 hex>/<blake3 hex>.zst`.
//!
//! Chunking is fixed-size ([`CHUNK_SIZE`] per file, the last one shorter), not
//! content-defined. The data is what databases keep on disk: PostgreSQL changes its
//! files in place, 8 KiB pages at fixed offsets, and appends; a fixed grid keeps every
//! unchanged region on the same boundaries, so what CDC buys (insertions that shift the
//! bytes after them) does not happen there. Small files (most of a PostgreSQL cluster)
//! are one chunk each either way. The one rewritten file, Redis's RDB dump, is small for
//! a development database. Fixed chunks need no rolling hash and no extra crate.
//!
//! A save writes its new chunks through a [`Writer`]: compressed by worker threads
//! (one per core, fed through a bounded channel, so hashing, compressing and the
//! stream overlap) into a staging directory beside the store, with no fsync each;
//! [`Writer::finish`] then flushes the file system once (`syncfs`), renames them into
//! place and flushes again, before the caller writes the manifest that names them. A
//! crash leaves either a staging directory (removed by the next save) or whole,
//! durable chunks: a chunk's name is never there before its bytes are on disk. One
//! fsync per 64 KiB chunk was the save's largest cost (16,384 of them per GiB).
//! Reading one checks its hash, so a damaged chunk is found before anything is
//! written from it; [`Prefetch`] reads a list of chunks ahead on worker threads, in
//! order, for a restore.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::SnapshotError;

/// The staging directory of a save's chunks, beside `chunks/`: `.incoming-<pid>`.
const STAGING_PREFIX: &str = ".incoming-";

/// Bytes of a file per chunk. 64 KiB: a PostgreSQL restart writes a checkpoint record
/// into its 16 MiB WAL segment, and the chunk around it is stored again; WAL compresses
/// poorly, so at 1 MiB that chunk alone was 4 % of a fresh cluster's store, at 256 KiB
/// 1.5 %. A 1 GiB volume is 16,384 chunks, one file each.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// zstd's level: 3 (its default) compresses a database's pages at hundreds of MB/s.
const LEVEL: i32 = 3;
/// Chunks queued per worker (64 KiB each): what a save holds in memory besides
/// the one being read.
const QUEUE_PER_WORKER: usize = 8;
/// At most this many worker threads, whatever the machine.
const WORKERS_MAX: usize = 4;

fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, WORKERS_MAX)
}

fn hash_hex(data: &[u8]) -> String {
    blake3::hash(data).to_hex().to_string()
}

#[derive(Debug, Clone)]
pub struct Chunks {
    dir: PathBuf,
}

impl Chunks {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, hash: &str) -> PathBuf {
        self.dir.join(&hash[..2]).join(format!("{hash}.zst"))
    }

    fn exists(&self, hash: &str) -> bool {
        self.path(hash).exists()
    }

    /// A writer for one save's new chunks (see the module's doc). Removes what a
    /// save cut short left in the staging area.
    pub fn writer(&self) -> Result<Writer, SnapshotError> {
        let parent = self.dir.parent().unwrap_or(&self.dir).to_path_buf();
        let staging = parent.join(format!("{STAGING_PREFIX}{}", std::process::id()));
        for entry in std::fs::read_dir(&parent).into_iter().flatten().flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
            {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let io = |source| SnapshotError::Io {
            path: staging.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        std::fs::create_dir(&staging).map_err(io)?;
        let (tx, rx) = sync_channel::<(String, Vec<u8>)>(QUEUE_PER_WORKER * workers());
        let rx = Arc::new(Mutex::new(rx));
        let written = Arc::new(AtomicU64::new(0));
        let threads = (0..workers())
            .map(|i| {
                let (rx, dir, written) = (rx.clone(), staging.clone(), written.clone());
                std::thread::Builder::new()
                    .name(format!("snapshot-zstd-{i}"))
                    .spawn(move || compress_worker(&rx, &dir, &written))
                    .map_err(io)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Writer {
            store: self.clone(),
            staging,
            pending: HashSet::new(),
            tx: Some(tx),
            threads,
            written,
            finished: false,
        })
    }

    /// The chunk's bytes, checked against its name.
    pub fn get(&self, hash: &str) -> Result<Vec<u8>, SnapshotError> {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(SnapshotError::BadManifest(format!(
                "`{hash}` is not a chunk hash"
            )));
        }
        let path = self.path(hash);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SnapshotError::MissingChunk {
                    hash: hash.to_owned(),
                })
            }
            Err(source) => return Err(SnapshotError::Io { path, source }),
        };
        let mut data = Vec::with_capacity(CHUNK_SIZE);
        // Bounded: a chunk never holds more than CHUNK_SIZE bytes, so a damaged frame
        // that claims more is cut there (and then fails the hash).
        let decoded = zstd::Decoder::new(file)
            .and_then(|d| d.take(CHUNK_SIZE as u64 + 1).read_to_end(&mut data));
        if decoded.is_err() || blake3::hash(&data).to_hex().as_str() != hash {
            return Err(SnapshotError::CorruptChunk {
                hash: hash.to_owned(),
                path,
            });
        }
        Ok(data)
    }

    /// Bytes on disk of the chunks in `hashes` (those that exist).
    pub fn stored_size<'a>(&self, hashes: impl IntoIterator<Item = &'a String>) -> u64 {
        hashes
            .into_iter()
            .filter_map(|h| std::fs::metadata(self.path(h)).ok())
            .map(|m| m.len())
            .sum()
    }

    /// Removes every chunk not in `keep`; returns the bytes freed.
    pub fn collect_garbage(
        &self,
        keep: &std::collections::HashSet<String>,
    ) -> Result<u64, SnapshotError> {
        let mut freed = 0;
        let Ok(dirs) = std::fs::read_dir(&self.dir) else {
            return Ok(0);
        };
        for dir in dirs.flatten() {
            for entry in std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let hash = name.strip_suffix(".zst").unwrap_or(&name);
                if keep.contains(hash) {
                    continue;
                }
                let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
                std::fs::remove_file(entry.path()).map_err(|source| SnapshotError::Io {
                    path: entry.path(),
                    source,
                })?;
                freed += len;
            }
        }
        Ok(freed)
    }

    /// Bytes on disk of the whole store.
    pub fn total_size(&self) -> u64 {
        let mut total = 0;
        for dir in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            for entry in std::fs::read_dir(dir.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                total += entry.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
        total
    }
}

/// Writes one save's new chunks (see the module's doc). [`Writer::put`] hashes on
/// the caller's thread (the hash names the chunk at once) and hands what the store
/// lacks to the workers; [`Writer::finish`] makes them durable and visible.
/// Dropped without `finish`, it removes what it staged.
#[derive(Debug)]
pub struct Writer {
    store: Chunks,
    staging: PathBuf,
    /// Chunks handed to the workers by this save (not in the store yet).
    pending: HashSet<String>,
    tx: Option<SyncSender<(String, Vec<u8>)>>,
    threads: Vec<JoinHandle<Result<(), SnapshotError>>>,
    written: Arc<AtomicU64>,
    finished: bool,
}

impl Writer {
    /// The chunk's hash; stores it unless the store or this save has it. Blocks
    /// while the workers' queue is full.
    pub fn put(&mut self, data: &[u8]) -> Result<String, SnapshotError> {
        let hash = hash_hex(data);
        if self.pending.contains(&hash) || self.store.exists(&hash) {
            return Ok(hash);
        }
        let sent = self
            .tx
            .as_ref()
            .is_some_and(|tx| tx.send((hash.clone(), data.to_vec())).is_ok());
        if !sent {
            // A worker failed and they all stopped: its error says why.
            return Err(self.join().err().unwrap_or_else(|| SnapshotError::Io {
                path: self.staging.clone(),
                source: std::io::Error::other("the chunk writers stopped"),
            }));
        }
        self.pending.insert(hash.clone());
        Ok(hash)
    }

    /// Compressed bytes this save has written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    fn join(&mut self) -> Result<(), SnapshotError> {
        self.tx = None;
        let mut first = Ok(());
        for t in self.threads.drain(..) {
            let r = t.join().unwrap_or_else(|_| {
                Err(SnapshotError::Io {
                    path: PathBuf::from("a chunk writer thread"),
                    source: std::io::Error::other("panicked"),
                })
            });
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Waits for the workers, flushes, moves the staged chunks into the store and
    /// flushes again. Returns the compressed bytes written.
    pub fn finish(mut self) -> Result<u64, SnapshotError> {
        self.join()?;
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotError::Io { path, source }
        };
        flush(&self.staging).map_err(io(&self.staging))?;
        let mut dirs = HashSet::new();
        for hash in &self.pending {
            let to = self.store.path(hash);
            let parent = to.parent().unwrap_or(&self.store.dir).to_path_buf();
            if dirs.insert(parent.clone()) {
                std::fs::create_dir_all(&parent).map_err(io(&parent))?;
            }
            let from = self.staging.join(format!("{hash}.zst"));
            std::fs::rename(&from, &to).map_err(io(&to))?;
        }
        flush(&self.store.dir).map_err(io(&self.store.dir))?;
        self.finished = true;
        let _ = std::fs::remove_dir(&self.staging);
        Ok(self.written())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.join();
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// Makes what was written under `dir` durable: the whole file system at once.
#[cfg(target_os = "linux")]
fn flush(dir: &Path) -> std::io::Result<()> {
    let d = std::fs::File::open(dir)?;
    nix::unistd::syncfs(&d).map_err(std::io::Error::from)
}

/// Makes what was written under `dir` durable: each file, then the directory
/// (no `syncfs` here).
#[cfg(not(target_os = "linux"))]
fn flush(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::File::open(&path)?.sync_all()?;
        }
    }
    std::fs::File::open(dir)?.sync_all()
}

fn compress_worker(
    rx: &Mutex<Receiver<(String, Vec<u8>)>>,
    dir: &Path,
    written: &AtomicU64,
) -> Result<(), SnapshotError> {
    let mut zstd = zstd::bulk::Compressor::new(LEVEL).map_err(|source| SnapshotError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    loop {
        // The lock is held only to take one job.
        let job = rx.lock().map(|r| r.recv());
        let Ok(Ok((hash, data))) = job else {
            return Ok(());
        };
        let path = dir.join(format!("{hash}.zst"));
        let io = |source| SnapshotError::Io {
            path: path.clone(),
            source,
        };
        let compressed = zstd.compress(&data).map_err(io)?;
        std::fs::write(&path, &compressed).map_err(io)?;
        written.fetch_add(compressed.len() as u64, Ordering::Relaxed);
    }
}

/// Chunks read and checked ahead of their reader, in order, on worker threads:
/// worker `i` reads chunks `i`, `i + n`, `i + 2n`... into its own bounded channel,
/// and [`Prefetch::next`] takes from each in turn. Dropping it stops the workers.
#[derive(Debug)]
pub struct Prefetch {
    queues: Vec<Receiver<Result<Vec<u8>, SnapshotError>>>,
    next: usize,
    left: usize,
    threads: Vec<JoinHandle<()>>,
}

impl Prefetch {
    pub fn new(store: &Chunks, hashes: Vec<String>) -> Self {
        let n = workers();
        let left = hashes.len();
        let hashes = Arc::new(hashes);
        let mut queues = Vec::with_capacity(n);
        let mut threads = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = sync_channel(QUEUE_PER_WORKER);
            let (store, hashes) = (store.clone(), hashes.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("snapshot-read-{i}"))
                .spawn(move || {
                    for hash in hashes.iter().skip(i).step_by(n) {
                        let r = store.get(hash);
                        let failed = r.is_err();
                        if tx.send(r).is_err() || failed {
                            return;
                        }
                    }
                });
            match spawned {
                Ok(t) => threads.push(t),
                // No thread: its chunks come out as this error.
                Err(e) => {
                    let (tx, rx) = sync_channel(1);
                    let _ = tx.send(Err(SnapshotError::Io {
                        path: PathBuf::from("a chunk reader thread"),
                        source: e,
                    }));
                    queues.push(rx);
                    continue;
                }
            }
            queues.push(rx);
        }
        Self {
            queues,
            next: 0,
            left,
            threads,
        }
    }

    /// The next chunk's bytes (checked), `None` after the last.
    pub fn next_chunk(&mut self) -> Option<Result<Vec<u8>, SnapshotError>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let q = &self.queues[self.next % self.queues.len()];
        self.next += 1;
        Some(q.recv().unwrap_or_else(|_| {
            Err(SnapshotError::Io {
                path: PathBuf::from("a chunk reader thread"),
                source: std::io::Error::other("stopped"),
            })
        }))
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing the queues ends each worker at its next send.
        self.queues.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_stored_once_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Chunks::new(dir.path().join("chunks"));
        let data = vec![7u8; 60_000];
        let mut w = store.writer().unwrap();
        let hash = w.put(&data).unwrap();
        assert_eq!(w.put(&data).unwrap(), hash, "queued once");
        let written = w.finish().unwrap();
        assert!(written > 0 && written < 1000, "compressed: {written}");
        let mut w = store.writer().unwrap();
        assert_eq!(w.put(&data).unwrap(), hash);
        assert_eq!(w.finish().unwrap(), 0, "stored once");
        assert_eq!(store.get(&hash).unwrap(), data);
        let other: Vec<u8> = (0..70_000u32).map(|i| (i % 253) as u8).collect();
        let (a, b) = other.split_at(CHUNK_SIZE);
        let mut w = store.writer().unwrap();
        let hashes = vec![w.put(a).unwrap(), hash.clone(), w.put(b).unwrap()];
        drop(w);
        assert!(
            matches!(
                store.get(&hashes[0]),
                Err(SnapshotError::MissingChunk { .. })
            ),
            "a writer dropped unfinished leaves nothing in the store"
        );
        let mut w = store.writer().unwrap();
        for part in [a, b] {
            w.put(part).unwrap();
        }
        w.finish().unwrap();
        let mut ahead = Prefetch::new(&store, hashes);
        assert_eq!(ahead.next_chunk().unwrap().unwrap(), a);
        assert_eq!(ahead.next_chunk().unwrap().unwrap(), data);
        assert_eq!(ahead.next_chunk().unwrap().unwrap(), b);
        assert!(ahead.next_chunk().is_none());
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(
            leftovers,
            vec![std::ffi::OsString::from("chunks")],
            "no staging dir left"
        );
        let path = store.path(&hash);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 5;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(
            store.get(&hash),
            Err(SnapshotError::CorruptChunk { .. })
        ));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            store.get(&hash),
            Err(SnapshotError::MissingChunk { .. })
        ));
    }
}
