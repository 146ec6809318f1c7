//! The rule's local directory, read through directory file descriptors.
//!
//! The root is opened once per comparison ([`LocalRoot::open`], following the configured
//! path as the user gave it); everything below it is reached by `openat` one component
//! at a time with `O_NOFOLLOW`, so a directory replaced by a symlink (to `/etc`, to
//! `$HOME`) reads as "gone" and nothing outside the root is ever read and sent. The root's
//! identity (device, inode) is kept: [`LocalRoot::check`] says whether the path still
//! names the same directory, so a root that vanished or was swapped mid-session is never
//! mistaken for an empty tree whose files must be deleted in the pod.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};
use nix::dir::Dir;
use nix::errno::Errno;
use nix::fcntl::{openat, readlinkat, AtFlags, OFlag, AT_FDCWD};
use nix::sys::stat::{fstat, fstatat, FileStat, Mode, SFlag};

use super::error::{SourceProblem, SyncError};
use super::exclude::Excludes;
use super::path::RelPath;
use super::tree::{Entry, Kind, Tree};

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// An open local sync root.
#[derive(Debug)]
pub struct LocalRoot {
    path: PathBuf,
    fd: OwnedFd,
    id: (u64, u64),
}

/// What the configured path holds now, for a monitor that waits for it to come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootState {
    /// A directory, by (device, inode).
    Dir(u64, u64),
    Missing,
    NotADirectory,
    Unreadable,
}

impl RootState {
    /// Looks at `path` (following symlinks, as [`LocalRoot::open`] does).
    pub fn probe(path: &Path) -> RootState {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                use std::os::unix::fs::MetadataExt;
                if std::fs::read_dir(path).is_err() {
                    return RootState::Unreadable;
                }
                RootState::Dir(m.dev(), m.ino())
            }
            Ok(_) => RootState::NotADirectory,
            Err(e) if gone(&e) => RootState::Missing,
            Err(_) => RootState::Unreadable,
        }
    }
}

#[allow(
    clippy::unnecessary_cast,
    reason = "dev_t and ino_t differ by platform"
)]
fn id_of(st: &FileStat) -> (u64, u64) {
    (st.st_dev as u64, st.st_ino as u64)
}

/// The path does not exist (any more) as a path below the root: missing, a parent
/// replaced by a file, or a parent replaced by a symlink (`O_NOFOLLOW`).
pub(crate) fn gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
    ) || e.raw_os_error() == Some(libc::ELOOP)
}

impl LocalRoot {
    /// Opens the rule's directory; a missing, non-directory or unreadable root is a
    /// [`SyncError::Source`].
    pub fn open(path: &Path) -> Result<LocalRoot, SyncError> {
        let source = |problem| SyncError::Source {
            path: path.to_owned(),
            problem,
        };
        let fd = match openat(
            AT_FDCWD,
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Err(source(SourceProblem::Missing)),
            Err(Errno::ENOTDIR) => {
                return Err(source(match std::fs::metadata(path) {
                    Ok(_) => SourceProblem::NotADirectory,
                    // A parent is not a directory: the path names nothing.
                    Err(_) => SourceProblem::Missing,
                }));
            }
            Err(e) => return Err(source(SourceProblem::Unreadable(e.into()))),
        };
        let st = fstat(&fd).map_err(|e| source(SourceProblem::Unreadable(e.into())))?;
        Ok(LocalRoot {
            path: path.to_owned(),
            id: id_of(&st),
            fd,
        })
    }

    /// Whether the configured path still names this directory (not removed, moved
    /// away or replaced).
    pub fn check(&self) -> Result<(), SyncError> {
        let problem = match std::fs::metadata(&self.path) {
            Ok(m) if !m.is_dir() => SourceProblem::NotADirectory,
            Ok(m) => {
                use std::os::unix::fs::MetadataExt;
                if (m.dev(), m.ino()) == self.id {
                    return Ok(());
                }
                SourceProblem::Replaced
            }
            Err(e) if gone(&e) => SourceProblem::Missing,
            Err(e) => SourceProblem::Unreadable(e),
        };
        Err(SyncError::Source {
            path: self.path.clone(),
            problem,
        })
    }

