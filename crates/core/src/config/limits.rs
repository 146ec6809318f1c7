//! Bounds on config input, enforced while it is read and parsed.
//!
//! A config comes from the user's files and environment, but it is parsed inside the
//! daemon that runs every environment: a 665-byte "billion laughs" file once grew devenvd
//! to 24 GB before the kernel killed it, taking every running service down with it. So
//! each input is capped before it can grow into anything big: files are read through a
//! bounded reader, and the YAML tree is counted while its events arrive (aliases
//! included), so a bomb is refused before it materialises. The figures are far above
//! any real project's config and far below what could hurt the daemon.

use std::io::Read;
use std::path::Path;

/// Largest config, environment or `.env` file read, and largest `DEVENV_*` value.
pub const MAX_INPUT_BYTES: usize = 1024 * 1024;
/// Deepest nesting of lists and mappings, in flow (`[[[`) and block style alike.
pub const MAX_DEPTH: usize = 64;
/// Most nodes (scalars, lists, mappings) one document may expand to, aliases included.
pub const MAX_NODES: usize = 100_000;
/// Most entries in one list or mapping (merging and checking compare entries pairwise).
pub const MAX_ENTRIES: usize = 10_000;
/// Most nodes that aliases (`*name`) may copy in one document.
pub const MAX_ALIAS_NODES: usize = 10_000;
/// Most bytes of scalar text one document may hold once aliases are expanded.
pub const MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;
/// Most bytes `${VAR}` interpolation may produce over a whole config.
pub const MAX_EXPANDED_BYTES: usize = 4 * 1024 * 1024;
/// Longest duration setting in seconds (one day): a probe or hook that may take longer
/// is a mistake, and far larger figures (`1e19`) overflow a clock when added to it.
pub const MAX_SECONDS: f64 = 86_400.0;

/// Why a file could not be read within the bounds.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("{} does not exist", .0.display())]
    NotFound(std::path::PathBuf),
    #[error("{} is not a regular file", .0.display())]
    NotAFile(std::path::PathBuf),
    #[error("{} is larger than {} KiB", .0.display(), .1 / 1024)]
    TooLarge(std::path::PathBuf, usize),
    #[error("{} is not UTF-8 text", .0.display())]
    NotUtf8(std::path::PathBuf),
    #[error("cannot read {}: {source}", .path.display())]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads a text file of at most [`MAX_INPUT_BYTES`], never more than one byte past the
/// cap, and never opens anything but a regular file (a FIFO would block the reader).
pub(crate) fn read_text(path: &Path) -> Result<String, ReadError> {
    read_text_within(path, MAX_INPUT_BYTES)
}

/// [`read_text`] with another cap (`manifests:` files, where CRD bundles of a few MiB
/// are common).
pub(crate) fn read_text_within(path: &Path, cap: usize) -> Result<String, ReadError> {
    let io = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ReadError::NotFound(path.to_path_buf())
        } else {
            ReadError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(ReadError::NotAFile(path.to_path_buf()));
    }
    if meta.len() > cap as u64 {
        return Err(ReadError::TooLarge(path.to_path_buf(), cap));
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may have grown since the metadata was read: the reader stops one byte past.
    file.take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() > cap {
        return Err(ReadError::TooLarge(path.to_path_buf(), cap));
    }
    String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8(path.to_path_buf()))
}

/// The hint shown with a size error.
pub(crate) fn size_hint() -> String {
    format!(
        "devenv reads config inputs of at most {} KiB; split large data into files the services read themselves",
        MAX_INPUT_BYTES / 1024
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_cap_and_refuses_beyond() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at_cap = dir.path().join("a");
        std::fs::write(&at_cap, "a".repeat(MAX_INPUT_BYTES)).expect("write");
        assert_eq!(read_text(&at_cap).expect("fits").len(), MAX_INPUT_BYTES);
        let over = dir.path().join("b");
        std::fs::write(&over, "a".repeat(MAX_INPUT_BYTES + 1)).expect("write");
        assert!(matches!(read_text(&over), Err(ReadError::TooLarge(..))));
        assert!(matches!(read_text(dir.path()), Err(ReadError::NotAFile(_))));
        assert!(matches!(
            read_text(&dir.path().join("missing")),
            Err(ReadError::NotFound(_))
        ));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        assert!(matches!(read_text(&fifo), Err(ReadError::NotAFile(_))));
    }
}
