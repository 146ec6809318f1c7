//! A directory as a snapshot holds it (its entries, each file as a list of chunks), and
//! back: read into the chunk store, written out of it into a fresh directory.

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::chunks::{Chunks, Prefetch, CHUNK_SIZE};
use super::SnapshotError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Relative to the directory, `/`-separated.
    pub path: String,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// A file's modification time (seconds since the epoch): a re-save of a volume
    /// on the cluster takes an unchanged file (same size and mtime, and mtime
    /// before the listing it was recorded at) from its last record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtime: Option<i64>,
    #[serde(flatten)]
    pub kind: EntryKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum EntryKind {
    Dir,
    File { size: u64, chunks: Vec<String> },
    Symlink { target: String },
}

/// Counts bytes as they are read or written, for progress.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// Bytes of the regular files under `dir` (what a capture will read).
pub fn size(dir: &Path) -> u64 {
    walk(dir)
        .map(|v| {
            v.iter()
                .filter(|(_, m)| m.is_file())
                .map(|(_, m)| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn walk(dir: &Path) -> Result<Vec<(PathBuf, std::fs::Metadata)>, SnapshotError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let io = |source| SnapshotError::Io {
            path: d.clone(),
            source,
        };
        let mut entries: Vec<_> = std::fs::read_dir(&d)
            .map_err(io)?
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path).map_err(|source| SnapshotError::Io {
                path: path.clone(),
                source,
            })?;
            if meta.is_dir() {
                stack.push(path.clone());
            }
            out.push((path, meta));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Reads `dir` into the store. `skip` names top-level entries left out. Returns the
/// entries and the bytes newly written to the store.
pub fn capture<S: AsRef<str>>(
    dir: &Path,
    skip: &[S],
    store: &Chunks,
    progress: Progress<'_>,
) -> Result<(Vec<Entry>, u64), SnapshotError> {
    let mut writer = store.writer()?;
    let entries = read_tree(dir, skip, &mut |data| {
        let hash = writer.put(data)?;
        progress(data.len() as u64);
        Ok(hash)
    })?;
    Ok((entries, writer.finish()?))
}

/// The fingerprint of `dir` (see `Dataset::fingerprint`): its entries' types, modes,
/// owners and names, and for files and links their size, mtime, ctime (nanoseconds)
/// and inode, hashed; entries `skip` leaves out and directories' times are not in it
/// (a directory's times change with its entries, which are listed themselves).
/// `clock` is the file system's clock when the listing began (the ctime of a file
/// made then: the kernel stamps files with a coarser clock than `now()`); the second
/// value says whether every entry was changed before it, so that any later change
/// gives another fingerprint.
pub fn fingerprint<S: AsRef<str>>(
    dir: &Path,
    skip: &[S],
    clock: i128,
) -> Result<(String, bool), SnapshotError> {
    let mut trusted = true;
    let mut records = Vec::new();
    let top = std::fs::metadata(dir).map_err(|source| SnapshotError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    records.push(format!("{:o} {} {} .", top.mode(), top.uid(), top.gid()));
    for (path, meta) in walk(dir)? {
        let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy();
        if skipped(&rel, skip) {
            continue;
        }
        if meta.is_dir() {
            records.push(format!(
                "{:o} {} {} {rel}",
                meta.mode(),
                meta.uid(),
                meta.gid()
            ));
            continue;
        }
        let ctime = i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec());
        let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
        if ctime >= clock {
            trusted = false;
        }
        records.push(format!(
            "{:o} {} {} {} {mtime} {ctime} {} {rel}",
            meta.mode(),
            meta.uid(),
            meta.gid(),
            meta.len(),
            meta.ino()
        ));
    }
    let mut h = blake3::Hasher::new();
    for r in &records {
        h.update(r.as_bytes());
        h.update(b"\n");
    }
    Ok((h.finalize().to_hex().to_string(), trusted))
}

/// The file system's clock now, as it stamps files: the ctime (nanoseconds) of a
/// file made in `dir` and removed at once.
pub fn file_clock(dir: &Path) -> Result<i128, SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let f = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    let m = f.as_file().metadata().map_err(io)?;
    Ok(i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()))
}

/// The entries `dir` would give, each file's chunk hashes computed but nothing
/// stored: what `diff` compares.
pub fn scan<S: AsRef<str>>(dir: &Path, skip: &[S]) -> Result<Vec<Entry>, SnapshotError> {
    read_tree(dir, skip, &mut |data| {
        Ok(blake3::hash(data).to_hex().to_string())
    })
}

/// `dir`'s entries in path order, each file's chunks named by `chunk`.
fn read_tree<S: AsRef<str>>(
    dir: &Path,
    skip: &[S],
    chunk: &mut dyn FnMut(&[u8]) -> Result<String, SnapshotError>,
) -> Result<Vec<Entry>, SnapshotError> {
    // The directory itself first, as `.`: its mode and owner matter (PostgreSQL
    // refuses a data dir others can read).
    let top = std::fs::metadata(dir).map_err(|source| SnapshotError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut entries = vec![Entry {
        path: ".".into(),
        mode: top.permissions().mode() & 0o7777,
        uid: top.uid(),
        gid: top.gid(),
        mtime: None,
        kind: EntryKind::Dir,
    }];
    let mut buf = vec![0u8; CHUNK_SIZE];
    for (path, meta) in walk(dir)? {
        let rel = path
            .strip_prefix(dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        if skipped(&rel, skip) {
            continue;
        }
        let io = |source| SnapshotError::Io {
            path: path.clone(),
            source,
        };
        let kind = if meta.is_dir() {
            EntryKind::Dir
        } else if meta.file_type().is_symlink() {
            EntryKind::Symlink {
                target: std::fs::read_link(&path)
                    .map_err(io)?
                    .to_string_lossy()
                    .into_owned(),
            }
        } else if meta.is_file() {
            let mut file = std::fs::File::open(&path).map_err(io)?;
            let (mut chunks, mut size) = (Vec::new(), 0);
            loop {
                let n = read_full(&mut file, &mut buf).map_err(io)?;
                if n == 0 {
                    break;
                }
                chunks.push(chunk(&buf[..n])?);
                size += n as u64;
                if n < buf.len() {
                    break;
                }
            }
            EntryKind::File { size, chunks }
        } else {
            // Sockets and fifos (a server's socket file) are not data.
            continue;
        };
        entries.push(Entry {
            path: rel,
            mode: meta.permissions().mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: matches!(kind, EntryKind::File { .. }).then(|| meta.mtime()),
            kind,
        });
    }
    Ok(entries)
}

/// `skip` entries name a path relative to the directory (and everything under it) or,
/// without a `/`, a file name anywhere.
fn skipped<S: AsRef<str>>(rel: &str, skip: &[S]) -> bool {
    skip.iter().map(AsRef::as_ref).any(|s| {
        rel == s
            || rel.starts_with(&format!("{s}/"))
            || (!s.contains('/') && rel.rsplit('/').next() == Some(s))
    })
}

pub(super) fn read_full(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes `entries` into `dir`, which must not exist yet: every chunk is read back
/// and checked against its hash on the way, so a damaged or missing chunk fails here,
/// before anything outside `dir` is touched. Owners are set when running as root.
pub fn write_out(
    dir: &Path,
    entries: &[Entry],
    store: &Chunks,
    progress: Progress<'_>,
) -> Result<(), SnapshotError> {
    let root = nix::unistd::geteuid().is_root();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io { path, source }
    };
    std::fs::create_dir(dir).map_err(io(dir))?;
    let hashes = entries
        .iter()
        .flat_map(|e| match &e.kind {
            EntryKind::File { chunks, .. } => chunks.as_slice(),
            _ => &[],
        })
        .cloned()
        .collect();
    let mut ahead = Prefetch::new(store, hashes);
    for e in entries {
        let top = e.path == ".";
        if !top
            && e.path
                .split('/')
                .any(|p| p == ".." || p == "." || p.is_empty())
        {
            return Err(SnapshotError::BadManifest(format!(
                "entry path `{}` leaves its directory",
                e.path
            )));
        }
        let path = if top {
            dir.to_path_buf()
        } else {
            dir.join(&e.path)
        };
        match &e.kind {
            EntryKind::Dir if top => {}
            EntryKind::Dir => std::fs::create_dir(&path).map_err(io(&path))?,
            EntryKind::Symlink { target } => {
                std::os::unix::fs::symlink(target, &path).map_err(io(&path))?;
                continue;
            }
            EntryKind::File { chunks, .. } => {
                let mut file = std::fs::File::create(&path).map_err(io(&path))?;
                for _ in chunks {
                    let data = ahead.next_chunk().unwrap_or_else(|| {
                        Err(SnapshotError::BadManifest(
                            "fewer chunks than entries".into(),
                        ))
                    })?;
                    file.write_all(&data).map_err(io(&path))?;
                    progress(data.len() as u64);
                }
                file.sync_all().map_err(io(&path))?;
            }
        }
        if root {
            std::os::unix::fs::chown(&path, Some(e.uid), Some(e.gid)).map_err(io(&path))?;
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(e.mode))
            .map_err(io(&path))?;
    }
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tree_round_trips_through_the_store_with_modes_and_links() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
        let big: Vec<u8> = (0..(CHUNK_SIZE * 2 + 123))
            .map(|i| (i % 251) as u8)
            .collect();
        std::fs::write(src.join("sub/big"), &big).unwrap();
        std::fs::write(src.join("small"), b"hello").unwrap();
        std::fs::write(src.join("empty"), b"").unwrap();
        std::fs::set_permissions(src.join("small"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
        std::os::unix::fs::symlink("small", src.join("link")).unwrap();
        std::fs::write(src.join("skipme"), b"x").unwrap();
        std::fs::write(src.join("sub/deeper/pg_internal.init"), b"cache").unwrap();
        let store = Chunks::new(tmp.path().join("chunks"));
        let (entries, written) =
            capture(&src, &["skipme", "pg_internal.init"], &store, &|_| {}).unwrap();
        assert!(written > 0);
        assert!(!entries.iter().any(|e| e.path.ends_with("pg_internal.init")));
        assert!(!entries.iter().any(|e| e.path == "skipme"));
        assert_eq!(entries[0].path, ".", "the directory itself first");
        let (again, written_again) =
            capture(&src, &["skipme", "pg_internal.init"], &store, &|_| {}).unwrap();
        assert_eq!((again, written_again), (entries.clone(), 0), "nothing new");
        assert_eq!(
            scan(&src, &["skipme", "pg_internal.init"]).unwrap(),
            entries,
            "scan = capture"
        );
        let out = tmp.path().join("out");
        write_out(&out, &entries, &store, &|_| {}).unwrap();
        assert_eq!(std::fs::read(out.join("sub/big")).unwrap(), big);
        assert_eq!(std::fs::read(out.join("small")).unwrap(), b"hello");
        assert_eq!(std::fs::read(out.join("empty")).unwrap(), b"");
        assert_eq!(
            std::fs::metadata(out.join("small"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_link(out.join("link")).unwrap(),
            Path::new("small")
        );
    }
}
