//! Snapshots of an environment's local data (`devenv snapshot`): the resolved config,
//! the dev-mode state and the data of its data sets (local presets' data dirs, local
//! services' persistent volumes), kept under `<data dir>/snapshots/`:
//!
//! - `chunks/`: the chunk store shared by every snapshot ([`chunks`]): a second
//!   snapshot of unchanged data adds no chunk.
//! - `envs/<env key>/<name>.json`: one manifest per snapshot ([`Manifest`]), written to
//!   a temporary name and renamed.
//!
//! This room knows directories and chunks only; which directories, how they are made
//! consistent and the services around them are `engine/snapshot.rs`.

pub mod chunks;
pub mod tarstream;
pub mod tree;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use chunks::Chunks;
pub use tree::{Entry, EntryKind};

/// Version of the manifest format.
const FORMAT: u32 = 1;
/// Longest snapshot name.
const NAME_MAX: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot name `{0}` is not valid: use 1-64 letters, digits, `.`, `_` or `-`, not starting with `.`")]
    BadName(String),
    #[error("no snapshot `{name}` of this environment (`devenv snapshot ls` lists them)")]
    NotFound { name: String },
    #[error("a snapshot `{name}` exists already: pick another name or `devenv snapshot rm {name}` first")]
    Exists { name: String },
    #[error("chunk {hash} is missing from the snapshot store: the snapshot cannot be restored (nothing was changed)")]
    MissingChunk { hash: String },
    #[error("chunk {hash} is damaged ({path} does not match its checksum): the snapshot cannot be restored (nothing was changed)", path = .path.display())]
    CorruptChunk { hash: String, path: PathBuf },
    #[error("the snapshot's manifest is not valid: {0}")]
    BadManifest(String),
}

/// Data a snapshot cannot hold yet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshots of a preset's data in a container engine are not supported yet (local presets' data, persistent volumes of local and container services and claims on the cluster are): {}", .0.join("; "))]
pub struct SnapshotUnsupported(pub Vec<String>);

/// One snapshot, as its manifest file holds it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    pub name: String,
    pub environment: String,
    pub project: String,
    /// Seconds since the epoch.
    pub created: u64,
    /// The merged config as `devenv config show` prints it (secrets are not in it).
    pub config: String,
    /// Services that were in dev mode.
    pub dev: Vec<String>,
    pub datasets: Vec<Dataset>,
    /// How each data set was made consistent, as the user was told.
    pub notes: Vec<String>,
}

/// One directory of data.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dataset {
    /// `preset/<service>` or `volume/<name>`.
    pub id: String,
    /// A Redis preset saved with BGSAVE: only its RDB dump is held; restore makes the
    /// append-only files from it.
    #[serde(default)]
    pub redis_rdb: bool,
    /// Left out (see `tree::capture`): what the server rebuilds or must not find.
    #[serde(default)]
    pub skip: Vec<String>,
    pub entries: Vec<Entry>,
    /// A claim on the cluster (`pvc/<claim>`): its spec, to make it again when a
    /// restore finds it gone (`kube::volcopy::claim_spec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<serde_json::Value>,
    /// A claim on the cluster: the node's clock when its files were listed (a file
    /// changed in that second or later is read again by the next save).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed_at: Option<i64>,
    /// The listing of the data set's entries taken just before its copy (types,
    /// modes, owners, names, sizes, mtimes and ctimes to the nanosecond), hashed;
    /// recorded only when no entry had changed at or after the listing's clock. A
    /// later save whose listing gives the same fingerprint takes this data set over
    /// without stopping anything or copying (see `engine/snapshot.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
}

impl Dataset {
    pub fn bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match &e.kind {
                EntryKind::File { size, .. } => *size,
                _ => 0,
            })
            .sum()
    }

    pub fn hashes(&self) -> impl Iterator<Item = &String> {
        self.entries.iter().flat_map(|e| match &e.kind {
            EntryKind::File { chunks, .. } => chunks.as_slice(),
            _ => &[],
        })
    }
}

impl Manifest {
    pub fn new(name: String, environment: String, project: String, config: String) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Self {
            format: FORMAT,
            name,
            environment,
            project,
            created,
            config,
            dev: Vec::new(),
            datasets: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.datasets.iter().map(Dataset::bytes).sum()
    }

    pub fn hashes(&self) -> HashSet<String> {
        self.datasets
            .iter()
            .flat_map(Dataset::hashes)
            .cloned()
            .collect()
    }
}

/// Checks a snapshot name (it becomes a file name).
pub fn check_name(name: &str) -> Result<(), SnapshotError> {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(SnapshotError::BadName(name.to_owned()))
    }
}

/// The snapshots under a data dir.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    pub chunks: Chunks,
}

impl Store {
    pub fn new(data_dir: &Path) -> Self {
        let root = data_dir.join("snapshots");
        Self {
            chunks: Chunks::new(root.join("chunks")),
            root,
        }
    }

    fn env_dir(&self, env_key: &str) -> PathBuf {
        self.root.join("envs").join(env_key)
    }

    fn manifest_path(&self, env_key: &str, name: &str) -> PathBuf {
        self.env_dir(env_key).join(format!("{name}.json"))
    }

    pub fn exists(&self, env_key: &str, name: &str) -> bool {
        self.manifest_path(env_key, name).exists()
    }

