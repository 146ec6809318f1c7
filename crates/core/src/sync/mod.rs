//! File sync into running containers (`dev.sync`), designed for latency.
//!
//! One [`Session`] per container holds ONE long-lived exec stream running a small
//! busybox/POSIX receiver (`receiver.rs`): opening an exec costs tens of milliseconds, a
//! request on an open stream costs a round trip. Changes go as batches — a tar of the
//! created or changed files, directories and symlinks (content, mode, mtime) plus the
//! paths to delete — applied in order and acknowledged one by one, so batches are
//! pipelined with a bound on unacknowledged bytes and file contents are streamed
//! from disk, never held whole in memory.
//!
//! - [`Session::initial_sync`] lists the container's tree (types, modes, sizes, times)
//!   in one round trip, compares it with the local tree and sends only what differs,
//!   deleting what the container has in excess (excluded paths are left alone). Files
//!   of equal size and mtime are equal unless the mtime can't be trusted (written
//!   within a second or two of it): those, and equal sizes with different mtimes, are
//!   hashed on both sides in one more round trip. [`Session::full_sync`] hashes every
//!   file of equal size (after changes were lost, e.g. an overflowing queue).
//! - [`Session::apply`] sends [`Change`]s as read from the local disk at send time.
//! - [`Session::verify`] compares both trees by checksum: empty means in sync.
//! - [`Session::status`] is what `devenv sync status` shows per pod.
//!
//! A missing source never deletes: the local directory is opened (and its identity
//! kept) before each comparison, and checked again before anything is sent; a
//! directory that is missing, not a directory, unreadable, moved away or replaced is a
//! [`SyncError::Source`] and the container is left as it is. Deleting everything in a
//! non-empty target needs the local directory read whole and found empty, and is
//! reported ([`SessionStatus::notice`]). Names in the container that are not UTF-8 are
//! left alone (their directories are never removed whole).
//!
//! Confinement: paths are [`RelPath`]s (relative, no `..`, no NUL or newline), refused
//! before sending; local symlinks are synced as symlinks, never followed (everything
//! below the root is opened with `O_NOFOLLOW`, see `local.rs`); in the
//! container the receiver refuses a batch that would write or delete through a symlink
//! (or a non-directory) below the target, so nothing lands outside it.

mod error;
mod exclude;
pub(crate) mod lines;
mod local;
mod path;
mod plan;
mod produce;
mod receiver;
mod replies;
mod session;
mod tar;
mod tree;

pub use error::{SourceProblem, SyncError};
pub use exclude::Excludes;
pub use local::RootState;
pub use path::{refused_target, RelPath};
pub use plan::{DiffKind, Difference};
pub use receiver::Reply;
pub use session::{Change, Session, SessionStatus, SyncStats, SyncTarget};
pub use tree::{md5_file, Entry, Kind};

/// The receiver's reply parser as a session applies it: each line as a reply, the
/// listing lines into a tree. Returns (replies, tree entries, unusable listing lines).
/// The entry point of the reply fuzz target (`fuzz/`); not a supported API.
#[doc(hidden)]
pub fn parse_receiver_output(text: &str) -> (usize, usize, usize) {
    let mut replies = 0;
    let mut listing = Vec::new();
    for line in text.lines() {
        match receiver::Reply::parse(line) {
            Some(receiver::Reply::Listing(line)) => listing.push(line),
            Some(_) => replies += 1,
            None => {}
        }
    }
    let (tree, bad) = tree::parse_listing(&listing);
    (replies, tree.len(), bad.len())
}

/// Like [`parse_receiver_output`] on raw bytes, as the session reads them: lines that
/// are not UTF-8 included (opaque listing lines and the directories they pin). Returns
/// (replies, tree entries, unusable listing lines, pinned directories). A fuzz entry
/// point; not a supported API.
#[doc(hidden)]
pub fn parse_receiver_bytes(bytes: &[u8]) -> (usize, usize, usize, usize) {
    let mut replies = 0;
    let mut listing = Vec::new();
    let mut pinned = std::collections::BTreeSet::new();
    for line in bytes.split(|b| *b == b'\n') {
        let line = &line[..line.len().min(replies::LINE_MAX)];
        match receiver::Reply::parse_bytes(line) {
            Some(receiver::Reply::Listing(line)) => listing.push(line),
            Some(receiver::Reply::Opaque(line)) => pinned.extend(tree::opaque_ancestors(&line)),
            Some(_) => replies += 1,
            None => {}
        }
    }
    let (tree, bad) = tree::parse_listing(&listing);
    (replies, tree.len(), bad.len(), pinned.len())
}
