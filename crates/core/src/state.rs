//! Persistent state in sled: which environments the daemon knows and what it last
//! observed of their services, so a restarted daemon can tell the truth and clean up.
//!
//! Size (issue 12): about 650 lines, a quarter of them tests; one store type with one
//! small method per record kind. Record types could move to `state/records.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::status::ServiceStatus;

/// Bumped when the stored layout changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state database {path} is in use by another process (is another devenvd running with the same data dir?)")]
    Locked { path: PathBuf },
    #[error("state database {path} is corrupt: {detail}; move it aside to start fresh")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "state database {path} has schema version {found}, this devenvd understands {expected}"
    )]
    Schema {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("state database {path}: {source}")]
    Db {
        path: PathBuf,
        #[source]
        source: sled::Error,
    },
    #[error("state record {key} could not be decoded: {source}")]
    Decode {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A stable, filesystem-safe directory name for an environment id
/// (`/abs/project#env`, which is a path and must never be joined onto one): the
/// project directory's name and the environment name, for people, then a hash of the
/// whole id, for uniqueness: `shop-staging-3f2a9c0d1e5b7a86`.
pub fn env_key(env_id: &str) -> String {
    use md5::{Digest, Md5};
    let (project, env) = env_id.rsplit_once('#').unwrap_or((env_id, ""));
    let base = Path::new(project)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let readable: String = [base.as_str(), env]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let digest = Md5::digest(env_id.as_bytes());
    let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let readable = readable.trim_start_matches('.');
    if readable.is_empty() {
        hash
    } else {
        format!("{readable}-{hash}")
    }
}

/// An environment the daemon has seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnownEnv {
    pub id: String,
    pub name: String,
    pub project_dir: PathBuf,
    pub env_name: Option<String>,
    pub config_file: PathBuf,
    /// Service names in declaration order.
    pub services: Vec<String>,
}

/// What the daemon last observed of one service. Its processes are found after a
/// crash by the marker in their environment, not from here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceRecord {
    pub status: ServiceStatus,
}

/// A cluster devenv created (`devenv cluster create`), so that `cluster ls` can show
/// it after the environment is gone. Lives in its own tree, which daemons that do not
/// know it never open: no schema bump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterRecord {
    pub name: String,
    /// `k3d`.
    pub provider: String,
    /// The kubeconfig context that reaches it.
    pub context: String,
    /// Namespace of the environment that created it.
    pub namespace: String,
    /// Project directory of the environment that created it.
    pub project_dir: PathBuf,
    pub created: SystemTime,
    /// Variables of the client that created it (KUBECONFIG, HOME, PATH, DOCKER_HOST,
    /// ...): how to reach it again later, when no client asks.
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
}

/// A workload in dev mode: how to reach it and what to put back. Written before the
/// workload changes, removed once it is restored; a daemon that starts and finds one
/// restores the workload. Its own tree: no schema bump.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevRecord {
    pub env_id: String,
    /// The environment's name (for the kube client's labels and messages).
    pub env_name: String,
    pub service: String,
    /// Kubeconfig context (`None`: the kubeconfig's current one).
    pub context: Option<String>,
    /// KUBECONFIG and HOME of the client that asked: where the kubeconfig is.
    pub vars: BTreeMap<String, String>,
    pub backup: crate::kube::devmode::Backup,
}

impl DevRecord {
    fn key(&self) -> String {
        dev_key(
            &self.env_id,
            &self.service,
            &self.backup.kind,
            &self.backup.name,
        )
    }
}

/// An environment the user asked up and has not taken down: a daemon that starts
/// and finds one brings it up again (see `engine::recovery`). Written (and flushed)
/// when `up` is asked, removed when `down` is. Its own tree: no schema bump.
///
/// `vars` is the part of the client's environment needed to bring it back: the
/// variables the config references and a few basics (see
/// `engine::recovery::recovery_vars`); never the whole environment, which holds
/// whatever secrets the user's shell has. Records from before `vars_scoped` held the
/// whole environment; a daemon that starts rewrites them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WantedRecord {
    pub env_id: String,
    /// Where the client was, and what it named: enough to load the config again.
    pub start_dir: PathBuf,
    pub config_file: Option<PathBuf>,
    pub env_name: Option<String>,
    pub vars: BTreeMap<String, String>,
    /// The services asked for (their dependencies come with them); empty: all.
    pub services: Vec<String>,
    /// `vars` holds only what recovery needs (false: an old record, the whole
    /// client environment, to be rewritten).
    #[serde(default)]
    pub vars_scoped: bool,
    /// Identifies the `up` that wrote this record (each `devenv up` is a new one);
    /// recovery repeats the same `up`.
    #[serde(default)]
    pub up_id: u64,
    /// `post*` hooks (`postUp`, `api.postReady`) already started for `up_id`: run at
    /// most once per `up`, a daemon crash included (see `engine::hooks`).
    #[serde(default)]
    pub post_hooks_run: Vec<String>,
    /// Services the user stopped (`devenv stop`) and has not started again: a
    /// recovery leaves them stopped (and their dependents waiting).
    #[serde(default)]
    pub stopped: Vec<String>,
    /// Replicas the user asked for (`devenv scale`), by service: kept across
    /// re-applies and recoveries until `down`.
    #[serde(default)]
    pub replicas: BTreeMap<String, u32>,
}