    fn local_error(&self, rel: Option<&RelPath>, e: impl Into<std::io::Error>) -> SyncError {
        SyncError::Local {
            path: match rel {
                Some(r) => self.path.join(r.as_str()),
                None => self.path.clone(),
            },
            source: e.into(),
        }
    }

    /// The directory `rel` (the root itself for `None`), reached without following a
    /// symlink below the root.
    fn open_dir(&self, rel: Option<&RelPath>) -> std::io::Result<OwnedFd> {
        let mut fd = openat(&self.fd, ".", DIR_FLAGS, Mode::empty())?;
        if let Some(rel) = rel {
            for component in rel.as_str().split('/') {
                fd = openat(&fd, component, DIR_FLAGS, Mode::empty())?;
            }
        }
        Ok(fd)
    }

    /// The parent directory of `rel` and its last component.
    fn parent<'p>(&self, rel: &'p RelPath) -> std::io::Result<(OwnedFd, &'p str)> {
        let (parent, name) = match rel.as_str().rsplit_once('/') {
            Some((p, n)) => (Some(RelPath::new(p).map_err(std::io::Error::other)?), n),
            None => (None, rel.as_str()),
        };
        Ok((self.open_dir(parent.as_ref())?, name))
    }

    /// The entry at `rel`, or `None` if it is gone (or neither a file, a directory nor
    /// a symlink, or its path goes through a symlink).
    pub fn entry(&self, rel: &RelPath) -> Result<Option<Entry>, SyncError> {
        let (dir, name) = match self.parent(rel) {
            Ok(p) => p,
            Err(e) if gone(&e) => return Ok(None),
            Err(e) => return Err(self.local_error(Some(rel), e)),
        };
        match fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => self.entry_of(&dir, name, &st, rel),
            Err(e) => {
                let e = std::io::Error::from(e);
                if gone(&e) {
                    Ok(None)
                } else {
                    Err(self.local_error(Some(rel), e))
                }
            }
        }
    }

    #[allow(clippy::unnecessary_cast, reason = "mode_t is u16 on macOS")]
    fn entry_of(
        &self,
        dir: &impl AsFd,
        name: impl AsRef<OsStr>,
        st: &FileStat,
        rel: &RelPath,
    ) -> Result<Option<Entry>, SyncError> {
        let fmt = SFlag::from_bits_truncate(st.st_mode as _) & SFlag::S_IFMT;
        let kind = if fmt == SFlag::S_IFLNK {
            Kind::Symlink
        } else if fmt == SFlag::S_IFDIR {
            Kind::Dir
        } else if fmt == SFlag::S_IFREG {
            Kind::File
        } else {
            return Ok(None);
        };
        let target = if kind == Kind::Symlink {
            match readlinkat(dir, name.as_ref()) {
                Ok(t) => match t.into_string() {
                    Ok(t) => Some(t),
                    Err(_) => return Ok(None),
                },
                Err(e) => {
                    let e = std::io::Error::from(e);
                    return if gone(&e) || e.raw_os_error() == Some(libc::EINVAL) {
                        Ok(None)
                    } else {
                        Err(self.local_error(Some(rel), e))
                    };
                }
            }
        } else {
            None
        };
        Ok(Some(Entry {
            kind,
            // As sent (tar.rs), so the plan never sees a setuid bit as a difference.
            mode: st.st_mode as u32 & super::tar::MODE_BITS,
            size: if kind == Kind::File {
                st.st_size as u64
            } else {
                0
            },
            mtime: st.st_mtime,
            ctime: st.st_ctime,
            md5: None,
            target,
        }))
    }

    /// Opens the regular file at `rel` for reading, never through a symlink; anything
    /// else there (a symlink, a fifo, a directory) is an error.
    pub fn open_file(&self, rel: &RelPath) -> std::io::Result<File> {
        let (dir, name) = self.parent(rel)?;
        // O_NONBLOCK: a fifo put in a file's place must not block the open.
        let fd = openat(
            &dir,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let st = fstat(&fd)?;
        if SFlag::from_bits_truncate(st.st_mode as _) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(std::io::Error::other("no longer a regular file"));
        }
        Ok(File::from(fd))
    }

    /// Walks the root (or `start` below it), never following symlinks and pruning
    /// excluded directories. Names that can't be synced (not UTF-8, newline) are
    /// skipped and returned separately. The root itself must be readable: an error
    /// there is an error, never an empty tree.
    pub fn scan(
        &self,
        start: Option<&RelPath>,
        excludes: &Excludes,
    ) -> Result<(Tree, Vec<PathBuf>), SyncError> {
        let mut tree = Tree::new();
        let mut skipped = Vec::new();
        let mut stack: Vec<Option<RelPath>> = vec![start.cloned()];
        let mut first = true;
        while let Some(rel) = stack.pop() {
            let fd = match self.open_dir(rel.as_ref()) {
                Ok(fd) => fd,
                // Deleted (or replaced) while walking: the watcher reports it.
                Err(e) if gone(&e) && !(first && start.is_none()) => continue,
                Err(e) => return Err(self.local_error(rel.as_ref(), e)),
            };
            first = false;
            let mut dir = Dir::from_fd(fd).map_err(|e| self.local_error(rel.as_ref(), e))?;
            let mut names = Vec::new();
            for item in dir.iter() {
                let item = item.map_err(|e| self.local_error(rel.as_ref(), e))?;
                let name = item.file_name().to_bytes();
                if name != b"." && name != b".." {
                    names.push(OsStr::from_bytes(name).to_owned());
                }
            }
            for name in names {
                let shown = || match &rel {
                    Some(r) => self.path.join(r.as_str()).join(&name),
                    None => self.path.join(&name),
                };
                let Some(utf8) = name.to_str() else {
                    skipped.push(shown());
                    continue;
                };
                let path = match &rel {
                    Some(r) => r.join(utf8),
                    None => RelPath::new(utf8),
                };
                let Ok(path) = path else {
                    skipped.push(shown());
                    continue;
                };
                let st = match fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
                    Ok(st) => st,
                    Err(e) => {
                        let e = std::io::Error::from(e);
                        if gone(&e) {
                            continue;
                        }
                        return Err(self.local_error(Some(&path), e));
                    }
                };
                let Some(entry) = self.entry_of(&dir, &name, &st, &path)? else {
                    continue;
                };
                if excludes.excludes(&path, entry.kind == Kind::Dir) {
                    continue;
                }
                if entry.kind == Kind::Dir {
                    stack.push(Some(path.clone()));
                }
                tree.insert(path, entry);
            }
        }
        Ok((tree, skipped))
    }

    /// Fills in the MD5 of the files for which `wanted` says so.
    pub fn hash(
        &self,
        tree: &mut Tree,
        wanted: impl Fn(&RelPath, &Entry) -> bool,
    ) -> Result<(), SyncError> {
        for (path, entry) in tree.iter_mut() {
            if entry.kind == Kind::File && entry.md5.is_none() && wanted(path, entry) {
                match self.open_file(path).and_then(md5_of) {
                    Ok(sum) => entry.md5 = Some(sum),
                    // Gone or replaced since the walk: left unhashed, so it compares as
                    // different and is sent (or found gone) from the disk as it is then.
                    Err(e) if gone(&e) || e.kind() == std::io::ErrorKind::Other => {}
                    Err(e) => return Err(self.local_error(Some(path), e)),
                }
            }
        }
        Ok(())
    }
}

