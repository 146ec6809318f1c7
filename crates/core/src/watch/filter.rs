//! What a watch ignores: `.gitignore` and `.ignore` files (with the `ignore` crate's
//! precedence: `.ignore` over `.gitignore`, a deeper file over a shallower one), the
//! repository's `.git/info/exclude`, the user's global git excludes, version-control
//! directories, and each rule's own globs.
//!
//! Ignore files apply whether or not the tree is a git repository: a project copied
//! out of one keeps behaving the same.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::Match;

/// Directories never watched nor reported: version-control internals change on every
/// `git status` and are not the project's sources.
pub(crate) const VCS_DIRS: [&str; 4] = [".git", ".hg", ".svn", ".jj"];

pub(crate) const IGNORE_FILE: &str = ".ignore";
pub(crate) const GITIGNORE_FILE: &str = ".gitignore";

/// Whether `name` is a version-control directory name.
pub(crate) fn is_vcs_dir(name: &std::ffi::OsStr) -> bool {
    VCS_DIRS.iter().any(|d| name == *d)
}

/// Whether `name` is a file editors write beside the one being edited and then remove
/// (vim's swap files, its `4913` write test and `~` backups, emacs's `.#` locks and
/// `#..#` autosaves, JetBrains' safe-write copies). A save is seen on the real file; these
/// would only cause a second, spurious restart.
pub(crate) fn is_editor_temp(name: &std::ffi::OsStr) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    const SUFFIXES: [&str; 7] = [
        ".swp",
        ".swo",
        ".swx",
        ".swn",
        "~",
        "___jb_tmp___",
        "___jb_old___",
    ];
    name == "4913"
        || name.starts_with(".#")
        || (name.len() > 2 && name.starts_with('#') && name.ends_with('#'))
        || SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Whether a change of this file changes what is ignored.
pub(crate) fn is_ignore_file(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n == IGNORE_FILE || n == GITIGNORE_FILE)
}

/// Excludes that apply to a whole repository, below every ignore file.
#[derive(Debug, Default)]
pub(crate) struct Base {
    /// No ignore files at all (sync rules: only their own excludes apply).
    off: bool,
    /// `.git/info/exclude` of the repository, if any.
    exclude: Option<Gitignore>,
    /// `core.excludesFile` or `~/.config/git/ignore`.
    global: Option<Gitignore>,
}

impl Base {
    /// The excludes of the repository containing `top` (when it is one) and the user's.
    pub(crate) fn load(top: &Path) -> (Self, Vec<String>) {
        let mut errors = Vec::new();
        let exclude = top.join(".git").join("info").join("exclude");
        let exclude = if exclude.is_file() {
            build(top, &exclude, &mut errors)
        } else {
            None
        };
        let (global, err) = GitignoreBuilder::new(top).build_global();
        if let Some(e) = err {
            errors.push(format!("global git excludes: {e}"));
        }
        let global = (!global.is_empty()).then_some(global);
        (
            Self {
                off: false,
                exclude,
                global,
            },
            errors,
        )
    }

    /// A base under which no ignore file applies.
    pub(crate) fn off() -> Self {
        Self {
            off: true,
            ..Self::default()
        }
    }
}

/// The ignore files that apply below one directory: its own and its ancestors',
/// as a linked list shared by every directory that adds none.
#[derive(Debug)]
pub(crate) struct Chain {
    ignore: Option<Gitignore>,
    gitignore: Option<Gitignore>,
    parent: Option<Arc<Chain>>,
    base: Arc<Base>,
}

impl Chain {
    /// A chain with no ignore files yet, above the topmost directory looked at.
    pub(crate) fn top(base: Arc<Base>) -> Arc<Self> {
        Arc::new(Self {
            ignore: None,
            gitignore: None,
            parent: None,
            base,
        })
    }

    /// The chain for the entries of `dir`: this one plus `dir`'s own ignore files.
    /// `has_ignore`/`has_gitignore` say whether they exist (the caller has read the
    /// directory, so this costs no extra lookups when they don't). Unreadable or
    /// malformed files are reported in `errors` and apply as far as they parse.
    pub(crate) fn descend(
        self: &Arc<Self>,
        dir: &Path,
        has_ignore: bool,
        has_gitignore: bool,
        errors: &mut Vec<String>,
    ) -> Arc<Self> {
        if self.base.off {
            return self.clone();
        }
        let ignore = if has_ignore {
            build(dir, &dir.join(IGNORE_FILE), errors)
        } else {
            None
        };
        let gitignore = if has_gitignore {
            build(dir, &dir.join(GITIGNORE_FILE), errors)
        } else {
            None
        };
        if ignore.is_none() && gitignore.is_none() {
            return self.clone();
        }
        Arc::new(Self {
            ignore,
            gitignore,
            parent: Some(self.clone()),
            base: self.base.clone(),
        })
    }

