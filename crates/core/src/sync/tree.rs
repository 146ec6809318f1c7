//! Trees of entries on both sides: the local directory (walked, excludes pruned) and the
//! container's target (parsed from the receiver's listing).

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

use super::error::SyncError;
use super::exclude::Excludes;
use super::path::RelPath;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

/// One file, directory or symlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub size: u64,
    /// Seconds since the epoch.
    pub mtime: i64,
    /// Seconds since the epoch: when the inode last changed (in the container: when
    /// the receiver wrote it).
    pub ctime: i64,
    /// Files: the content's MD5, when computed.
    pub md5: Option<[u8; 16]>,
    /// Symlinks: the target, as stored (never followed).
    pub target: Option<String>,
}

pub type Tree = BTreeMap<RelPath, Entry>;

/// An entry of the local tree, or `None` if `path` is gone or is neither a file, a
/// directory nor a symlink.
pub fn local_entry(root: &Path, path: &RelPath) -> Result<Option<Entry>, SyncError> {
    let full = root.join(path.as_str());
    let meta = match std::fs::symlink_metadata(&full) {
        Ok(m) => m,
        Err(e) if gone(&e) => return Ok(None),
        Err(source) => return Err(SyncError::Local { path: full, source }),
    };
    entry_of(&full, &meta)
}

/// The path does not exist (any more), e.g. a parent was replaced by a file.
fn gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    )
}

fn entry_of(full: &Path, meta: &std::fs::Metadata) -> Result<Option<Entry>, SyncError> {
    let ft = meta.file_type();
    let kind = if ft.is_symlink() {
        Kind::Symlink
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        Kind::File
    } else {
        return Ok(None);
    };
    let target = if kind == Kind::Symlink {
        let t = std::fs::read_link(full).map_err(|source| SyncError::Local {
            path: full.to_owned(),
            source,
        })?;
        match t.into_os_string().into_string() {
            Ok(t) => Some(t),
            Err(_) => return Ok(None),
        }
    } else {
        None
    };
    Ok(Some(Entry {
        kind,
        mode: meta.permissions().mode() & 0o7777,
        size: if kind == Kind::File { meta.len() } else { 0 },
        mtime: meta.mtime(),
        ctime: meta.ctime(),
        md5: None,
        target,
    }))
}

/// Walks `root/start` (or the whole root), never following symlinks and pruning
/// excluded directories. Names that can't be synced (not UTF-8, newline) are skipped
/// and returned separately.
pub fn scan_local(
    root: &Path,
    start: Option<&RelPath>,
    excludes: &Excludes,
) -> Result<(Tree, Vec<PathBuf>), SyncError> {
    let mut tree = Tree::new();
    let mut skipped = Vec::new();
    let mut stack: Vec<(PathBuf, Option<RelPath>)> = vec![(
        start.map_or_else(|| root.to_owned(), |s| root.join(s.as_str())),
        start.cloned(),
    )];
    while let Some((dir, rel)) = stack.pop() {
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            // Deleted while walking: the watcher reports it.
            Err(e) if gone(&e) => continue,
            Err(source) => return Err(SyncError::Local { path: dir, source }),
        };
        for item in read {
            let item = item.map_err(|source| SyncError::Local {
                path: dir.clone(),
                source,
            })?;
            let full = item.path();
            let Some(name) = item.file_name().to_str().map(str::to_owned) else {
                skipped.push(full);
                continue;
            };
            let path = match &rel {
                Some(r) => r.join(&name),
                None => RelPath::new(&name),
            };
            let Ok(path) = path else {
                skipped.push(full);
                continue;
            };
            let meta = match std::fs::symlink_metadata(&full) {
                Ok(m) => m,
                Err(e) if gone(&e) => continue,
                Err(source) => return Err(SyncError::Local { path: full, source }),
            };
            let Some(entry) = entry_of(&full, &meta)? else {
                continue;
            };
            if excludes.excludes(&path, entry.kind == Kind::Dir) {
                continue;
            }
            if entry.kind == Kind::Dir {
                stack.push((full, Some(path.clone())));
            }
            tree.insert(path, entry);
        }
    }
    Ok((tree, skipped))
}

/// The MD5 of a local file, streamed.
pub fn md5_file(path: &Path) -> std::io::Result<[u8; 16]> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

/// Fills in the MD5 of the local files for which `wanted` says so.
pub fn hash_local(
    root: &Path,
    tree: &mut Tree,
    wanted: impl Fn(&RelPath, &Entry) -> bool,
) -> Result<(), SyncError> {
    for (path, entry) in tree.iter_mut() {
        if entry.kind == Kind::File && entry.md5.is_none() && wanted(path, entry) {
            let full = root.join(path.as_str());
            match md5_file(&full) {
                Ok(sum) => entry.md5 = Some(sum),
                // Gone since the walk: left unhashed, so it compares as different.
                Err(e) if gone(&e) => {}
                Err(source) => return Err(SyncError::Local { path: full, source }),
            }
        }
    }
    Ok(())
}

/// Builds the remote tree from the receiver's listing lines (see `receiver.rs`):
/// `S <hex st_mode> <size> <mtime> <ctime> ./path`, `N './path' -> 'target'` and
/// `M <md5>  ./path`. Returns the lines it could not use.
pub fn parse_listing(lines: &[String]) -> (Tree, Vec<String>) {
    let mut tree = Tree::new();
    let bad = add_listing(&mut tree, lines);
    (tree, bad)
}