    /// Writes the manifest (atomically: a temporary file renamed).
    pub fn put(&self, env_key: &str, manifest: &Manifest) -> Result<(), SnapshotError> {
        check_name(&manifest.name)?;
        let dir = self.env_dir(env_key);
        let io = |source| SnapshotError::Io {
            path: dir.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let body =
            serde_json::to_vec(manifest).map_err(|e| SnapshotError::BadManifest(e.to_string()))?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io)?;
        std::io::Write::write_all(&mut tmp, &body).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(self.manifest_path(env_key, &manifest.name))
            .map_err(|e| io(e.error))?;
        Ok(())
    }

    pub fn get(&self, env_key: &str, name: &str) -> Result<Manifest, SnapshotError> {
        check_name(name)?;
        let path = self.manifest_path(env_key, name);
        let body = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SnapshotError::NotFound { name: name.into() })
            }
            Err(source) => return Err(SnapshotError::Io { path, source }),
        };
        let m: Manifest = serde_json::from_slice(&body)
            .map_err(|e| SnapshotError::BadManifest(format!("{}: {e}", path.display())))?;
        if m.format != FORMAT {
            return Err(SnapshotError::BadManifest(format!(
                "{}: format {} (this devenv reads {FORMAT})",
                path.display(),
                m.format
            )));
        }
        Ok(m)
    }

    /// The environment's snapshots, oldest first.
    pub fn list(&self, env_key: &str) -> Result<Vec<Manifest>, SnapshotError> {
        let dir = self.env_dir(env_key);
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = name.strip_suffix(".json") {
                if check_name(name).is_ok() {
                    out.push(self.get(env_key, name)?);
                }
            }
        }
        out.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
        Ok(out)
    }

    /// Removes a snapshot, then the chunks no snapshot of any environment uses.
    /// Returns the bytes freed.
    pub fn remove(&self, env_key: &str, name: &str) -> Result<u64, SnapshotError> {
        check_name(name)?;
        let path = self.manifest_path(env_key, name);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SnapshotError::NotFound { name: name.into() })
            }
            Err(source) => return Err(SnapshotError::Io { path, source }),
        }
        let mut keep = HashSet::new();
        for env in std::fs::read_dir(self.root.join("envs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let key = env.file_name().to_string_lossy().into_owned();
            for m in self.list(&key)? {
                keep.extend(m.hashes());
            }
        }
        self.chunks.collect_garbage(&keep)
    }
}

/// Makes Redis's append-only files (Redis 7's multi-part AOF: a base file and a
/// manifest naming it) from the RDB dump in `dir`, so a server started with
/// `--appendonly yes` (the preset) loads the dump: with no AOF it would start empty.
pub fn redis_aof_from_rdb(dir: &Path) -> Result<(), SnapshotError> {
    let aof = dir.join("appendonlydir");
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io { path, source }
    };
    std::fs::create_dir_all(&aof).map_err(io(&aof))?;
    let dump = dir.join("dump.rdb");
    if !dump.exists() {
        return Ok(());
    }
    let base = aof.join("appendonly.aof.1.base.rdb");
    std::fs::copy(&dump, &base).map_err(io(&base))?;
    let manifest = aof.join("appendonly.aof.manifest");
    std::fs::write(&manifest, "file appendonly.aof.1.base.rdb seq 1 type b\n")
        .map_err(io(&manifest))?;
    // Owned like the dump (the server may run as another user).
    if let Ok(meta) = std::fs::metadata(&dump) {
        use std::os::unix::fs::MetadataExt;
        for p in [&aof, &base, &manifest] {
            if nix::unistd::geteuid().is_root() {
                std::os::unix::fs::chown(p, Some(meta.uid()), Some(meta.gid())).map_err(io(p))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_file_names_and_nothing_else() {
        for ok in ["before-migration", "2026-12-05T19.30", "a", "x_1"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "../x", "a/b", ".hidden", "a b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn removing_a_snapshot_frees_only_the_chunks_no_other_uses() {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::new(tmp.path());
        let data = tmp.path().join("d");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("shared"), vec![1u8; 5000]).unwrap();
        let mut one = Manifest::new("one".into(), "e".into(), "/p".into(), String::new());
        let (entries, _) = tree::capture::<&str>(&data, &[], &store.chunks, &|_| {}).unwrap();
        one.datasets.push(Dataset {
            id: "volume/d".into(),
            redis_rdb: false,
            skip: Vec::new(),
            entries,
            claim: None,
            listed_at: None,
            fingerprint: None,
        });
        store.put("k", &one).unwrap();
        std::fs::write(data.join("own"), vec![2u8; 5000]).unwrap();
        let mut two = one.clone();
        two.name = "two".into();
        let (entries, _) = tree::capture::<&str>(&data, &[], &store.chunks, &|_| {}).unwrap();
        two.datasets[0].entries = entries;
        store.put("k", &two).unwrap();
        assert_eq!(store.list("k").unwrap().len(), 2);
        let before = store.chunks.total_size();
        assert_eq!(
            store.remove("k", "one").unwrap(),
            0,
            "all its chunks are used"
        );
        assert!(store.remove("k", "two").unwrap() > 0);
        assert_eq!(store.chunks.total_size(), 0, "was {before}");
        assert!(matches!(
            store.get("k", "one"),
            Err(SnapshotError::NotFound { .. })
        ));
    }
}