/// The MD5 of what `file` holds, streamed.
pub(crate) fn md5_of(mut file: File) -> std::io::Result<[u8; 16]> {
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn p(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
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
        symlink("/etc", root.join("etc-link")).unwrap();
        let ex = Excludes::new(&["*.map".into(), "node_modules/".into()]).unwrap();
        let local = LocalRoot::open(root).unwrap();
        let (mut tree, skipped) = local.scan(None, &ex).unwrap();
        assert!(skipped.is_empty());
        let names: Vec<_> = tree.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(names, ["etc-link", "src", "src/deep", "src/deep/a.rs"]);
        assert_eq!(tree[&p("etc-link")].target.as_deref(), Some("/etc"));
        local.hash(&mut tree, |_, _| true).unwrap();
        let sum = tree[&p("src/deep/a.rs")].md5.unwrap();
        let want: [u8; 16] = Md5::digest(b"fn main() {}").into();
        assert_eq!(sum, want);
    }

    #[test]
    fn a_missing_or_non_directory_root_is_a_source_error_not_an_empty_tree() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = LocalRoot::open(&missing).unwrap_err();
        assert!(
            matches!(
                e,
                SyncError::Source {
                    problem: SourceProblem::Missing,
                    ..
                }
            ),
            "{e}"
        );
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let e = LocalRoot::open(&dir.path().join("file")).unwrap_err();
        assert!(
            matches!(
                e,
                SyncError::Source {
                    problem: SourceProblem::NotADirectory,
                    ..
                }
            ),
            "{e}"
        );
        assert_eq!(RootState::probe(&missing), RootState::Missing);
        assert_eq!(
            RootState::probe(&dir.path().join("file")),
            RootState::NotADirectory
        );
    }

    #[test]
    fn a_root_moved_away_or_replaced_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir(&site).unwrap();
        std::fs::write(site.join("index.html"), "hi").unwrap();
        let root = LocalRoot::open(&site).unwrap();
        root.check().unwrap();
        std::fs::rename(&site, dir.path().join("elsewhere")).unwrap();
        assert!(matches!(
            root.check(),
            Err(SyncError::Source {
                problem: SourceProblem::Missing,
                ..
            })
        ));
        std::fs::create_dir(&site).unwrap();
        assert!(matches!(
            root.check(),
            Err(SyncError::Source {
                problem: SourceProblem::Replaced,
                ..
            })
        ));
        // A scan of the new, empty directory reads as empty; the old handle still
        // reads the moved directory, never "everything deleted".
        let (tree, _) = root.scan(None, &Excludes::none()).unwrap();
        assert_eq!(tree.len(), 1);
    }

    #[test]
    fn a_directory_replaced_by_a_symlink_reads_as_gone() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "s3cret").unwrap();
        std::fs::write(root.join("sub/secret"), "mine").unwrap();
        let local = LocalRoot::open(&root).unwrap();
        assert!(local.entry(&p("sub/secret")).unwrap().is_some());
        std::fs::remove_dir_all(root.join("sub")).unwrap();
        symlink(&outside, root.join("sub")).unwrap();
        assert_eq!(local.entry(&p("sub/secret")).unwrap(), None);
        assert!(local.open_file(&p("sub/secret")).is_err());
        assert_eq!(
            local.entry(&p("sub")).unwrap().map(|e| e.kind),
            Some(Kind::Symlink)
        );
        let (tree, _) = local.scan(None, &Excludes::none()).unwrap();
        let names: Vec<_> = tree.keys().map(|k| k.as_str().to_owned()).collect();
        assert_eq!(names, ["sub"]);
        // A file replaced by a symlink to a file outside is not opened either.
        std::fs::write(root.join("f"), "x").unwrap();
        std::fs::remove_file(root.join("f")).unwrap();
        symlink(outside.join("secret"), root.join("f")).unwrap();
        assert!(local.open_file(&p("f")).is_err());
    }
}