/// Applies more listing lines (e.g. the `M` lines of a checksum request) to `tree`;
/// returns the lines it could not use.
pub fn add_listing(tree: &mut Tree, lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|line| !apply_listing_line(tree, line))
        .cloned()
        .collect()
}

fn rel_of(listed: &str) -> Option<RelPath> {
    RelPath::new(listed.strip_prefix("./")?).ok()
}

fn apply_listing_line(tree: &mut Tree, line: &str) -> bool {
    if let Some(rest) = line.strip_prefix("S ") {
        let mut fields = rest.splitn(5, ' ');
        let (Some(mode), Some(size), Some(mtime), Some(ctime), Some(name)) = (
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
            fields.next(),
        ) else {
            return false;
        };
        let (Ok(mode), Ok(size), Ok(mtime), Ok(ctime), Some(path)) = (
            u32::from_str_radix(mode, 16),
            size.parse::<u64>(),
            mtime.parse::<i64>(),
            ctime.parse::<i64>(),
            rel_of(name),
        ) else {
            return false;
        };
        let kind = match mode & 0o170000 {
            0o100000 => Kind::File,
            0o040000 => Kind::Dir,
            0o120000 => Kind::Symlink,
            // Devices, fifos, sockets: not something sync writes; shown as a file so
            // that a difference is reported and a delete replaces it.
            _ => Kind::File,
        };
        let entry = tree.entry(path).or_insert(Entry {
            kind,
            mode: 0,
            size: 0,
            mtime: 0,
            ctime: 0,
            md5: None,
            target: None,
        });
        entry.kind = kind;
        entry.mode = mode & 0o7777;
        entry.size = if kind == Kind::File { size } else { 0 };
        entry.mtime = mtime;
        entry.ctime = ctime;
        true
    } else if let Some(rest) = line.strip_prefix("N '") {
        // `./path' -> 'target'`; neither part is escaped by busybox stat, so split at
        // the first `' -> '` after a valid path.
        let Some(body) = rest.strip_suffix('\'') else {
            return false;
        };
        let Some((name, target)) = body.split_once("' -> '") else {
            return false;
        };
        let Some(path) = rel_of(name) else {
            return false;
        };
        match tree.get_mut(&path) {
            Some(e) => {
                e.target = Some(target.to_owned());
                true
            }
            None => false,
        }
    } else if let Some(rest) = line.strip_prefix("M ") {
        let Some((sum, name)) = rest.split_once("  ") else {
            return false;
        };
        let (Some(sum), Some(path)) = (parse_md5(sum), rel_of(name)) else {
            return false;
        };
        match tree.get_mut(&path) {
            Some(e) => {
                e.md5 = Some(sum);
                true
            }
            None => false,
        }
    } else {
        false
    }
}

pub fn parse_md5(hex: &str) -> Option<[u8; 16]> {
    if hex.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn parses_a_busybox_listing() {
        let lines: Vec<String> = [
            "S 81a4 5 1795394642 1795394650 ./a b.txt",
            "S 41ed 4096 1795394643 1795394643 ./sub",
            "S 81e1 3 1795394642 1795394642 ./sub/f",
            "S a1ff 12 1795394643 1795394643 ./sub/ln",
            "N './sub/ln' -> '/tmp/out side'",
            "M 6137cde4893c59f76f005a8123d8e8e6  ./a b.txt",
            "M 764efa883dda1e11db47671c4a3bbd9e  ./sub/f",
            "garbage",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (tree, bad) = parse_listing(&lines);
        assert_eq!(bad, ["garbage"]);
        let a = &tree[&p("a b.txt")];
        assert_eq!((a.kind, a.mode, a.size), (Kind::File, 0o644, 5));
        assert_eq!((a.mtime, a.ctime), (1795394642, 1795394650));
        assert_eq!(a.md5, parse_md5("6137cde4893c59f76f005a8123d8e8e6"));
        assert_eq!(tree[&p("sub")].kind, Kind::Dir);
        assert_eq!(tree[&p("sub")].size, 0);
        assert_eq!(tree[&p("sub/f")].mode, 0o741);
        let ln = &tree[&p("sub/ln")];
        assert_eq!(ln.kind, Kind::Symlink);
        assert_eq!(ln.target.as_deref(), Some("/tmp/out side"));
    }

    #[test]
    fn scans_without_following_symlinks_and_prunes_excludes() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("src/deep")).unwrap();
        std::fs::create_dir_all(root.join("node_modules/x")).unwrap();
        std::fs::write(root.join("src/deep/a.rs"), "fn main() {}").unwrap();
        std::fs::write(root.join("src/a.map"), "{}").unwrap();
        std::fs::write(root.join("node_modules/x/i.js"), "").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("etc-link")).unwrap();
        let ex = Excludes::new(&["*.map".into(), "node_modules/".into()]).unwrap();
        let (mut tree, skipped) = scan_local(root, None, &ex).unwrap();
        assert!(skipped.is_empty());
        let names: Vec<_> = tree.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(names, ["etc-link", "src", "src/deep", "src/deep/a.rs"]);
        assert_eq!(tree[&p("etc-link")].target.as_deref(), Some("/etc"));
        hash_local(root, &mut tree, |_, _| true).unwrap();
        let sum = tree[&p("src/deep/a.rs")].md5.unwrap();
        let want: [u8; 16] = Md5::digest(b"fn main() {}").into();
        assert_eq!(sum, want);
    }
}