    /// Like [`Chain::descend`], looking up the ignore files itself.
    pub(crate) fn descend_probe(
        self: &Arc<Self>,
        dir: &Path,
        errors: &mut Vec<String>,
    ) -> Arc<Self> {
        self.descend(
            dir,
            dir.join(IGNORE_FILE).is_file(),
            dir.join(GITIGNORE_FILE).is_file(),
            errors,
        )
    }

    /// Whether `path`, an entry of the directory this chain was made for, is ignored.
    /// Its ancestors are not looked at: the walk never enters an ignored directory.
    pub(crate) fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        if path.file_name().is_some_and(is_vcs_dir) {
            return true;
        }
        if !is_dir && path.file_name().is_some_and(is_editor_temp) {
            return true;
        }
        let pick: [fn(&Chain) -> Option<&Gitignore>; 2] =
            [|c| c.ignore.as_ref(), |c| c.gitignore.as_ref()];
        for get in pick {
            let mut node = Some(self);
            while let Some(n) = node {
                if let Some(gi) = get(n) {
                    match gi.matched(path, is_dir) {
                        Match::Ignore(_) => return true,
                        Match::Whitelist(_) => return false,
                        Match::None => {}
                    }
                }
                node = n.parent.as_deref();
            }
        }
        for gi in [&self.base.exclude, &self.base.global]
            .into_iter()
            .flatten()
        {
            match gi.matched(path, is_dir) {
                Match::Ignore(_) => return true,
                Match::Whitelist(_) => return false,
                Match::None => {}
            }
        }
        false
    }
}

fn build(root: &Path, file: &Path, errors: &mut Vec<String>) -> Option<Gitignore> {
    let mut builder = GitignoreBuilder::new(root);
    if let Some(e) = builder.add(file) {
        errors.push(format!("{}: {e}", file.display()));
    }
    match builder.build() {
        Ok(gi) if gi.is_empty() => None,
        Ok(gi) => Some(gi),
        Err(e) => {
            errors.push(format!("{}: {e}", file.display()));
            None
        }
    }
}

/// One rule's `ignore` globs, in `.gitignore` syntax relative to each watched path:
/// `*.pyc` anywhere below it, `/build` only directly in it, `tmp/` only directories.
#[derive(Debug)]
pub(crate) struct RuleFilter {
    /// Per watched directory of the rule, deepest last.
    roots: Vec<(PathBuf, Gitignore)>,
}

impl RuleFilter {
    /// A filter for `globs` below each of `roots`. Bad globs are reported in `errors`
    /// and left out.
    pub(crate) fn new(roots: &[PathBuf], globs: &[String], errors: &mut Vec<String>) -> Self {
        let mut out = Vec::new();
        for root in roots {
            let mut builder = GitignoreBuilder::new(root);
            for g in globs {
                if let Err(e) = builder.add_line(None, g) {
                    if root == &roots[0] {
                        errors.push(format!("ignore glob `{g}`: {e}"));
                    }
                }
            }
            match builder.build() {
                Ok(gi) => out.push((root.clone(), gi)),
                Err(e) => errors.push(format!("ignore globs: {e}")),
            }
        }
        out.sort_by_key(|(r, _)| r.components().count());
        Self { roots: out }
    }

