//! Finding the directories to watch: a breadth-first walk that reads each directory
//! once, applies ignore files and the rules' globs on the way, and never enters an
//! ignored tree. Breadth first, so that when the inotify budget runs out it is the
//! deepest directories that are polled.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::filter::{is_vcs_dir, Chain, RuleFilter, GITIGNORE_FILE, IGNORE_FILE};

/// Indices of the rules watching a directory; shared by all directories with the same set.
pub(crate) type Rules = Arc<[u16]>;

#[derive(Debug, Clone)]
pub(crate) struct DirInfo {
    /// Ignore files that apply to the directory itself (its parent's entries).
    pub above: Arc<Chain>,
    /// Ignore files that apply to its entries.
    pub chain: Arc<Chain>,
    /// Rules watching it (empty: watched only for a rule naming one of its files).
    pub rules: Rules,
}

/// Where a walk puts the directories it finds.
pub(crate) trait Sink {
    fn contains(&self, dir: &Path) -> bool;
    fn put(&mut self, dir: PathBuf, info: DirInfo);
}

impl Sink for BTreeMap<PathBuf, DirInfo> {
    fn contains(&self, dir: &Path) -> bool {
        self.contains_key(dir)
    }
    fn put(&mut self, dir: PathBuf, info: DirInfo) {
        self.insert(dir, info);
    }
}

/// Hands each directory on as soon as it is found (to the thread adding watches).
pub(crate) struct Forward {
    pub seen: HashSet<PathBuf>,
    pub tx: std::sync::mpsc::SyncSender<(PathBuf, DirInfo)>,
}

impl Sink for Forward {
    fn contains(&self, dir: &Path) -> bool {
        self.seen.contains(dir)
    }
    fn put(&mut self, dir: PathBuf, info: DirInfo) {
        self.seen.insert(dir.clone());
        // The receiver gone: the watcher is stopping.
        let _ = self.tx.send((dir, info));
    }
}

/// What the walk decides by.
#[derive(Debug)]
pub(crate) struct Walker<'a> {
    pub filters: &'a [RuleFilter],
    /// Directories named by rules, with the rules naming them.
    pub roots: &'a HashMap<PathBuf, Vec<u16>>,
    /// Set when the watcher is stopped: a long walk gives up.
    pub stop: &'a AtomicBool,
}

