//! The files of a `configmap` volume (`source:` a file or a directory) read into a
//! ConfigMap's data, with a digest of them. Read when the config is checked (so a
//! changed file is a changed service, which `up` rolls out, and a file a ConfigMap
//! can't hold is a located error) and again when the objects are rendered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use md5::{Digest, Md5};

/// The Kubernetes API refuses a ConfigMap larger than this.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// A configmap volume's files, read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigFiles {
    /// File name -> content (UTF-8).
    pub data: BTreeMap<String, String>,
    /// MD5 of names and contents, hex.
    pub digest: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigFilesError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not UTF-8 text: a configmap volume holds text files", .0.display())]
    NotText(PathBuf),
    #[error("the files of {} are larger than a ConfigMap may be (1 MiB)", .0.display())]
    TooLarge(PathBuf),
    #[error("`{name}` in {} is not a valid ConfigMap key (letters, digits, `-`, `_`, `.`)", .dir.display())]
    BadKey { dir: PathBuf, name: String },
}

fn is_key(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Reads `source`: a file (one key, its name) or a directory (a key per regular file
/// at its top level, as `kubectl create configmap --from-file=DIR` does: hidden files
/// and subdirectories are left out). Blocking; bounded by [`MAX_BYTES`].
pub fn read(source: &Path) -> Result<ConfigFiles, ConfigFilesError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ConfigFilesError::Read { path, source }
    };
    let meta = std::fs::metadata(source).map_err(err(source))?;
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    if meta.is_dir() {
        for entry in std::fs::read_dir(source).map_err(err(source))? {
            let entry = entry.map_err(err(source))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.path().is_file() {
                continue;
            }
            if !is_key(&name) {
                return Err(ConfigFilesError::BadKey {
                    dir: source.to_path_buf(),
                    name,
                });
            }
            files.push((name, entry.path()));
        }
    } else {
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        files.push((name, source.to_path_buf()));
    }
    files.sort();
    let mut total = 0u64;
    let mut out = ConfigFiles::default();
    let mut hash = Md5::new();
    for (name, path) in files {
        total += std::fs::metadata(&path).map_err(err(&path))?.len();
        if total > MAX_BYTES {
            return Err(ConfigFilesError::TooLarge(source.to_path_buf()));
        }
        let bytes = std::fs::read(&path).map_err(err(&path))?;
        let text = String::from_utf8(bytes).map_err(|_| ConfigFilesError::NotText(path))?;
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(text.as_bytes());
        hash.update([0]);
        out.data.insert(name, text);
    }
    out.digest = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_a_key_per_top_level_file_and_the_digest_follows_the_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("app.conf"), "a=1\n").unwrap();
        std::fs::write(dir.path().join(".hidden"), "x").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let first = read(dir.path()).unwrap();
        assert_eq!(first.data.keys().collect::<Vec<_>>(), ["app.conf"]);
        assert_eq!(first.data["app.conf"], "a=1\n");
        std::fs::write(dir.path().join("app.conf"), "a=2\n").unwrap();
        let second = read(dir.path()).unwrap();
        assert_ne!(first.digest, second.digest);

        let one = read(&dir.path().join("app.conf")).unwrap();
        assert_eq!(one.data.keys().collect::<Vec<_>>(), ["app.conf"]);
    }

    #[test]
    fn binary_large_and_badly_named_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blob"), [0xff, 0xfe, 0x00]).unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(ConfigFilesError::NotText(_))
        ));
        std::fs::remove_file(dir.path().join("blob")).unwrap();
        std::fs::write(dir.path().join("big"), vec![b'a'; MAX_BYTES as usize + 1]).unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(ConfigFilesError::TooLarge(_))
        ));
        std::fs::remove_file(dir.path().join("big")).unwrap();
        std::fs::write(dir.path().join("a b"), "x").unwrap();
        assert!(matches!(
            read(dir.path()),
            Err(ConfigFilesError::BadKey { .. })
        ));
    }
}