    /// Whether the rule ignores `path`, an entry of a directory it watches (its
    /// ancestors below the watched path were checked on the way down).
    pub(crate) fn is_ignored(&self, path: &Path, is_dir: bool) -> bool {
        self.roots
            .iter()
            .rev()
            .find(|(root, _)| path.starts_with(root) && path != root)
            .is_some_and(|(_, gi)| gi.matched(path, is_dir).is_ignore())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn chain_for(top: &Path, dirs: &[&Path]) -> Arc<Chain> {
        let mut errors = Vec::new();
        let mut c = Chain::top(Arc::default());
        for d in dirs {
            c = c.descend_probe(d, &mut errors);
        }
        assert!(errors.is_empty(), "{errors:?} under {}", top.display());
        c
    }

    #[test]
    fn gitignore_precedence_deeper_wins_and_ignore_beats_gitignore() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        write(&root.join(".gitignore"), "*.log\nbuild/\n/top-only\n");
        write(&root.join("sub/.gitignore"), "!keep.log\n");
        write(&root.join("sub/.ignore"), "secret.txt\n");
        let top = chain_for(root, &[root]);
        let sub = chain_for(root, &[root, &root.join("sub")]);

        assert!(top.is_ignored(&root.join("a.log"), false));
        assert!(!top.is_ignored(&root.join("a.txt"), false));
        assert!(top.is_ignored(&root.join("build"), true));
        // `build/` names directories only.
        assert!(!top.is_ignored(&root.join("build"), false));
        assert!(top.is_ignored(&root.join("top-only"), false));

        // Inherited from the parent's .gitignore, except where the deeper one whitelists.
        assert!(sub.is_ignored(&root.join("sub/other.log"), false));
        assert!(!sub.is_ignored(&root.join("sub/keep.log"), false));
        // Anchored patterns stay anchored to their own directory.
        assert!(!sub.is_ignored(&root.join("sub/top-only"), false));
        assert!(sub.is_ignored(&root.join("sub/secret.txt"), false));
    }

    #[test]
    fn ignore_file_overrides_gitignore_at_any_depth() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        write(&root.join(".ignore"), "!gen.rs\n");
        write(&root.join("src/.gitignore"), "gen.rs\n");
        let c = chain_for(root, &[root, &root.join("src")]);
        assert!(!c.is_ignored(&root.join("src/gen.rs"), false));
    }

    #[test]
    fn vcs_dirs_are_always_ignored() {
        let c = Chain::top(Arc::default());
        assert!(c.is_ignored(Path::new("/p/.git"), true));
        assert!(c.is_ignored(Path::new("/p/.hg"), true));
        assert!(!c.is_ignored(Path::new("/p/.github"), true));
        assert!(!c.is_ignored(Path::new("/p/.env"), false));
    }

    #[test]
    fn editor_temp_files_are_always_ignored() {
        let c = Chain::top(Arc::default());
        for name in [
            ".main.py.swp",
            ".main.py.swx",
            "main.py~",
            ".#main.py",
            "#main.py#",
            "4913",
            "main.py___jb_tmp___",
            "main.py___jb_old___",
        ] {
            assert!(c.is_ignored(&Path::new("/p").join(name), false), "{name}");
        }
        for name in ["main.py", "swp.py", "4914", "#", "a#b"] {
            assert!(!c.is_ignored(&Path::new("/p").join(name), false), "{name}");
        }
        // A directory of such a name is somebody's real directory.
        assert!(!c.is_ignored(Path::new("/p/backup~"), true));
    }

    #[test]
    fn repository_exclude_applies() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        write(&root.join(".git/info/exclude"), "*.tmp\n");
        let (base, errors) = Base::load(root);
        assert!(errors.is_empty(), "{errors:?}");
        let c = Chain::top(Arc::new(base));
        assert!(c.is_ignored(&root.join("x.tmp"), false));
        assert!(!c.is_ignored(&root.join("x.rs"), false));
    }

    #[test]
    fn rule_globs_are_relative_to_each_watched_path() {
        let roots = vec![PathBuf::from("/p/api"), PathBuf::from("/p/lib")];
        let globs = vec![
            "*.pyc".to_string(),
            "/build".to_string(),
            "tmp/".to_string(),
        ];
        let mut errors = Vec::new();
        let f = RuleFilter::new(&roots, &globs, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(f.is_ignored(Path::new("/p/api/x/y.pyc"), false));
        assert!(f.is_ignored(Path::new("/p/lib/build"), true));
        assert!(!f.is_ignored(Path::new("/p/lib/x/build"), true));
        assert!(f.is_ignored(Path::new("/p/api/a/tmp"), true));
        assert!(!f.is_ignored(Path::new("/p/api/a/tmp"), false));
        assert!(!f.is_ignored(Path::new("/p/api/main.py"), false));
        // Outside the rule's paths nothing is the rule's business.
        assert!(!f.is_ignored(Path::new("/p/other/y.pyc"), false));
    }

    #[test]
    fn bad_rule_globs_are_reported() {
        let mut errors = Vec::new();
        let f = RuleFilter::new(&[PathBuf::from("/p")], &["{a,b".to_string()], &mut errors);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(!f.is_ignored(Path::new("/p/{a,b"), false));
    }
}
