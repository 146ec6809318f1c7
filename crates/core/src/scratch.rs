//! Private temp files (image tarballs; anything that may hold secrets): created
//! exclusively (`O_CREAT|O_EXCL`, never through a symlink), mode 0600, in one 0700
//! directory under the data dir (`<data>/tmp`, made private by the daemon), removed
//! after use, and swept when the daemon starts so that a crash leaves nothing behind.

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Tries at names before giving up (a name is taken only by a leftover of ours or a
/// file someone else planted; either way a fresh name is the answer).
const NAME_TRIES: u32 = 16;

/// The scratch directory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// Uses `dir`, which the caller has made a private directory (0700, ours), and
    /// removes everything in it: only one daemon uses a data dir at a time (the state
    /// store's lock), so anything there was left by an earlier one. Returns how many
    /// entries were removed.
    pub fn open_and_sweep(dir: PathBuf) -> std::io::Result<(Self, usize)> {
        let mut removed = 0;
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            // file_type() is the entry's own type (lstat): a symlink is removed, never
            // followed; remove_dir_all does not follow symlinks inside either.
            let result = if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            match result {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok((Self { dir }, removed))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new empty file `<prefix>-<unique>.<ext>`, for a tool to fill (it keeps our
    /// 0600 mode when it overwrites).
    pub fn create(&self, prefix: &str, ext: &str) -> std::io::Result<(ScratchFile, File)> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let mut last = None;
        for _ in 0..NAME_TRIES {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .subsec_nanos();
            let name = format!(
                "{}-{}-{}-{nanos:08x}.{ext}",
                sanitize(prefix),
                std::process::id(),
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let path = self.dir.join(name);
            match open_new(&path) {
                Ok(f) => return Ok((ScratchFile { path }, f)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no free scratch file name")))
    }

    /// A new file holding `data`.
    pub fn write(&self, prefix: &str, ext: &str, data: &[u8]) -> std::io::Result<ScratchFile> {
        let (file, mut f) = self.create(prefix, ext)?;
        f.write_all(data)?;
        f.sync_all()?;
        Ok(file)
    }
}

/// Creates `path` as a new 0600 file: fails if anything (a symlink included, even a
/// dangling one) is there already.
fn open_new(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// A file in the scratch dir, removed when dropped.
#[derive(Debug)]
pub struct ScratchFile {
    path: PathBuf,
}

impl ScratchFile {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot remove a temp file");
            }
        }
    }
}

/// One path component, whatever the prefix holds.
fn sanitize(prefix: &str) -> String {
    prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    fn scratch() -> (tempfile::TempDir, Scratch) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tmp");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let (s, _) = Scratch::open_and_sweep(dir).unwrap();
        (tmp, s)
    }

    #[test]
    fn files_are_private_unique_and_removed_on_drop() {
        let (_tmp, s) = scratch();
        let a = s
            .write("helm-values-x", "json", b"{\"password\":\"s\"}")
            .unwrap();
        let b = s.write("helm-values-x", "json", b"{}").unwrap();
        assert_ne!(a.path(), b.path());
        assert_eq!(a.path().parent(), Some(s.dir()));
        let meta = std::fs::symlink_metadata(a.path()).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o777, 0o600);
        let path = a.path().to_path_buf();
        drop(a);
        assert!(!path.exists());
    }

    #[test]
    fn a_prefix_cannot_leave_the_dir() {
        let (_tmp, s) = scratch();
        let f = s.write("/home/u/proj#/../x", "json", b"").unwrap();
        assert_eq!(f.path().parent(), Some(s.dir()));
    }

    #[test]
    fn sweep_removes_leftovers_without_following_links() {
        let (tmp, s) = scratch();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("keep"), "keep").unwrap();
        let left = s.write("helm-values", "json", b"secret").unwrap();
        let left_path = left.path().to_path_buf();
        std::mem::forget(left); // a crash: never removed
        std::os::unix::fs::symlink(&outside, s.dir().join("link")).unwrap();
        std::fs::create_dir(s.dir().join("sub")).unwrap();
        std::os::unix::fs::symlink(&outside, s.dir().join("sub/link")).unwrap();

        let (_, removed) = Scratch::open_and_sweep(s.dir().to_path_buf()).unwrap();
        assert_eq!(removed, 3);
        assert!(!left_path.exists());
        assert_eq!(std::fs::read_dir(s.dir()).unwrap().count(), 0);
        assert_eq!(
            std::fs::read_to_string(outside.join("keep")).unwrap(),
            "keep"
        );
    }

    #[test]
    fn a_planted_symlink_or_file_is_never_written_through() {
        let (tmp, s) = scratch();
        let target = tmp.path().join("victim");
        std::fs::write(&target, "original").unwrap();
        let link = s.dir().join("planted.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let err = open_new(&link).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        let dangling = s.dir().join("dangling.json");
        std::os::unix::fs::symlink(tmp.path().join("nothing"), &dangling).unwrap();
        assert!(open_new(&dangling).is_err());
        assert!(!tmp.path().join("nothing").exists());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "original");
    }
}
