//! A directory as a tar stream, both ways: what a helper pod's `tar` sends is cut
//! into the chunk store as it arrives (no copy of the whole volume anywhere), and a
//! snapshot's entries become a tar stream for `tar -x` there, every chunk checked
//! against its hash on the way.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use super::chunks::{Chunks, Prefetch, CHUNK_SIZE};
use super::tree::{read_full, Entry, EntryKind, Progress};
use super::SnapshotError;

fn io(what: &str) -> impl Fn(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: what.into(),
        source,
    }
}

/// `./a/b` -> `a/b`, `.` and `./` -> `.`.
fn relative(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    let s = s.trim_end_matches('/');
    match s.strip_prefix("./") {
        Some(rest) if !rest.is_empty() => rest.to_owned(),
        _ if s == "." || s.is_empty() => ".".to_owned(),
        _ => s.to_owned(),
    }
}

/// Reads a tar stream (several concatenated archives are fine: `xargs` may run
/// `tar` more than once) into the store. `kept` are entries taken over from the
/// last snapshot (files the stream leaves out because they did not change). Returns
/// the entries in path order (`.` first) and the bytes newly stored.
pub fn capture(
    reader: impl Read,
    kept: Vec<Entry>,
    store: &Chunks,
    progress: Progress<'_>,
) -> Result<(Vec<Entry>, u64), SnapshotError> {
    let mut archive = tar::Archive::new(reader);
    archive.set_ignore_zeros(true);
    let mut by_path: BTreeMap<String, Entry> =
        kept.into_iter().map(|e| (e.path.clone(), e)).collect();
    let mut writer = store.writer()?;
    let mut buf = vec![0u8; CHUNK_SIZE];
    for item in archive.entries().map_err(io("the tar stream"))? {
        let mut item = item.map_err(io("the tar stream"))?;
        let path = relative(&item.path_bytes());
        let header = item.header();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let mtime = header.mtime().ok().map(|m| m as i64);
        let kind = match header.entry_type() {
            tar::EntryType::Directory => EntryKind::Dir,
            tar::EntryType::Symlink => EntryKind::Symlink {
                target: item
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default(),
            },
            tar::EntryType::Link => {
                // A hard link: the same content as the file it names.
                let target = relative(&item.link_name_bytes().unwrap_or_default());
                match by_path.get(&target).map(|e| e.kind.clone()) {
                    Some(kind @ EntryKind::File { .. }) => kind,
                    _ => continue,
                }
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let (mut chunks, mut size) = (Vec::new(), 0u64);
                loop {
                    let n = read_full(&mut item, &mut buf).map_err(io("the tar stream"))?;
                    if n == 0 {
                        break;
                    }
                    let hash = writer.put(&buf[..n])?;
                    progress(n as u64);
                    chunks.push(hash);
                    size += n as u64;
                    if n < buf.len() {
                        break;
                    }
                }
                EntryKind::File { size, chunks }
            }
            // Devices, fifos, sockets: not data.
            _ => continue,
        };
        let mtime = mtime.filter(|_| matches!(kind, EntryKind::File { .. }));
        by_path.insert(
            path.clone(),
            Entry {
                path,
                mode,
                uid,
                gid,
                mtime,
                kind,
            },
        );
    }
    let mut entries: Vec<Entry> = by_path.into_values().collect();
    // `.` first (BTreeMap order puts it after names starting with `-` or `!`).
    entries.sort_by(|a, b| (a.path != ".", &a.path).cmp(&(b.path != ".", &b.path)));
    Ok((entries, writer.finish()?))
}

/// A file's content, `chunks` chunks taken from the prefetcher (each checked); the
/// first failure is kept for the caller (the tar writer sees an I/O error).
struct ChunkReader<'a> {
    ahead: &'a mut Prefetch,
    chunks: usize,
    current: Vec<u8>,
    pos: usize,
    failed: &'a mut Option<SnapshotError>,
    progress: Progress<'a>,
}