impl WantedRecord {
    /// The services wanted after another `up` of `more` (empty: all).
    pub fn merged(&self, more: &[String]) -> Vec<String> {
        if self.services.is_empty() || more.is_empty() {
            return Vec::new();
        }
        let mut all = self.services.clone();
        for s in more {
            if !all.contains(s) {
                all.push(s.clone());
            }
        }
        all
    }
}

fn dev_key(env_id: &str, service: &str, kind: &str, name: &str) -> String {
    format!("{env_id}/{service}/{kind}/{name}")
}

/// A cheap handle to the store (sled trees are reference counted).
///
/// Writes land in sled at once and reach the disk through [`StateStore::run_flusher`],
/// which coalesces bursts (an `up` of 50 services changes state hundreds of times)
/// into few fsyncs. A crash can lose the last few milliseconds of observed state;
/// recovery does not depend on it (service markers find our processes regardless).
#[derive(Debug, Clone)]
pub struct StateStore {
    path: PathBuf,
    db: sled::Db,
    envs: sled::Tree,
    services: sled::Tree,
    clusters: sled::Tree,
    devmode: sled::Tree,
    wanted: sled::Tree,
    dirty: std::sync::Arc<tokio::sync::Notify>,
    health: std::sync::Arc<std::sync::Mutex<FlushHealth>>,
}

/// Whether state reaches the disk: the last flush failure, until a flush works again.
/// Shown by `devenv daemon status`, not only in the daemon's log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlushHealth {
    /// The error of the last failed flush; `None` once a flush works.
    pub error: Option<String>,
    /// When flushing started failing (the first failure of the current run of them).
    pub failing_since: Option<SystemTime>,
    /// Failed flushes since the daemon started.
    pub failures: u64,
}

