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
//! A chunk is written to a temporary name in its directory and renamed, so a crash
//! leaves either no chunk or a whole one; reading one checks its hash, so a damaged
//! chunk is found before anything is written from it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::SnapshotError;

/// Bytes of a file per chunk. 64 KiB: a PostgreSQL restart writes a checkpoint record
/// into its 16 MiB WAL segment, and the chunk around it is stored again; WAL compresses
/// poorly, so at 1 MiB that chunk alone was 4 % of a fresh cluster's store, at 256 KiB
/// 1.5 %. A 1 GiB volume is 16,384 chunks, one file each.
pub const CHUNK_SIZE: usize = 64 * 1024;
/// zstd's level: 3 (its default) compresses a database's pages at hundreds of MB/s.
const LEVEL: i32 = 3;

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

    /// Stores `data` unless a chunk with its hash is there. Returns the hash and the
    /// bytes written to disk (0 when it was there).
    pub fn put(&self, data: &[u8]) -> Result<(String, u64), SnapshotError> {
        let hash = blake3::hash(data).to_hex().to_string();
        let path = self.path(&hash);
        if path.exists() {
            return Ok((hash, 0));
        }
        let io = |source| SnapshotError::Io {
            path: path.clone(),
            source,
        };
        let parent = path.parent().unwrap_or(&self.dir);
        std::fs::create_dir_all(parent).map_err(io)?;
        let compressed = zstd::bulk::compress(data, LEVEL).map_err(io)?;
        let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(io)?;
        tmp.write_all(&compressed).map_err(io)?;
        tmp.as_file().sync_data().map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        Ok((hash, compressed.len() as u64))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_stored_once_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Chunks::new(dir.path().join("chunks"));
        let data = vec![7u8; 60_000];
        let (hash, written) = store.put(&data).unwrap();
        assert!(written > 0 && written < 1000, "compressed: {written}");
        assert_eq!(store.put(&data).unwrap(), (hash.clone(), 0), "stored once");
        assert_eq!(store.get(&hash).unwrap(), data);
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