impl Walker<'_> {
    /// Rules watching `child`, a directory inside one watched by `parent`.
    pub(crate) fn rules_for(&self, child: &Path, parent: &Rules) -> Rules {
        let own = self.roots.get(child);
        let dropped = parent
            .iter()
            .any(|r| self.filters[usize::from(*r)].is_ignored(child, true));
        if own.is_none() && !dropped {
            return parent.clone();
        }
        let mut v: Vec<u16> = parent
            .iter()
            .copied()
            .filter(|r| !self.filters[usize::from(*r)].is_ignored(child, true))
            .collect();
        v.extend(own.into_iter().flatten().copied());
        v.sort_unstable();
        v.dedup();
        v.into()
    }

    /// Adds `dir` (already decided to be watched, by `rules`, with `above` applying to
    /// it) and every directory below it that is neither ignored nor left by all rules.
    /// Directories already in `out` are not walked again.
    pub(crate) fn walk(
        &self,
        dir: PathBuf,
        above: Arc<Chain>,
        rules: Rules,
        out: &mut impl Sink,
        errors: &mut Vec<String>,
    ) {
        let mut queue = VecDeque::from([(dir, above, rules)]);
        while let Some((dir, above, rules)) = queue.pop_front() {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            if out.contains(&dir) {
                continue;
            }
            let entries = match std::fs::read_dir(&dir) {
                Ok(e) => e,
                // Gone since it was seen: nothing to watch.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    errors.push(format!("cannot read {}: {e}", dir.display()));
                    continue;
                }
            };
            let mut children = Vec::new();
            let (mut has_ignore, mut has_gitignore) = (false, false);
            for entry in entries.flatten() {
                // The type from the directory entry itself: no stat per file. Symlinks
                // are not followed (no loops, no watching outside the tree).
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                let name = entry.file_name();
                if kind.is_dir() {
                    if !is_vcs_dir(&name) {
                        children.push(dir.join(name));
                    }
                } else if name == IGNORE_FILE {
                    has_ignore = true;
                } else if name == GITIGNORE_FILE {
                    has_gitignore = true;
                }
            }
            let chain = above.descend(&dir, has_ignore, has_gitignore, errors);
            for child in children {
                if chain.is_ignored(&child, true) {
                    continue;
                }
                let child_rules = self.rules_for(&child, &rules);
                if !child_rules.is_empty() {
                    queue.push_back((child, chain.clone(), child_rules));
                }
            }
            out.put(
                dir,
                DirInfo {
                    above,
                    chain,
                    rules,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkdirs(root: &Path, dirs: &[&str]) {
        for d in dirs {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
    }

    fn walk(
        root: &Path,
        rule_roots: &[(&str, &[&str])],
    ) -> (BTreeMap<PathBuf, DirInfo>, Vec<String>) {
        let mut errors = Vec::new();
        let mut filters = Vec::new();
        let mut roots: HashMap<PathBuf, Vec<u16>> = HashMap::new();
        for (i, (dir, globs)) in rule_roots.iter().enumerate() {
            let dir = root.join(dir);
            let globs: Vec<String> = globs.iter().map(|g| g.to_string()).collect();
            filters.push(RuleFilter::new(
                std::slice::from_ref(&dir),
                &globs,
                &mut errors,
            ));
            roots.entry(dir).or_default().push(i as u16);
        }
        let stop = AtomicBool::new(false);
        let w = Walker {
            filters: &filters,
            roots: &roots,
            stop: &stop,
        };
        let mut out = BTreeMap::new();
        let mut starts: Vec<(&PathBuf, &Vec<u16>)> = roots.iter().collect();
        starts.sort_by_key(|(p, _)| p.components().count());
        for (dir, rules) in starts {
            if !out.contains_key(dir) {
                let rules: Rules = rules.clone().into();
                w.walk(
                    dir.clone(),
                    Chain::top(Arc::default()),
                    rules,
                    &mut out,
                    &mut errors,
                );
            }
        }
        (out, errors)
    }

    fn rel(root: &Path, out: &BTreeMap<PathBuf, DirInfo>) -> Vec<String> {
        out.keys()
            .map(|p| p.strip_prefix(root).unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn skips_ignored_trees_and_vcs_dirs() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        mkdirs(
            root,
            &[
                "src/a/b",
                "node_modules/x/y",
                "target/debug",
                ".git/objects",
                ".config",
                "src/gen",
            ],
        );
        std::fs::write(root.join(".gitignore"), "node_modules/\n/target\n").unwrap();
        std::fs::write(root.join("src/.ignore"), "gen/\n").unwrap();
        let (out, errors) = walk(root, &[("", &[])]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rel(root, &out), ["", ".config", "src", "src/a", "src/a/b"]);
    }

    #[test]
    fn rule_globs_prune_per_rule_and_nested_roots_keep_their_rules() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        mkdirs(root, &["api/cache/deep", "api/src", "api/gen/out"]);
        // Rule 0 watches api but not its caches or generated code; rule 1 watches gen.
        let (out, errors) = walk(root, &[("api", &["cache/", "gen"]), ("api/gen", &[])]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            rel(root, &out),
            ["api", "api/gen", "api/gen/out", "api/src"]
        );
        assert_eq!(&*out[&root.join("api/src")].rules, &[0]);
        assert_eq!(&*out[&root.join("api/gen")].rules, &[1]);
        assert_eq!(&*out[&root.join("api/gen/out")].rules, &[1]);
    }

    #[test]
    fn does_not_follow_symlinked_dirs() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        mkdirs(root, &["a"]);
        std::os::unix::fs::symlink(root, root.join("a/loop")).unwrap();
        let (out, _) = walk(root, &[("", &[])]);
        assert_eq!(rel(root, &out), ["", "a"]);
    }
}
