//! A sync rule's `exclude` patterns, with gitignore semantics (`*.map` at any depth,
//! `dist/` for directories only, `/build` anchored at the root, `!keep` to re-include).
//! Excluded paths are neither sent nor deleted in the container.

use std::path::Path;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

use super::error::SyncError;
use super::path::RelPath;

#[derive(Clone)]
pub struct Excludes {
    matcher: Gitignore,
}

impl std::fmt::Debug for Excludes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Excludes")
            .field("patterns", &self.matcher.num_ignores())
            .finish()
    }
}

impl Excludes {
    pub fn new(patterns: &[String]) -> Result<Self, SyncError> {
        // Paths are matched relative to the root, so the root itself does not matter.
        let mut builder = GitignoreBuilder::new(Path::new("/"));
        for pattern in patterns {
            builder
                .add_line(None, pattern)
                .map_err(|source| SyncError::Exclude {
                    pattern: pattern.clone(),
                    source,
                })?;
        }
        let matcher = builder.build().map_err(|source| SyncError::Exclude {
            pattern: patterns.join(", "),
            source,
        })?;
        Ok(Self { matcher })
    }

    pub fn none() -> Self {
        Self {
            matcher: Gitignore::empty(),
        }
    }

    /// Whether `path` itself is excluded (for a walk that prunes excluded directories).
    pub fn excludes(&self, path: &RelPath, is_dir: bool) -> bool {
        self.matcher
            .matched(Path::new(path.as_str()), is_dir)
            .is_ignore()
    }

    /// Whether `path` or a directory above it is excluded (for flat listings).
    pub fn excludes_within(&self, path: &RelPath, is_dir: bool) -> bool {
        self.excludes(path, is_dir) || path.ancestors().any(|a| self.excludes(&a, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    #[test]
    fn gitignore_semantics() {
        let ex = Excludes::new(&[
            "*.map".into(),
            "node_modules/".into(),
            "/build".into(),
            "!keep.map".into(),
        ])
        .unwrap();
        assert!(ex.excludes(&p("a.map"), false));
        assert!(ex.excludes(&p("deep/er/a.map"), false));
        assert!(!ex.excludes(&p("deep/keep.map"), false));
        assert!(ex.excludes(&p("x/node_modules"), true));
        assert!(!ex.excludes(&p("x/node_modules"), false));
        assert!(ex.excludes(&p("build"), true));
        assert!(!ex.excludes(&p("src/build"), true));
        assert!(ex.excludes_within(&p("x/node_modules/y/z.js"), false));
        assert!(!ex.excludes_within(&p("x/src/z.js"), false));
    }

    #[test]
    fn bad_pattern_is_named() {
        let err = Excludes::new(&["{a,b".into()]).unwrap_err();
        assert!(matches!(err, SyncError::Exclude { ref pattern, .. } if pattern == "{a,b"));
    }
}