impl Read for ChunkReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            if self.chunks == 0 {
                return Ok(0);
            }
            self.chunks -= 1;
            let next = self.ahead.next_chunk().unwrap_or_else(|| {
                Err(SnapshotError::BadManifest(
                    "fewer chunks than entries".into(),
                ))
            });
            match next {
                Ok(data) => {
                    (self.progress)(data.len() as u64);
                    self.current = data;
                    self.pos = 0;
                }
                Err(e) => {
                    let msg = e.to_string();
                    *self.failed = Some(e);
                    return Err(std::io::Error::other(msg));
                }
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Writes `entries` as one tar archive to `out` (`.`'s own mode and owner are the
/// caller's to apply: `tar -x` into a staging dir gives them to that dir).
pub fn write(
    out: impl Write,
    entries: &[Entry],
    store: &Chunks,
    progress: Progress<'_>,
) -> Result<(), SnapshotError> {
    let mut builder = tar::Builder::new(out);
    let mut failed: Option<SnapshotError> = None;
    let hashes = entries
        .iter()
        .filter(|e| e.path != ".")
        .flat_map(|e| match &e.kind {
            EntryKind::File { chunks, .. } => chunks.as_slice(),
            _ => &[],
        })
        .cloned()
        .collect();
    let mut ahead = Prefetch::new(store, hashes);
    for e in entries {
        if e.path == "." {
            continue;
        }
        if e.path
            .split('/')
            .any(|p| p == ".." || p == "." || p.is_empty())
        {
            return Err(SnapshotError::BadManifest(format!(
                "entry path `{}` leaves its directory",
                e.path
            )));
        }
        let mut header = tar::Header::new_gnu();
        header.set_mode(e.mode);
        header.set_uid(u64::from(e.uid));
        header.set_gid(u64::from(e.gid));
        header.set_mtime(e.mtime.unwrap_or(0).max(0) as u64);
        let result = match &e.kind {
            EntryKind::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder.append_data(&mut header, &e.path, std::io::empty())
            }
            EntryKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                builder.append_link(&mut header, &e.path, target)
            }
            EntryKind::File { size, chunks } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(*size);
                let reader = ChunkReader {
                    ahead: &mut ahead,
                    chunks: chunks.len(),
                    current: Vec::new(),
                    pos: 0,
                    failed: &mut failed,
                    progress,
                };
                builder.append_data(&mut header, &e.path, reader)
            }
        };
        if let Err(err) = result {
            return Err(failed.take().unwrap_or_else(|| io(&e.path)(err)));
        }
    }
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io("the tar stream"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tar_stream_round_trips_through_the_store_and_keeps_what_it_is_given() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Chunks::new(tmp.path().join("chunks"));
        let big: Vec<u8> = (0..(CHUNK_SIZE * 2 + 5)).map(|i| (i % 249) as u8).collect();
        let entry = |path: &str, kind: EntryKind| Entry {
            path: path.into(),
            mode: 0o640,
            uid: 7,
            gid: 8,
            mtime: matches!(kind, EntryKind::File { .. }).then_some(1_700_000_000),
            kind,
        };
        // Chunks for the source entries.
        let mut w = store.writer().unwrap();
        let h1 = w.put(&big[..CHUNK_SIZE]).unwrap();
        let h2 = w.put(&big[CHUNK_SIZE..2 * CHUNK_SIZE]).unwrap();
        let h3 = w.put(&big[2 * CHUNK_SIZE..]).unwrap();
        w.finish().unwrap();
        let entries = vec![
            entry(".", EntryKind::Dir),
            entry("d", EntryKind::Dir),
            entry(
                "d/big",
                EntryKind::File {
                    size: big.len() as u64,
                    chunks: vec![h1, h2, h3],
                },
            ),
            entry(
                "link",
                EntryKind::Symlink {
                    target: "d/big".into(),
                },
            ),
        ];
        let mut stream = Vec::new();
        write(&mut stream, &entries, &store, &|_| {}).unwrap();
        // Two archives back to back, as `xargs` makes them.
        let mut twice = stream.clone();
        twice.extend_from_slice(&stream);
        let kept = vec![entry(
            "old",
            EntryKind::File {
                size: 0,
                chunks: vec![],
            },
        )];
        let (got, written) = capture(&twice[..], kept.clone(), &store, &|_| {}).unwrap();
        assert_eq!(written, 0, "every chunk was there");
        let mut want: Vec<Entry> = entries[1..].to_vec();
        want.extend(kept);
        want.sort_by(|a, b| a.path.cmp(&b.path));
        assert_eq!(got, want);

        // A damaged chunk fails the write with its own error.
        let chunk_file = std::fs::read_dir(store.dir())
            .unwrap()
            .flatten()
            .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
            .next()
            .unwrap()
            .path();
        std::fs::write(&chunk_file, b"not zstd").unwrap();
        let err = write(std::io::sink(), &entries, &store, &|_| {}).unwrap_err();
        assert!(matches!(err, SnapshotError::CorruptChunk { .. }), "{err:?}");
    }
}