impl StateStore {
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let path = dir.to_path_buf();
        let db = sled::Config::new()
            .path(dir)
            // The daemon's state is small; the default 1 GiB cache would dominate RSS.
            .cache_capacity(4 * 1024 * 1024)
            // Flush explicitly after each change instead of waking up every 500 ms.
            .flush_every_ms(None)
            .open()
            .map_err(|e| match e {
                // sled reports a held lock as an untyped I/O error: ask the lock itself.
                sled::Error::Io(_) if lock_held(&path) => StateError::Locked { path: path.clone() },
                e => classify(&path, e),
            })?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| classify(&path, e));
        let store = Self {
            envs: tree("environments")?,
            services: tree("services")?,
            clusters: tree("clusters")?,
            devmode: tree("devmode")?,
            wanted: tree("wanted")?,
            db,
            path,
            dirty: Default::default(),
            health: Default::default(),
        };
        store.check_schema()?;
        Ok(store)
    }

    fn check_schema(&self) -> Result<(), StateError> {
        let key = b"schema_version";
        match self.db.get(key).map_err(|e| classify(&self.path, e))? {
            None => {
                self.db
                    .insert(key, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(|e| classify(&self.path, e))?;
                self.flush()
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StateError::Corrupt {
                        path: self.path.clone(),
                        detail: "bad schema version".into(),
                    })?;
                if found == SCHEMA_VERSION {
                    Ok(())
                } else {
                    Err(StateError::Schema {
                        path: self.path.clone(),
                        found,
                        expected: SCHEMA_VERSION,
                    })
                }
            }
        }
    }

    /// The state directory (sled lives here; devenv's scratch files beside it).
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// Files devenv keeps for one environment outside the database (preset data;
    /// temp files such as helm values go to the scratch dir, [`crate::scratch`]): `<data dir>/envs/<key>`, the data dir being the one that holds
    /// this database (`<data dir>/state`). See [`env_key`].
    pub fn env_dir(&self, env_id: &str) -> PathBuf {
        self.data_dir().join("envs").join(env_key(env_id))
    }

    /// The data dir the state database is in.
    pub fn data_dir(&self) -> PathBuf {
        self.path.parent().unwrap_or(&self.path).to_path_buf()
    }

    pub fn put_env(&self, rec: &KnownEnv) -> Result<(), StateError> {
        self.put(&self.envs, &rec.id, rec)
    }

    pub fn envs(&self) -> Result<Vec<KnownEnv>, StateError> {
        self.scan(&self.envs, "")
    }

    pub fn put_service(&self, env_id: &str, rec: &ServiceRecord) -> Result<(), StateError> {
        self.put(&self.services, &service_key(env_id, &rec.status.name), rec)
    }

    pub fn services(&self, env_id: &str) -> Result<Vec<ServiceRecord>, StateError> {
        self.scan(&self.services, &service_key(env_id, ""))
    }

    pub fn put_cluster(&self, rec: &ClusterRecord) -> Result<(), StateError> {
        self.put(&self.clusters, &cluster_key(&rec.provider, &rec.name), rec)
    }

    /// Forgets a cluster; true when it was recorded.
    pub fn remove_cluster(&self, provider: &str, name: &str) -> Result<bool, StateError> {
        let old = self
            .clusters
            .remove(cluster_key(provider, name).as_bytes())
            .map_err(|e| classify(&self.path, e))?;
        self.dirty.notify_one();
        Ok(old.is_some())
    }

    /// Recorded clusters, ordered by provider and name.
    pub fn clusters(&self) -> Result<Vec<ClusterRecord>, StateError> {
        self.scan(&self.clusters, "")
    }

    /// Records a dev-mode backup and flushes it to disk before returning: the
    /// workload changes right after.
    pub fn put_dev(&self, rec: &DevRecord) -> Result<(), StateError> {
        self.put(&self.devmode, &rec.key(), rec)?;
        self.flush()
    }

    /// Forgets a dev-mode backup (the workload is restored or gone).
    pub fn remove_dev(&self, rec: &DevRecord) -> Result<(), StateError> {
        self.devmode
            .remove(rec.key().as_bytes())
            .map_err(|e| classify(&self.path, e))?;
        self.dirty.notify_one();
        Ok(())
    }

    /// Dev-mode backups, of one environment or (`""`) all.
    pub fn devs(&self, env_id: &str) -> Result<Vec<DevRecord>, StateError> {
        let prefix = if env_id.is_empty() {
            String::new()
        } else {
            format!("{env_id}/")
        };
        self.scan(&self.devmode, &prefix)
    }

    /// Records that an environment is wanted up, durably: a crash right after the
    /// `up` was asked still brings it back.
    pub fn put_wanted(&self, rec: &WantedRecord) -> Result<(), StateError> {
        self.put(&self.wanted, &rec.env_id, rec)?;
        self.flush()
    }

    pub fn wanted_of(&self, env_id: &str) -> Result<Option<WantedRecord>, StateError> {
        Ok(self
            .scan::<WantedRecord>(&self.wanted, env_id)?
            .into_iter()
            .find(|r| r.env_id == env_id))
    }

    /// Forgets that an environment is wanted up (`down`), durably.
    pub fn remove_wanted(&self, env_id: &str) -> Result<(), StateError> {
        self.wanted
            .remove(env_id.as_bytes())
            .map_err(|e| classify(&self.path, e))?;
        self.flush()
    }

    /// Before a `post*` hook of the `up` `up_id` starts: whether it may run. Records
    /// it (flushed to disk) as run for that `up` unless it was already, which only a
    /// crashed daemon's repeated `up` finds. No record (a `devenv dev` session, or a
    /// `down` meanwhile): nothing to repeat, it runs.
    pub fn start_post_hook(
        &self,
        env_id: &str,
        up_id: u64,
        hook: &str,
    ) -> Result<bool, StateError> {
        let Some(mut rec) = self.wanted_of(env_id)? else {
            return Ok(true);
        };
        if rec.up_id != up_id {
            // A newer `up` owns the record; it runs its own hooks.
            return Ok(true);
        }
        if rec.post_hooks_run.iter().any(|h| h == hook) {
            return Ok(false);
        }
        rec.post_hooks_run.push(hook.to_owned());
        // Flushed before the hook starts.
        self.put_wanted(&rec)?;
        Ok(true)
    }

    /// Every environment wanted up.
    pub fn wanted(&self) -> Result<Vec<WantedRecord>, StateError> {
        self.scan(&self.wanted, "")
    }

    pub fn flush(&self) -> Result<(), StateError> {
        let result = self
            .db
            .flush()
            .map(|_| ())
            .map_err(|e| classify(&self.path, e));
        self.record(result.as_ref().err().map(ToString::to_string));
        result
    }

    /// Whether state reaches the disk (see [`FlushHealth`]).
    pub fn health(&self) -> FlushHealth {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn record(&self, error: Option<String>) {
        let mut h = self.health.lock().unwrap_or_else(|p| p.into_inner());
        match error {
            None => {
                h.error = None;
                h.failing_since = None;
            }
            Some(e) => {
                h.failures += 1;
                h.failing_since.get_or_insert_with(SystemTime::now);
                h.error = Some(e);
            }
        }
    }

    fn put<T: Serialize>(&self, tree: &sled::Tree, key: &str, value: &T) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(value).map_err(|source| StateError::Decode {
            key: key.into(),
            source,
        })?;
        tree.insert(key.as_bytes(), bytes)
            .map_err(|e| classify(&self.path, e))?;
        self.dirty.notify_one();
        Ok(())
    }

    /// Flushes after each burst of writes; runs until the task is dropped. Idle, it
    /// waits on a notification and costs nothing.
    pub async fn run_flusher(self) {
        loop {
            self.dirty.notified().await;
            match self.db.flush_async().await {
                Ok(_) => self.record(None),
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "flushing state");
                    self.record(Some(classify(&self.path, e).to_string()));
                }
            }
        }
    }

    fn scan<T: DeserializeOwned>(
        &self,
        tree: &sled::Tree,
        prefix: &str,
    ) -> Result<Vec<T>, StateError> {
        tree.scan_prefix(prefix.as_bytes())
            .map(|kv| {
                let (k, v) = kv.map_err(|e| classify(&self.path, e))?;
                serde_json::from_slice(&v).map_err(|source| StateError::Decode {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    source,
                })
            })
            .collect()
    }
}

