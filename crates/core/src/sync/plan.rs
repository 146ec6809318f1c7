//! Comparing trees, and turning what differs into batches for the receiver.

use std::collections::{BTreeMap, BTreeSet};

use super::exclude::Excludes;
use super::path::RelPath;
use super::tar;
use super::tree::{Entry, Kind, Tree};

/// How a path differs between the local tree and the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffKind {
    /// Local only.
    Missing,
    /// In the container only.
    Extra,
    /// A file on one side, a directory or symlink on the other.
    Type,
    Content,
    Mode,
    LinkTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub path: RelPath,
    pub kind: DiffKind,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            DiffKind::Missing => "missing in the container",
            DiffKind::Extra => "only in the container",
            DiffKind::Type => "different type",
            DiffKind::Content => "different content",
            DiffKind::Mode => "different mode",
            DiffKind::LinkTarget => "different symlink target",
        };
        write!(f, "{}: {what}", self.path)
    }
}

/// Differences between `local` and `remote`, ignoring excluded remote paths and the
/// `pinned` directories (those holding a name sync can't handle, see
/// [`super::tree::opaque_ancestors`]). A file's content is equal when the sizes are and
/// either both MD5s are known and equal, or neither was computed and the mtimes are
/// equal (the quick check: the caller hashes every file whose mtime it does not trust).
pub fn compare(
    local: &Tree,
    remote: &Tree,
    excludes: &Excludes,
    pinned: &BTreeSet<RelPath>,
) -> Vec<Difference> {
    let keep = holding_excluded(remote, excludes, pinned);
    let mut out = Vec::new();
    for (path, l) in local {
        let kind = match remote.get(path) {
            None => Some(DiffKind::Missing),
            Some(r) if r.kind != l.kind => Some(DiffKind::Type),
            Some(r) => match l.kind {
                Kind::File
                    if l.size != r.size
                        || l.md5 != r.md5
                        || (l.md5.is_none() && l.mtime != r.mtime) =>
                {
                    Some(DiffKind::Content)
                }
                Kind::Symlink if l.target != r.target => Some(DiffKind::LinkTarget),
                Kind::File | Kind::Dir if l.mode != r.mode => Some(DiffKind::Mode),
                _ => None,
            },
        };
        if let Some(kind) = kind {
            out.push(Difference {
                path: path.clone(),
                kind,
            });
        }
    }
    for (path, r) in remote {
        if !local.contains_key(path)
            && !keep.contains(path)
            && !excludes.excludes_within(path, r.kind == Kind::Dir)
        {
            out.push(Difference {
                path: path.clone(),
                kind: DiffKind::Extra,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The directories of `remote` with an excluded path inside, and the pinned ones: never
/// removed whole.
fn holding_excluded(
    remote: &Tree,
    excludes: &Excludes,
    pinned: &BTreeSet<RelPath>,
) -> BTreeSet<RelPath> {
    let mut keep = pinned.clone();
    for (path, r) in remote {
        if excludes.excludes_within(path, r.kind == Kind::Dir) {
            keep.extend(path.ancestors());
        }
    }
    keep
}

/// What to do: delete these (first), then send these local entries (parents first).
#[derive(Debug, Default)]
pub struct Plan {
    pub deletes: Vec<RelPath>,
    pub sends: BTreeMap<RelPath, Entry>,
}

impl Plan {
    /// The plan that makes `remote` equal `local` given their `differences`. Extra
    /// directories are removed whole unless something excluded lies inside them.
    pub fn from_differences(
        differences: &[Difference],
        local: &Tree,
        remote: &Tree,
        excludes: &Excludes,
        pinned: &BTreeSet<RelPath>,
    ) -> Plan {
        let mut plan = Plan::default();
        let keep = holding_excluded(remote, excludes, pinned);
        let mut whole = BTreeSet::new();
        for d in differences {
            match d.kind {
                DiffKind::Extra => {
                    if d.path.ancestors().any(|a| whole.contains(&a)) {
                        continue;
                    }
                    let is_dir = remote.get(&d.path).is_some_and(|e| e.kind == Kind::Dir);
                    if !(is_dir && keep.contains(&d.path)) {
                        whole.insert(d.path.clone());
                        plan.deletes.push(d.path.clone());
                    }
                }
                // Replacing it would delete what it holds that sync can't name.
                DiffKind::Type if pinned.contains(&d.path) => {}
                DiffKind::Type => {
                    plan.deletes.push(d.path.clone());
                    plan.send(local, &d.path);
                }
                _ => plan.send(local, &d.path),
            }
        }
        plan
    }

    fn send(&mut self, local: &Tree, path: &RelPath) {
        if let Some(e) = local.get(path) {
            self.sends.insert(path.clone(), e.clone());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.deletes.is_empty() && self.sends.is_empty()
    }

    /// Drops the entries below a symlink the plan sends: the local tree can't have both
    /// (they were read at different moments, around a directory being replaced by a
    /// link), and in one tar the link would be created first and the entry written
    /// through it, outside the target.
    fn drop_beneath_symlinks(&mut self) {
        let links: BTreeSet<RelPath> = self
            .sends
            .iter()
            .filter(|(_, e)| e.kind == Kind::Symlink)
            .map(|(p, _)| p.clone())
            .collect();
        if !links.is_empty() {
            self.sends
                .retain(|p, _| !p.ancestors().any(|a| links.contains(&a)));
        }
    }

    /// Splits the plan into batches of bounded size, deletes first; never a symlink and
    /// a path beneath it.
    pub fn into_batches(mut self, limits: Limits) -> Vec<Batch> {
        self.drop_beneath_symlinks();
        let mut out = Vec::new();
        let mut cur = Batch::default();
        for path in self.deletes {
            if cur.lines() >= limits.lines {
                out.push(std::mem::take(&mut cur));
            }
            cur.deletes.push(path);
        }
        for (path, entry) in self.sends {
            let size = tar::entry_size(&path, &entry);
            let full = !cur.entries.is_empty()
                && (cur.payload + size > limits.bytes || cur.lines() >= limits.lines);
            if full {
                out.push(std::mem::take(&mut cur));
            }
            cur.checks.extend(path.ancestors());
            if entry.kind == Kind::Dir {
                cur.checks.insert(path.clone());
            }
            if cur.entries.is_empty() {
                cur.payload = tar::END.len() as u64;
            }
            cur.payload += size;
            cur.entries.push((path, entry));
        }
        if cur.lines() > 0 || !cur.entries.is_empty() {
            out.push(cur);
        }
        out
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Tar bytes per batch (a single larger file still goes alone).
    pub bytes: u64,
    /// Check and delete lines per batch.
    pub lines: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            bytes: 4 << 20,
            lines: 4096,
        }
    }
}

/// One request to the receiver: checked directories, deletes, a tar of entries.
#[derive(Debug, Default)]
pub struct Batch {
    pub checks: BTreeSet<RelPath>,
    pub deletes: Vec<RelPath>,
    pub entries: Vec<(RelPath, Entry)>,
    /// The tar's exact size (0 without entries).
    pub payload: u64,
}

impl Batch {
    fn lines(&self) -> usize {
        self.checks.len() + self.deletes.len()
    }

    /// The request line and path lines that precede the tar.
    pub fn head(&self, id: u64) -> Vec<u8> {
        let mut out = format!(
            "B {id} {} {} {}\n",
            self.deletes.len(),
            self.checks.len(),
            self.payload
        );
        for p in self.deletes.iter().chain(&self.checks) {
            out.push_str(p.as_str());
            out.push('\n');
        }
        out.into_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> RelPath {
        RelPath::new(s).unwrap()
    }

    fn file(content: &[u8], mode: u32) -> Entry {
        use md5::{Digest, Md5};
        Entry {
            kind: Kind::File,
            mode,
            size: content.len() as u64,
            mtime: 0,
            ctime: 0,
            md5: Some(Md5::digest(content).into()),
            target: None,
        }
    }

    fn dir() -> Entry {
        Entry {
            kind: Kind::Dir,
            mode: 0o755,
            size: 0,
            mtime: 0,
            ctime: 0,
            md5: None,
            target: None,
        }
    }

    fn link(t: &str) -> Entry {
        Entry {
            kind: Kind::Symlink,
            mode: 0o777,
            size: 0,
            mtime: 0,
            ctime: 0,
            md5: None,
            target: Some(t.into()),
        }
    }

    #[test]
    fn compares_every_kind_of_difference() {
        let local = Tree::from([
            (p("same"), file(b"x", 0o644)),
            (p("edited"), file(b"new", 0o644)),
            (p("chmod"), file(b"x", 0o755)),
            (p("new"), file(b"x", 0o644)),
            (p("was-dir"), file(b"x", 0o644)),
            (p("ln"), link("a")),
            (p("d"), dir()),
        ]);
        let remote = Tree::from([
            (p("same"), file(b"x", 0o644)),
            (p("edited"), file(b"old", 0o644)),
            (p("chmod"), file(b"x", 0o644)),
            (p("was-dir"), dir()),
            (p("was-dir/f"), file(b"x", 0o644)),
            (p("ln"), link("b")),
            (p("d"), dir()),
            (p("extra"), file(b"x", 0o644)),
            (p("x.map"), file(b"x", 0o644)),
        ]);
        let ex = Excludes::new(&["*.map".into()]).unwrap();
        let diffs: Vec<_> = compare(&local, &remote, &ex, &BTreeSet::new())
            .into_iter()
            .map(|d| (d.path.to_string(), d.kind))
            .collect();
        assert_eq!(
            diffs,
            [
                ("chmod".into(), DiffKind::Mode),
                ("edited".into(), DiffKind::Content),
                ("extra".into(), DiffKind::Extra),
                ("ln".into(), DiffKind::LinkTarget),
                ("new".into(), DiffKind::Missing),
                ("was-dir".into(), DiffKind::Type),
                ("was-dir/f".into(), DiffKind::Extra),
            ]
        );
    }

    #[test]
    fn extra_dirs_go_whole_unless_they_hold_excluded_files() {
        let local = Tree::new();
        let remote = Tree::from([
            (p("gone"), dir()),
            (p("gone/a"), file(b"", 0o644)),
            (p("gone/b"), dir()),
            (p("gone/b/c"), file(b"", 0o644)),
            (p("kept"), dir()),
            (p("kept/a"), file(b"", 0o644)),
            (p("kept/a.map"), file(b"", 0o644)),
        ]);
        let ex = Excludes::new(&["*.map".into()]).unwrap();
        let diffs = compare(&local, &remote, &ex, &BTreeSet::new());
        let plan = Plan::from_differences(&diffs, &local, &remote, &ex, &BTreeSet::new());
        let deletes: Vec<_> = plan.deletes.iter().map(|d| d.as_str()).collect();
        assert_eq!(deletes, ["gone", "kept/a"]);
    }

    #[test]
    fn directories_holding_opaque_names_are_not_removed_whole() {
        let local = Tree::from([(p("site"), dir())]);
        let remote = Tree::from([
            (p("site"), dir()),
            (p("old"), dir()),
            (p("old/a"), file(b"", 0o644)),
            (p("old/b"), dir()),
            (p("old/b/c"), file(b"", 0o644)),
            (p("was-dir"), dir()),
        ]);
        let local = {
            let mut l = local;
            l.insert(p("was-dir"), file(b"x", 0o644));
            l
        };
        // `old/b` and `was-dir` hold a name that is not UTF-8.
        let pinned = BTreeSet::from([p("old"), p("old/b"), p("was-dir")]);
        let ex = Excludes::none();
        let diffs = compare(&local, &remote, &ex, &pinned);
        let plan = Plan::from_differences(&diffs, &local, &remote, &ex, &pinned);
        let deletes: Vec<_> = plan.deletes.iter().map(|d| d.as_str()).collect();
        assert_eq!(deletes, ["old/a", "old/b/c"]);
        assert!(plan.sends.is_empty(), "{:?}", plan.sends);
    }

    #[test]
    fn a_symlink_and_a_path_beneath_it_are_never_sent_together() {
        let mut plan = Plan::default();
        plan.sends.insert(p("a"), link("/etc"));
        plan.sends.insert(p("a/passwd"), file(b"x", 0o644));
        plan.sends.insert(p("a/b/c"), file(b"x", 0o644));
        plan.sends.insert(p("ab"), file(b"x", 0o644));
        let batches = plan.into_batches(Limits::default());
        let sent: Vec<_> = batches
            .iter()
            .flat_map(|b| b.entries.iter().map(|(p, _)| p.as_str()))
            .collect();
        assert_eq!(sent, ["a", "ab"]);
    }

    #[test]
    fn batches_are_bounded_and_check_every_parent() {
        let mut plan = Plan::default();
        plan.deletes.push(p("old"));
        plan.sends.insert(p("a"), dir());
        for i in 0..10 {
            plan.sends
                .insert(p(&format!("a/b/f{i}")), file(&[0u8; 3000], 0o644));
        }
        let batches = plan.into_batches(Limits {
            bytes: 8 * 1024,
            lines: 100,
        });
        assert!(batches.len() > 2, "{} batches", batches.len());
        assert_eq!(batches[0].deletes, [p("old")]);
        let sent: usize = batches.iter().map(|b| b.entries.len()).sum();
        assert_eq!(sent, 11);
        for b in &batches {
            for (path, _) in &b.entries {
                assert!(path.ancestors().all(|a| b.checks.contains(&a)));
            }
            let size: u64 = b
                .entries
                .iter()
                .map(|(p, e)| tar::entry_size(p, e))
                .sum::<u64>();
            assert_eq!(b.payload, size + 1024);
        }
        let head = String::from_utf8(batches[0].head(7)).unwrap();
        assert!(head.starts_with("B 7 1 2 "), "{head}");
        assert!(head.ends_with("\nold\na\na/b\n"), "{head}");
    }

    #[test]
    fn the_quick_check_trusts_equal_mtimes_only_when_nothing_was_hashed() {
        let unhashed = |mtime| Entry {
            md5: None,
            mtime,
            ..file(b"abc", 0o644)
        };
        let none = Excludes::new(&[]).unwrap();
        let local = Tree::from([
            (p("same"), unhashed(100)),
            (p("touched"), unhashed(200)),
            (p("hashed-one-side"), file(b"abc", 0o644)),
        ]);
        let remote = Tree::from([
            (p("same"), unhashed(100)),
            (p("touched"), unhashed(100)),
            (p("hashed-one-side"), unhashed(0)),
        ]);
        let kinds: Vec<_> = compare(&local, &remote, &none, &BTreeSet::new())
            .into_iter()
            .map(|d| (d.path.as_str().to_owned(), d.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("hashed-one-side".to_owned(), DiffKind::Content),
                ("touched".to_owned(), DiffKind::Content),
            ]
        );
    }
}
