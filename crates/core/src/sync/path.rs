//! Paths confined to the sync root: the only kind of path that reaches the receiver.
//!
//! A [`RelPath`] is relative, `/`-separated, with no empty, `.` or `..` component and no
//! NUL or newline (the receiver reads paths as lines). Anything else is refused before a
//! byte is sent, so a path can never name something outside the target directory by
//! itself; symlinks inside the target are the receiver's concern (see `receiver.rs`).

use std::fmt;
use std::path::{Component, Path};

use super::error::SyncError;

/// A validated path relative to the sync root (local directory or remote target).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(String);

impl RelPath {
    /// Checks a `/`-separated relative path, as the receiver would see it.
    pub fn new(path: &str) -> Result<Self, SyncError> {
        let refuse = |reason: &'static str| SyncError::Path {
            path: path.to_owned(),
            reason,
        };
        if path.is_empty() {
            return Err(refuse("empty path"));
        }
        if path.contains('\0') {
            return Err(refuse("NUL in name"));
        }
        if path.contains('\n') {
            return Err(refuse("newline in name"));
        }
        if path.starts_with('/') {
            return Err(refuse("absolute path"));
        }
        for component in path.split('/') {
            match component {
                "" => return Err(refuse("empty component")),
                "." => return Err(refuse("`.` component")),
                ".." => return Err(refuse("`..` component")),
                _ => {}
            }
        }
        Ok(Self(path.to_owned()))
    }

    /// Checks a local relative path (as given by a watcher or a user).
    pub fn from_path(path: &Path) -> Result<Self, SyncError> {
        let shown = || path.display().to_string();
        let mut parts = Vec::new();
        for component in path.components() {
            match component {
                Component::Normal(c) => match c.to_str() {
                    Some(s) => parts.push(s),
                    None => {
                        return Err(SyncError::Path {
                            path: shown(),
                            reason: "name is not UTF-8",
                        })
                    }
                },
                Component::CurDir => {}
                Component::ParentDir => {
                    return Err(SyncError::Path {
                        path: shown(),
                        reason: "`..` component",
                    })
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(SyncError::Path {
                        path: shown(),
                        reason: "absolute path",
                    })
                }
            }
        }
        if parts.is_empty() {
            return Err(SyncError::Path {
                path: shown(),
                reason: "empty path",
            });
        }
        Self::new(&parts.join("/"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The parent directory, `None` at the top level.
    pub fn parent(&self) -> Option<RelPath> {
        self.0.rfind('/').map(|i| RelPath(self.0[..i].to_owned()))
    }

    /// Every proper ancestor, outermost first (`a`, `a/b` for `a/b/c`).
    pub fn ancestors(&self) -> impl Iterator<Item = RelPath> + '_ {
        self.0
            .match_indices('/')
            .map(|(i, _)| RelPath(self.0[..i].to_owned()))
    }

    /// `a/b` is within `a` (and within itself).
    pub fn starts_with(&self, other: &RelPath) -> bool {
        self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    pub fn join(&self, name: &str) -> Result<RelPath, SyncError> {
        RelPath::new(&format!("{}/{name}", self.0))
    }
}

/// Top-level directories of a container that a sync must never own: deleting what the
/// local tree lacks there would take the system with it.
const SYSTEM_DIRS: &[&str] = &[
    "bin", "boot", "dev", "etc", "proc", "sbin", "sys", "usr", "var",
];

/// Why `dir` can't be a sync target (`to`), or `None` when it can: it must be absolute,
/// free of control characters and `..`, and not `/` nor a system directory (`/etc`,
/// `/usr`, `/lib*`, ... at the top level; below them is fine, e.g. `/usr/share/nginx/html`).
pub fn refused_target(dir: &str) -> Option<String> {
    if let Some(c) = dir.chars().find(|c| c.is_control()) {
        return Some(format!(
            "sync target {dir:?} contains a control character ({:?})",
            c
        ));
    }
    if !dir.starts_with('/') {
        return Some(format!("sync target `{dir}` is not an absolute path"));
    }
    let parts: Vec<&str> = dir
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.contains(&"..") {
        return Some(format!("sync target `{dir}` contains a `..` component"));
    }
    match parts.as_slice() {
        [] => Some(format!(
            "sync target `{dir}` is the container's root: a sync deletes what the local directory lacks"
        )),
        [top] if SYSTEM_DIRS.contains(top) || is_lib_dir(top) => Some(format!(
            "sync target `{dir}` is a system directory: a sync deletes what the local directory lacks"
        )),
        _ => None,
    }
}

/// `lib`, `lib32`, `lib64`, `libx32`, `libexec` (not `library`).
fn is_lib_dir(name: &str) -> bool {
    name.strip_prefix("lib").is_some_and(|rest| {
        rest.chars().all(|c| c.is_ascii_digit()) || rest == "x32" || rest == "exec"
    })
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn accepts_plain_relative_paths() {
        for p in [
            "a",
            "a/b/c.txt",
            "with space/ x ",
            ".hidden/..dots",
            "ü/日本",
        ] {
            assert_eq!(RelPath::new(p).unwrap().as_str(), p);
        }
    }

    #[test]
    fn refuses_escapes_and_unreadable_names() {
        for p in [
            "",
            "/etc/passwd",
            "..",
            "../x",
            "a/../../x",
            "a/..",
            "./a",
            "a/./b",
            "a//b",
            "a/",
            "a\nb",
            "a\0b",
        ] {
            assert!(
                matches!(RelPath::new(p), Err(SyncError::Path { .. })),
                "{p:?} should be refused"
            );
        }
    }

    #[test]
    fn local_paths_are_normalised_or_refused() {
        assert_eq!(
            RelPath::from_path(&PathBuf::from("./a/b"))
                .unwrap()
                .as_str(),
            "a/b"
        );
        for p in ["/etc/passwd", "../x", "a/../../b", ".", ""] {
            assert!(
                RelPath::from_path(&PathBuf::from(p)).is_err(),
                "{p:?} should be refused"
            );
        }
    }

    #[test]
    fn system_directories_and_odd_targets_are_refused() {
        for ok in [
            "/app",
            "/usr/share/nginx/html",
            "/var/www/html",
            "/srv/site/",
            "/home/dev/src",
            "/library",
        ] {
            assert_eq!(refused_target(ok), None, "{ok}");
        }
        for bad in [
            "/",
            "//",
            "/.",
            "/etc",
            "/etc/",
            "/usr",
            "/lib",
            "/lib64",
            "/libx32",
            "/proc",
            "/sys",
            "/dev",
            "/boot",
            "/sbin",
            "/var",
            "/bin",
            "//usr/./",
            "/app/../etc",
            "app",
            "",
            "/app\n",
            "/app\tx",
            "/a\u{7f}",
            "/a\u{85}b",
        ] {
            assert!(refused_target(bad).is_some(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn ancestry() {
        let p = RelPath::new("a/b/c").unwrap();
        let anc: Vec<_> = p.ancestors().map(|a| a.0).collect();
        assert_eq!(anc, ["a", "a/b"]);
        assert_eq!(p.parent().unwrap().as_str(), "a/b");
        assert!(RelPath::new("a").unwrap().parent().is_none());
        assert!(p.starts_with(&RelPath::new("a/b").unwrap()));
        assert!(!RelPath::new("a/bc")
            .unwrap()
            .starts_with(&RelPath::new("a/b").unwrap()));
    }
}