fn service_key(env_id: &str, service: &str) -> String {
    format!("{env_id}\u{0}{service}")
}

fn cluster_key(provider: &str, name: &str) -> String {
    format!("{provider}\u{0}{name}")
}

/// Whether another handle (another daemon) holds the lock sled takes on its `db`
/// file: an exclusive `flock` of our own would block.
fn lock_held(dir: &Path) -> bool {
    std::fs::File::open(dir.join("db"))
        .is_ok_and(|f| matches!(f.try_lock(), Err(std::fs::TryLockError::WouldBlock)))
}

fn classify(path: &Path, e: sled::Error) -> StateError {
    let path = path.to_path_buf();
    match e {
        sled::Error::Io(ref io) if io.kind() == std::io::ErrorKind::WouldBlock => {
            StateError::Locked { path }
        }
        sled::Error::Corruption { .. } => StateError::Corrupt {
            path,
            detail: e.to_string(),
        },
        sled::Error::Unsupported(detail) => StateError::Corrupt { path, detail },
        source => StateError::Db { path, source },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::ServiceState;

    #[test]
    fn env_keys_are_safe_stable_and_distinct() {
        let a = env_key("/home/me/shop#");
        assert!(
            a.starts_with("shop-") && a.len() == "shop-".len() + 16,
            "{a}"
        );
        assert_eq!(a, env_key("/home/me/shop#"), "stable");
        assert_ne!(a, env_key("/home/you/shop#"), "same name, other project");
        let b = env_key("/home/me/shop#staging");
        assert!(b.starts_with("shop-staging-"), "{b}");
        for id in ["/x/a b/..#../../etc", "/#", "/p/\u{e9}t\u{e9}#x/y"] {
            let k = env_key(id);
            assert!(
                k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    && !k.starts_with('.'),
                "{id} -> {k}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let s = StateStore::open(&dir.path().join("state")).unwrap();
        assert_eq!(
            s.env_dir("/home/me/shop#"),
            dir.path().join("envs").join(&a),
            "beside the database, under the data dir"
        );
    }

    #[test]
    fn roundtrip_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        {
            let s = StateStore::open(&path).unwrap();
            s.put_env(&KnownEnv {
                id: "e1".into(),
                name: "shop".into(),
                project_dir: "/p".into(),
                env_name: None,
                config_file: "/p/.devenv/config.yml".into(),
                services: vec!["api".into()],
            })
            .unwrap();
            let mut status = ServiceStatus::new("api", "local", vec![8000]);
            status.state = ServiceState::Ready;
            s.put_service("e1", &ServiceRecord { status }).unwrap();
            // Writes reach the disk through the flusher; a test has none running.
            s.flush().unwrap();
        }
        let s = reopen(&path);
        assert_eq!(s.envs().unwrap()[0].name, "shop");
        let svcs = s.services("e1").unwrap();
        assert_eq!(svcs.len(), 1);
        assert_eq!(svcs[0].status.state, ServiceState::Ready);
        assert!(
            s.services("e").unwrap().is_empty(),
            "prefix must not match other envs"
        );
    }

    /// Opens a store another handle just closed: sled's background flusher may hold
    /// the lock file for a moment after the drop.
    fn reopen(dir: &Path) -> StateStore {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match StateStore::open(dir) {
                Err(StateError::Locked { .. }) if std::time::Instant::now() < deadline => {
                    std::thread::yield_now();
                }
                other => return other.unwrap(),
            }
        }
    }

    #[test]
    fn clusters_are_recorded_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let rec = |name: &str| ClusterRecord {
            name: name.into(),
            provider: "k3d".into(),
            context: format!("k3d-{name}"),
            namespace: "devenv-shop".into(),
            project_dir: "/p".into(),
            created: SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            vars: BTreeMap::from([("HOME".into(), "/home/u".into())]),
        };
        {
            let s = StateStore::open(dir.path()).unwrap();
            s.put_cluster(&rec("shop")).unwrap();
            s.put_cluster(&rec("blog")).unwrap();
            s.put_cluster(&rec("shop")).unwrap();
            s.flush().unwrap();
        }
        let s = reopen(dir.path());
        assert_eq!(s.clusters().unwrap(), vec![rec("blog"), rec("shop")]);
        assert!(s.remove_cluster("k3d", "shop").unwrap());
        assert!(!s.remove_cluster("k3d", "shop").unwrap());
        assert_eq!(s.clusters().unwrap(), vec![rec("blog")]);
        // Environments are a different tree.
        assert!(s.envs().unwrap().is_empty());
    }

    #[test]
    fn wanted_environments_survive_a_reopen_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let rec = |id: &str, services: &[&str]| WantedRecord {
            env_id: id.into(),
            start_dir: "/p".into(),
            config_file: None,
            env_name: None,
            vars: BTreeMap::from([("PATH".into(), "/bin".into())]),
            services: services.iter().map(|s| s.to_string()).collect(),
            vars_scoped: true,
            up_id: 1,
            post_hooks_run: Vec::new(),
            stopped: vec!["db".into()],
            replicas: BTreeMap::from([("web".into(), 3)]),
        };
        {
            let s = StateStore::open(dir.path()).unwrap();
            s.put_wanted(&rec("/p#", &["api"])).unwrap();
            s.put_wanted(&rec("/p#x", &[])).unwrap();
        }
        let s = reopen(dir.path());
        assert_eq!(
            s.wanted().unwrap(),
            vec![rec("/p#", &["api"]), rec("/p#x", &[])]
        );
        assert_eq!(s.wanted_of("/p#").unwrap(), Some(rec("/p#", &["api"])));
        assert_eq!(s.wanted_of("/p").unwrap(), None, "an id, not a prefix");
        s.remove_wanted("/p#").unwrap();
        assert_eq!(s.wanted().unwrap(), vec![rec("/p#x", &[])]);
        // Another up widens what is wanted; an up of everything wants everything.
        let r = rec("/p#", &["api"]);
        assert_eq!(r.merged(&["web".into()]), vec!["api", "web"]);
        assert_eq!(r.merged(&["api".into()]), vec!["api"]);
        assert!(r.merged(&[]).is_empty());
        assert!(rec("/p#", &[]).merged(&["web".into()]).is_empty());
    }

    #[test]
    fn second_open_is_locked_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let _first = StateStore::open(dir.path()).unwrap();
        match StateStore::open(dir.path()) {
            Err(StateError::Locked { .. }) => {}
            other => panic!("expected Locked, got {other:?}"),
        }
    }

    #[test]
    fn garbage_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("conf"), b"\x00\x01garbage").unwrap();
        std::fs::write(dir.path().join("db"), b"not a sled database at all").unwrap();
        let err = StateStore::open(dir.path()).expect_err("garbage must not open");
        assert!(!err.to_string().is_empty());
    }
}
