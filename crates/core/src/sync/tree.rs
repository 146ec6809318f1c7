//! Trees of entries on both sides: the local directory (walked, excludes pruned) and the
//! container's target (parsed from the receiver's listing).

use std::collections::BTreeMap;
use std::path::Path;

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

/// The MD5 of a local file, streamed.
pub fn md5_file(path: &Path) -> std::io::Result<[u8; 16]> {
    super::local::md5_of(std::fs::File::open(path)?)
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

/// The directories above a path the listing names in a line that is not UTF-8 (or
/// was cut short): the ones whose names can be read, outermost first. They hold
/// something sync can't name, so they are never removed whole.
pub fn opaque_ancestors(line: &[u8]) -> Vec<RelPath> {
    let Some(start) = line.windows(2).position(|w| w == b"./") else {
        return Vec::new();
    };
    let mut components: Vec<&[u8]> = line[start + 2..].split(|b| *b == b'/').collect();
    // The last component is the name itself (possibly cut, or followed by a link's
    // target in an `N` line): never a directory to keep.
    components.pop();
    let mut out = Vec::new();
    let mut path: Option<RelPath> = None;
    for c in components {
        let Ok(c) = std::str::from_utf8(c) else { break };
        let next = match &path {
            Some(p) => p.join(c),
            None => RelPath::new(c),
        };
        let Ok(next) = next else { break };
        out.push(next.clone());
        path = Some(next);
    }
    out
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
    fn the_readable_parents_of_an_opaque_name_are_kept() {
        let names = |line: &[u8]| -> Vec<String> {
            opaque_ancestors(line)
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect()
        };
        assert_eq!(names(b"S 81a4 1 2 3 ./a/b/caf\xe9"), ["a", "a/b"]);
        assert_eq!(names(b"S 41ed 1 2 3 ./a/\xff/c/d"), ["a"]);
        assert_eq!(names(b"S 81a4 1 2 3 ./top\xff"), Vec::<String>::new());
        assert_eq!(names(b"M 0123  ./x/y\xff"), ["x"]);
        assert_eq!(names(b"garbage"), Vec::<String>::new());
    }
}
