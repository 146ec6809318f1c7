//! `devenv snapshot`: what goes into a snapshot of an environment and how it is made
//! consistent, and restore (the storage is the `snapshot` room).
//!
//! Data sets: each local preset's data dir and each persistent volume a local service
//! mounts. Consistency, told to the user as it happens and kept in the manifest:
//! - a running Redis preset: `BGSAVE`, waited for; the snapshot holds the RDB dump it
//!   wrote (restore makes the append-only files from it), the server keeps running;
//! - a running PostgreSQL preset, and every running local service that mounts a
//!   persistent volume: stopped for the copy (`devenv stop`'s path: dependents wait),
//!   started again after it;
//! - a running kubernetes service mounting a claim: scaled to 0 for the copy
//!   (`snapshot_pvc` copies claims through a helper pod);
//! - a running container service mounting a persistent volume (a named volume of
//!   the engine): stopped for the copy (`snapshot_engine` copies it through a helper
//!   container);
//! - a service marked `snapshot: live` is copied while it runs;
//! - what is not running is copied as it is.
//!
//! A preset's data in a container engine is refused with a "not yet" error rather
//! than left out.
//!
//! Restore writes every data set into a fresh directory beside its place, reading and
//! checking every chunk, while the environment still runs; only when all are written
//! does it stop the environment, swap the directories in (renames), and bring it up. A
//! failure before the swap leaves everything as it was; a failed rename puts back
//! those already swapped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{Engine, EngineError, ProjectRef, UpEvent, UpOptions};
use crate::config::{Environment, Preset, RuntimeKind, VolumeKind};
use crate::snapshot::{self, tree, Dataset, Manifest, SnapshotError, SnapshotUnsupported, Store};
use crate::status::ServiceState;

/// How long a Redis `BGSAVE` may take.
const BGSAVE_LIMIT: Duration = Duration::from_secs(300);
/// Longest Redis reply read (an `INFO persistence` is ~1 KiB).
const REDIS_REPLY_MAX: usize = 64 * 1024;

/// One snapshot operation at a time in this daemon: a `rm`'s garbage collection must
/// not run while a save writes chunks no manifest names yet.
static OPS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Progress of a save or restore.
#[derive(Debug, Clone)]
pub enum SnapshotEvent {
    /// A step the user should see ("db: stopped for the copy (postgresql)").
    Step(String),
    /// Bytes of a data set read (save) or written (restore) so far.
    Progress {
        dataset: String,
        done: u64,
        total: u64,
    },
}

/// A snapshot as `ls` and the end of `save`/`restore` show it.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub name: String,
    pub created: u64,
    /// Bytes of data it holds.
    pub bytes: u64,
    /// Save: bytes this save added to the store. Ls: bytes on disk of its chunks.
    pub stored: u64,
    /// (id, bytes, entries) per data set.
    pub datasets: Vec<(String, u64, usize)>,
    pub dev: Vec<String>,
    pub notes: Vec<String>,
    pub seconds: f64,
    /// Restore: how bringing the environment up ended.
    pub message: String,
}

impl SnapshotInfo {
    fn of(m: &Manifest) -> Self {
        Self {
            name: m.name.clone(),
            created: m.created,
            bytes: m.bytes(),
            stored: 0,
            datasets: m
                .datasets
                .iter()
                .map(|d| (d.id.clone(), d.bytes(), d.entries.len()))
                .collect(),
            dev: m.dev.clone(),
            notes: m.notes.clone(),
            seconds: 0.0,
            message: String::new(),
        }
    }
}

/// What changed since a snapshot.
#[derive(Debug, Clone, Default)]
pub struct SnapshotDiff {
    pub name: String,
    /// Lines of the merged config: `-` only in the snapshot, `+` only now.
    pub config: Vec<String>,
    pub dev_then: Vec<String>,
    pub dev_now: Vec<String>,
    pub datasets: Vec<DatasetDiff>,
}

#[derive(Debug, Clone, Default)]
pub struct DatasetDiff {
    pub id: String,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
    pub bytes_then: u64,
    pub bytes_now: u64,
}

/// How a data set is made consistent.
#[derive(Debug, Clone)]
enum Consistency {
    /// Not running: copied as it is.
    Idle,
    /// A running Redis: BGSAVE at this port.
    Bgsave { port: u16, password: Option<String> },
    /// These running services are stopped for the copy.
    Stop(Vec<String>),
    /// These running services are marked `snapshot: live`: copied while they run.
    Live(Vec<String>),
}

/// Stopped for the copy, unless every running user is marked `snapshot: live`
/// (those marked keep running either way).
fn by_users<'a>(running: impl IntoIterator<Item = &'a crate::config::Service>) -> Consistency {
    let (live, stop): (Vec<&crate::config::Service>, Vec<_>) =
        running.into_iter().partition(|s| s.snapshot_live);
    let names = |v: Vec<&crate::config::Service>| v.into_iter().map(|s| s.name.clone()).collect();
    match (live.is_empty(), stop.is_empty()) {
        (true, true) => Consistency::Idle,
        (false, true) => Consistency::Live(names(live)),
        _ => Consistency::Stop(names(stop)),
    }
}

#[derive(Debug, Clone)]
struct Plan {
    id: String,
    dir: PathBuf,
    consistency: Consistency,
    /// A Redis preset: the RDB dump only (its append-only files are made on restore).
    redis: bool,
    /// Left out of the copy.
    skip: Vec<String>,
}

/// What a PostgreSQL data dir copy leaves out, as `pg_basebackup` does: the running
/// server's lock and options files, and the relation cache files, which it rebuilds
/// at start (and rewrites on every restart, so keeping them would cost every save).
const PG_SKIP: [&str; 3] = ["postmaster.pid", "postmaster.opts", "pg_internal.init"];
/// A running Redis's append-only files: the BGSAVE dump stands for them.
const REDIS_SKIP: [&str; 1] = ["appendonlydir"];

fn running(state: ServiceState) -> bool {
    matches!(
        state,
        ServiceState::Starting | ServiceState::Ready | ServiceState::Unhealthy
    )
}

/// The data sets of `env` and how to make each consistent; the kubernetes and
/// container volumes it cannot take yet are an error naming them.
fn plan(
    env: &Environment,
    env_dir: &Path,
    states: &BTreeMap<String, ServiceState>,
) -> Result<Vec<Plan>, SnapshotUnsupported> {
    let is_running = |name: &str| states.get(name).copied().is_some_and(running);
    let mut plans = Vec::new();
    let mut not_yet = Vec::new();
    for svc in &env.services {
        match svc.runtime {
            RuntimeKind::Local => {}
            // Terraform's state is its backend's (in the project or remote); a service
            // plugin keeps its data where it chooses. Neither is in devenv's data dir.
            RuntimeKind::Terraform | RuntimeKind::Plugin => continue,
            // Its claims are `snapshot_pvc::claims`.
            RuntimeKind::Kubernetes => continue,
            // Its persistent volumes are `snapshot_engine::volumes`.
            RuntimeKind::Container => {
                if svc.preset.is_some() {
                    not_yet.push(format!("{} (a preset in the container engine)", svc.name));
                }
                continue;
            }
        }
        if let (Some(preset), None) = (svc.preset, &svc.command) {
            let consistency = match (preset, is_running(&svc.name)) {
                (_, false) => Consistency::Idle,
                (Preset::Redis, true) => Consistency::Bgsave {
                    port: svc
                        .ports
                        .first()
                        .copied()
                        .unwrap_or_else(|| crate::config::preset::default_port(preset)),
                    password: svc
                        .env
                        .get(crate::presets::vars::REDIS_PASSWORD)
                        .filter(|p| !p.is_empty())
                        .cloned(),
                },
                (Preset::Postgresql, true) => by_users([svc]),
            };
            let redis = preset == Preset::Redis && is_running(&svc.name);
            let skip: &[&str] = match preset {
                Preset::Postgresql => &PG_SKIP,
                Preset::Redis if redis => &REDIS_SKIP,
                Preset::Redis => &[],
            };
            plans.push(Plan {
                id: format!("preset/{}", svc.name),
                dir: crate::presets::data_dir(env_dir, &svc.name),
                redis,
                skip: skip.iter().map(|s| (*s).to_owned()).collect(),
                consistency,
            });
        }
    }
    for vol in &env.volumes {
        if !matches!(vol.kind, VolumeKind::Persistent { .. }) {
            continue;
        }
        let users: Vec<&crate::config::Service> = env
            .services
            .iter()
            .filter(|s| s.runtime == RuntimeKind::Local)
            .filter(|s| s.volumes.iter().any(|m| m.name == vol.name))
            .collect();
        if users.is_empty() {
            continue;
        }
        plans.push(Plan {
            id: format!("volume/{}", vol.name),
            dir: env_dir.join("volumes").join(&vol.name),
            consistency: by_users(users.into_iter().filter(|u| is_running(&u.name))),
            redis: false,
            skip: Vec::new(),
        });
    }
    if not_yet.is_empty() {
        Ok(plans)
    } else {
        Err(SnapshotUnsupported(not_yet))
    }
}

/// Where a data set of a manifest goes back to.
fn target(env_dir: &Path, id: &str) -> Result<PathBuf, SnapshotError> {
    let bad = || SnapshotError::BadManifest(format!("unknown data set `{id}`"));
    let (kind, name) = id.split_once('/').ok_or_else(bad)?;
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(bad());
    }
    match kind {
        "preset" => Ok(crate::presets::data_dir(env_dir, name)),
        "volume" => Ok(env_dir.join("volumes").join(name)),
        _ => Err(bad()),
    }
}

/// A sibling of `dir` named `<name>.<tag>-<pid>`.
fn beside(dir: &Path, tag: &str) -> PathBuf {
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    dir.with_file_name(format!("{name}.{tag}-{}", std::process::id()))
}

fn progress_sink(
    events: &mpsc::Sender<SnapshotEvent>,
    dataset: &str,
    total: u64,
) -> impl Fn(u64) + Send + Sync + 'static {
    let done = AtomicU64::new(0);
    let events = events.clone();
    let dataset = dataset.to_owned();
    move |n| {
        let done = done.fetch_add(n, Ordering::Relaxed) + n;
        // Dropped when the client is slow: the next one carries the total so far.
        let _ = events.try_send(SnapshotEvent::Progress {
            dataset: dataset.clone(),
            done,
            total,
        });
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SnapshotError> + Send + 'static,
) -> Result<T, SnapshotError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(SnapshotError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(format!("the snapshot worker failed: {e}")),
        })
    })
}

/// The image of the helper pod that copies claims.
fn snapshot_image(env: &Environment) -> String {
    env.cluster
        .as_ref()
        .and_then(|c| c.snapshot_image.clone())
        .unwrap_or_else(|| crate::kube::volcopy::DEFAULT_IMAGE.to_owned())
}

fn default_name() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "-")
}

/// What a save or restore run in the background reports: its events, then its end.
#[derive(Debug)]
pub enum SnapshotMsg {
    Event(SnapshotEvent),
    Done(Result<SnapshotInfo, EngineError>),
}

impl Engine {
    /// Runs `snapshot_save` (`restore: None`) or `snapshot_restore` as one of the
    /// engine's tasks, so a client that goes away does not cut it short (services
    /// stopped for a copy are started again). Steps and the end are kept for the
    /// reader; progress is dropped while it is slow (the next carries the total).
    pub fn snapshot_task(
        self: &Arc<Self>,
        req: ProjectRef,
        name: Option<String>,
        restore: bool,
    ) -> mpsc::Receiver<SnapshotMsg> {
        let (out, rx) = mpsc::channel(256);
        let engine = self.clone();
        self.tasks.spawn(async move {
            let (etx, mut erx) = mpsc::channel(64);
            let work = async move {
                let r = if restore {
                    engine
                        .snapshot_restore(&req, name.as_deref().unwrap_or_default(), &etx)
                        .await
                } else {
                    engine.snapshot_save(&req, name, &etx).await
                };
                drop(etx);
                r
            };
            let forward = async {
                while let Some(ev) = erx.recv().await {
                    let msg = SnapshotMsg::Event(ev);
                    if matches!(msg, SnapshotMsg::Event(SnapshotEvent::Progress { .. })) {
                        let _ = out.try_send(msg);
                    } else if out.send(msg).await.is_err() {
                        // The reader went away: keep draining so the work goes on.
                        continue;
                    }
                }
            };
            let (result, ()) = tokio::join!(work, forward);
            let _ = out.send(SnapshotMsg::Done(result)).await;
        });
        rx
    }

    fn snapshot_store(&self) -> Store {
        Store::new(&self.state.data_dir())
    }

    /// Saves a snapshot of the environment's local data (see the module's doc).
    pub async fn snapshot_save(
        &self,
        req: &ProjectRef,
        name: Option<String>,
        events: &mpsc::Sender<SnapshotEvent>,
    ) -> Result<SnapshotInfo, EngineError> {
        let started = Instant::now();
        let loaded = self.load(req)?;
        let rt = self.register(&loaded, req)?;
        let env = &loaded.environment;
        let name = name.filter(|n| !n.is_empty()).unwrap_or_else(default_name);
        snapshot::check_name(&name)?;
        let _op = OPS.lock().await;
        let store = self.snapshot_store();
        let key = crate::state::env_key(&rt.shared.id);
        if store.exists(&key, &name) {
            return Err(SnapshotError::Exists { name }.into());
        }
        let env_dir = self.state.env_dir(&rt.shared.id);
        let statuses = rt.statuses();
        let states: BTreeMap<String, ServiceState> =
            statuses.iter().map(|s| (s.name.clone(), s.state)).collect();
        let plans = plan(env, &env_dir, &states)?;
        let mut manifest = Manifest::new(
            name,
            env.name.clone(),
            env.project_dir.display().to_string(),
            loaded.merged_yaml.clone(),
        );
        manifest.dev = statuses
            .iter()
            .filter(|s| s.dev)
            .map(|s| s.name.clone())
            .collect();

        let claims = super::snapshot_pvc::claims(env);
        let image = snapshot_image(env);
        let (k, st) = (key.clone(), store.clone());
        let earlier = blocking(move || st.list(&k)).await?;
        let conn = if claims.is_empty() {
            None
        } else {
            let conn = rt.kube_env(env, &req.vars).await?;
            let classes = crate::kube::volcopy::snapshot_classes(&conn).await?;
            let note = if classes.is_empty() {
                format!("claims on the cluster: no VolumeSnapshotClass there, copied through a helper pod ({image})")
            } else {
                format!("claims on the cluster: copied through a helper pod ({image}); CSI snapshots (VolumeSnapshotClass {}) are not used yet", classes.join(", "))
            };
            let _ = events.send(SnapshotEvent::Step(note.clone())).await;
            manifest.notes.push(note);
            Some(conn)
        };
        // The claims' helper pods, all started at once; each serves the listing
        // below (while the claim's users run) and then the copy.
        let mut opened = Vec::new();
        if let Some(conn) = &conn {
            let starts = futures::future::join_all(
                claims
                    .iter()
                    .map(|c| super::snapshot_pvc::open(conn, &image, c)),
            )
            .await;
            let mut failed = None;
            for r in starts {
                match r {
                    Ok(o) => opened.push(o),
                    Err(e) => failed = failed.or(Some(e)),
                }
            }
            if let Some(e) = failed {
                close(opened).await;
                return Err(e);
            }
        }
        let saved = self
            .save_with(
                req,
                env,
                &rt.shared.id,
                conn.as_ref(),
                &states,
                plans,
                &claims,
                &opened,
                &earlier,
                &store,
                events,
                &mut manifest,
            )
            .await;
        close(opened).await;
        let (written, restart_note) = saved?;
        store.put(&key, &manifest)?;
        let mut info = SnapshotInfo::of(&manifest);
        info.stored = written;
        info.seconds = started.elapsed().as_secs_f64();
        info.message = restart_note;
        Ok(info)
    }

    /// The save once the claims' helpers run: which data sets are unchanged since
    /// their last snapshot, the consistency steps for the others, the copies, and the
    /// services stopped for them started again. Returns the bytes written and how
    /// the restart went.
    #[allow(clippy::too_many_arguments, reason = "one call site, the save's parts")]
    async fn save_with(
        &self,
        req: &ProjectRef,
        env: &Environment,
        env_id: &str,
        conn: Option<&crate::kube::ClusterConn>,
        states: &BTreeMap<String, ServiceState>,
        plans: Vec<Plan>,
        claims: &[super::snapshot_pvc::ClaimPlan],
        opened: &[super::snapshot_pvc::Open],
        earlier: &[Manifest],
        store: &Store,
        events: &mpsc::Sender<SnapshotEvent>,
        manifest: &mut Manifest,
    ) -> Result<(u64, String), EngineError> {
        // The newest record of a data set, and the snapshot holding it.
        let last = |id: &str| {
            earlier.iter().rev().find_map(|m| {
                m.datasets
                    .iter()
                    .find(|d| d.id == id)
                    .map(|d| (m.name.clone(), d))
            })
        };
        // Unchanged since the last snapshot: the same fingerprint (see
        // `Dataset::fingerprint`). Every entry then has the size, times and inode it
        // had when that snapshot listed it just before its copy, and a ctime cannot be
        // set back: nothing was written to the data since, so the data now is the
        // data that snapshot holds, copied while its users were stopped (or idle). It
        // is taken over without stopping anyone. A change after this listing is the
        // next save's, as it would be just after a copy.
        let mut unchanged: BTreeMap<String, (String, Dataset)> = BTreeMap::new();
        for (c, o) in claims.iter().zip(opened) {
            let listing = super::snapshot_pvc::probe(&o.helper).await?;
            if let Some((from, d)) = last(&c.id) {
                if d.fingerprint.as_deref() == Some(listing.fingerprint.as_str()) {
                    let mut d = d.clone();
                    d.claim = Some(o.spec.clone());
                    unchanged.insert(c.id.clone(), (from, d));
                }
            }
        }
        let clock_dir = store
            .chunks
            .dir()
            .parent()
            .unwrap_or(store.chunks.dir())
            .to_path_buf();
        for p in &plans {
            if matches!(p.consistency, Consistency::Bgsave { .. }) || !p.dir.is_dir() {
                continue;
            }
            let Some((from, d)) = last(&p.id) else {
                continue;
            };
            if d.skip != p.skip || d.redis_rdb != p.redis || d.fingerprint.is_none() {
                continue;
            }
            let (dir, skip, clock_dir) = (p.dir.clone(), p.skip.clone(), clock_dir.clone());
            let (now, _) = blocking(move || {
                let clock = tree::file_clock(&clock_dir)?;
                tree::fingerprint(&dir, &skip, clock)
            })
            .await?;
            if d.fingerprint.as_deref() == Some(now.as_str()) {
                unchanged.insert(p.id.clone(), (from, d.clone()));
            }
        }
        let same = |id: &str| {
            unchanged.get(id).map(|(from, _)| {
                format!("{id}: unchanged since snapshot {from} (same sizes, times and inodes): taken over as it is, nothing stopped for it")
            })
        };

        let mut to_stop: Vec<String> = Vec::new();
        let mut kube_stopped: Vec<String> = Vec::new();
        for c in claims {
            let users = c
                .users
                .iter()
                .filter(|u| states.get(*u).copied().is_some_and(running))
                .filter_map(|u| env.service(u));
            let note = match (by_users(users), same(&c.id)) {
                (_, Some(note)) => note,
                (Consistency::Stop(names), None) => {
                    for n in &names {
                        if !to_stop.contains(n) {
                            to_stop.push(n.clone());
                            kube_stopped.push(n.clone());
                        }
                    }
                    format!("{}: {} scaled to 0 for the copy", c.id, names.join(", "))
                }
                (Consistency::Live(names), None) => format!(
                    "{}: copied while {} runs (snapshot: live)",
                    c.id,
                    names.join(", ")
                ),
                _ => format!("{}: not running, copied as it is", c.id),
            };
            let _ = events.send(SnapshotEvent::Step(note.clone())).await;
            manifest.notes.push(note);
        }
        for p in &plans {
            let note = match (&p.consistency, same(&p.id)) {
                (_, Some(note)) => note,
                (Consistency::Idle, None) => format!("{}: not running, copied as it is", p.id),
                (Consistency::Bgsave { .. }, None) => {
                    format!("{}: BGSAVE (redis), copied while it runs", p.id)
                }
                (Consistency::Stop(names), None) => {
                    for n in names {
                        if !to_stop.contains(n) {
                            to_stop.push(n.clone());
                        }
                    }
                    format!("{}: {} stopped for the copy", p.id, names.join(", "))
                }
                (Consistency::Live(names), None) => format!(
                    "{}: copied while {} runs (snapshot: live)",
                    p.id,
                    names.join(", ")
                ),
            };
            let _ = events.send(SnapshotEvent::Step(note.clone())).await;
            manifest.notes.push(note);
        }
        let cvols = super::snapshot_engine::volumes(env, env_id);
        let mut engine_vols = Vec::new();
        let docker = if cvols.is_empty() {
            None
        } else {
            Some(super::snapshot_engine::connect(&req.vars).await?)
        };
        if let Some(docker) = &docker {
            for c in cvols {
                let users = c
                    .users
                    .iter()
                    .filter(|u| states.get(*u).copied().is_some_and(running))
                    .filter_map(|u| env.service(u));
                let note = match by_users(users) {
                    Consistency::Stop(names) => {
                        for n in &names {
                            if !to_stop.contains(n) {
                                to_stop.push(n.clone());
                            }
                        }
                        format!("{}: {} stopped for the copy", c.id, names.join(", "))
                    }
                    Consistency::Live(names) => format!(
                        "{}: copied while {} runs (snapshot: live)",
                        c.id,
                        names.join(", ")
                    ),
                    _ => format!("{}: not running, copied as it is", c.id),
                };
                let note = if super::snapshot_engine::exists(docker, &c.volume).await {
                    // Before anything stops: a stopped container may be gone.
                    let image =
                        super::snapshot_engine::helper_image(docker, env, env_id, &c.users).await?;
                    engine_vols.push((c, image));
                    note
                } else {
                    format!(
                        "{}: no data yet (no volume {} in the engine)",
                        c.id, c.volume
                    )
                };
                let _ = events.send(SnapshotEvent::Step(note.clone())).await;
                manifest.notes.push(note);
            }
        }
        for p in &plans {
            if let Consistency::Bgsave { port, password } = &p.consistency {
                bgsave(*port, password.as_deref())
                    .await
                    .map_err(|e| EngineError::SnapshotRedis(format!("{}: {e}", p.id)))?;
                let _ = events
                    .send(SnapshotEvent::Step(format!("{}: BGSAVE done", p.id)))
                    .await;
            }
        }
        if !to_stop.is_empty() {
            self.stop(req, &to_stop).await?;
        }
        let mut copied = self
            .capture_all(store, &plans, &unchanged, &clock_dir, events, manifest)
            .await;
        if let (Some(conn), Ok(w)) = (conn, &mut copied) {
            let r = self
                .capture_claims(
                    conn,
                    claims,
                    opened,
                    &unchanged,
                    &kube_stopped,
                    &env.name,
                    earlier,
                    store,
                    events,
                    manifest,
                )
                .await;
            match r {
                Ok(more) => *w += more,
                Err(e) => copied = Err(e),
            }
        }
        if let (Some(docker), true) = (&docker, copied.is_ok()) {
            let ids = (env_id, env.name.as_str());
            match capture_volumes(docker, &engine_vols, ids, store, events, manifest).await {
                Ok(more) => {
                    if let Ok(w) = &mut copied {
                        *w += more;
                    }
                }
                Err(e) => copied = Err(e),
            }
        }
        let mut restart_note = String::new();
        if !to_stop.is_empty() {
            let _ = events
                .send(SnapshotEvent::Step(format!(
                    "starting {} again",
                    to_stop.join(", ")
                )))
                .await;
            restart_note = match self.start_services(req.clone(), to_stop.clone()) {
                Ok(started) => drain_up(started.events).await.1,
                Err(e) => e.to_string(),
            };
        }
        Ok((copied?, restart_note))
    }

    /// Copies each claim through its helper (the services in `stopped` first let go
    /// of them); those in `unchanged` are taken over as they are.
    #[allow(clippy::too_many_arguments, reason = "one call site, the save's parts")]
    async fn capture_claims(
        &self,
        conn: &crate::kube::ClusterConn,
        claims: &[super::snapshot_pvc::ClaimPlan],
        opened: &[super::snapshot_pvc::Open],
        unchanged: &BTreeMap<String, (String, Dataset)>,
        stopped: &[String],
        env_name: &str,
        earlier: &[Manifest],
        store: &Store,
        events: &mpsc::Sender<SnapshotEvent>,
        manifest: &mut Manifest,
    ) -> Result<u64, EngineError> {
        for name in stopped {
            crate::kube::volcopy::wait_no_pods(conn, &crate::kube::selector(env_name, Some(name)))
                .await?;
        }
        let mut written = 0;
        for (c, o) in claims.iter().zip(opened) {
            if let Some((_, d)) = unchanged.get(&c.id) {
                manifest.datasets.push(d.clone());
                continue;
            }
            let prev = earlier
                .iter()
                .rev()
                .find_map(|m| m.datasets.iter().find(|d| d.id == c.id));
            let (ev, id) = (events.clone(), c.id.clone());
            let progress: Arc<dyn Fn(u64, u64) + Send + Sync> = Arc::new(move |done, total| {
                let _ = ev.try_send(SnapshotEvent::Progress {
                    dataset: id.clone(),
                    done,
                    total,
                });
            });
            let saved =
                super::snapshot_pvc::save(o, c, prev, store.chunks.clone(), progress).await?;
            let note = format!(
                "{}: {} streamed from the cluster{}",
                c.id,
                human_bytes(saved.streamed),
                if saved.reused > 0 {
                    format!(
                        ", {} unchanged files taken from the last snapshot",
                        saved.reused
                    )
                } else {
                    String::new()
                }
            );
            let _ = events.send(SnapshotEvent::Step(note.clone())).await;
            manifest.notes.push(note);
            written += saved.written;
            manifest.datasets.push(saved.dataset);
        }
        Ok(written)
    }

    async fn capture_all(
        &self,
        store: &Store,
        plans: &[Plan],
        unchanged: &BTreeMap<String, (String, Dataset)>,
        clock_dir: &Path,
        events: &mpsc::Sender<SnapshotEvent>,
        manifest: &mut Manifest,
    ) -> Result<u64, EngineError> {
        let mut written = 0;
        for p in plans {
            if let Some((_, d)) = unchanged.get(&p.id) {
                manifest.datasets.push(d.clone());
                continue;
            }
            if !p.dir.is_dir() {
                let note = format!("{}: no data yet ({})", p.id, p.dir.display());
                let _ = events.send(SnapshotEvent::Step(note.clone())).await;
                manifest.notes.push(note);
                continue;
            }
            let (dir, chunks, id, skip, clock_dir) = (
                p.dir.clone(),
                store.chunks.clone(),
                p.id.clone(),
                p.skip.clone(),
                clock_dir.to_path_buf(),
            );
            let events = events.clone();
            let (entries, w, fingerprint) = blocking(move || {
                // Listed just before the copy: the record a later save compares with.
                let clock = tree::file_clock(&clock_dir)?;
                let (fingerprint, trusted) = tree::fingerprint(&dir, &skip, clock)?;
                let total = tree::size(&dir);
                let sink = progress_sink(&events, &id, total);
                let (entries, w) = tree::capture(&dir, &skip, &chunks, &sink)?;
                Ok((entries, w, trusted.then_some(fingerprint)))
            })
            .await?;
            written += w;
            manifest.datasets.push(Dataset {
                id: p.id.clone(),
                redis_rdb: p.redis,
                skip: p.skip.clone(),
                entries,
                claim: None,
                listed_at: None,
                fingerprint,
            });
        }
        Ok(written)
    }

    /// Stages each claim's data set in its claim (see `snapshot_pvc`).
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site, the restore's parts"
    )]
    async fn stage_claims(
        &self,
        rt: &Arc<super::runtime::LiveEnv>,
        req: &ProjectRef,
        image: &str,
        claims: &[&Dataset],
        store: &Store,
        events: &mpsc::Sender<SnapshotEvent>,
        staged: &mut Vec<super::snapshot_pvc::Staged>,
    ) -> Result<(), EngineError> {
        let env = rt.config().ok_or_else(|| {
            EngineError::SnapshotUp("the environment's config is not loaded".into())
        })?;
        let conn = rt.kube_env(&env, &req.vars).await?;
        for d in claims {
            let _ = events
                .send(SnapshotEvent::Step(format!(
                    "{}: writing {} into the claim's staging dir ({}) through a helper pod",
                    d.id,
                    human_bytes(d.bytes()),
                    crate::kube::volcopy::STAGING
                )))
                .await;
            let progress: Arc<dyn Fn(u64) + Send + Sync> =
                Arc::new(progress_sink(events, &d.id, d.bytes()));
            staged.push(
                super::snapshot_pvc::stage(&conn, image, d, store.chunks.clone(), progress).await?,
            );
        }
        Ok(())
    }

    /// Restores a snapshot (see the module's doc), then brings the environment up.
    pub async fn snapshot_restore(
        &self,
        req: &ProjectRef,
        name: &str,
        events: &mpsc::Sender<SnapshotEvent>,
    ) -> Result<SnapshotInfo, EngineError> {
        let started = Instant::now();
        let loaded = self.load(req)?;
        let rt = self.register(&loaded, req)?;
        let _op = OPS.lock().await;
        let store = self.snapshot_store();
        let key = crate::state::env_key(&rt.shared.id);
        let manifest = store.get(&key, name)?;
        let env_dir = self.state.env_dir(&rt.shared.id);
        let (claims, rest): (Vec<&Dataset>, Vec<&Dataset>) = manifest
            .datasets
            .iter()
            .partition(|d| d.id.starts_with("pvc/"));
        let (cvols, local): (Vec<&Dataset>, Vec<&Dataset>) = rest
            .into_iter()
            .partition(|d| super::snapshot_engine::volume_of(&d.id).is_some());
        let mut placed: Vec<(PathBuf, PathBuf)> = Vec::new();
        for d in &local {
            placed.push((target(&env_dir, &d.id)?, PathBuf::new()));
        }
        // 1. Every data set into a fresh directory, every chunk checked on the way.
        let mut result = Ok(());
        for (d, (dir, staging)) in local.iter().zip(placed.iter_mut()) {
            *staging = beside(dir, "restore");
            let _ = events
                .send(SnapshotEvent::Step(format!(
                    "{}: writing {} into {}",
                    d.id,
                    human_bytes(d.bytes()),
                    staging.display()
                )))
                .await;
            let (out, entries, chunks, id, redis, total) = (
                staging.clone(),
                d.entries.clone(),
                store.chunks.clone(),
                d.id.clone(),
                d.redis_rdb,
                d.bytes(),
            );
            let events = events.clone();
            result = blocking(move || {
                if out.exists() {
                    std::fs::remove_dir_all(&out).map_err(|source| SnapshotError::Io {
                        path: out.clone(),
                        source,
                    })?;
                }
                if let Some(parent) = out.parent() {
                    std::fs::create_dir_all(parent).map_err(|source| SnapshotError::Io {
                        path: parent.to_path_buf(),
                        source,
                    })?;
                }
                let sink = progress_sink(&events, &id, total);
                tree::write_out(&out, &entries, &chunks, &sink)?;
                if redis {
                    snapshot::redis_aof_from_rdb(&out)?;
                }
                Ok(())
            })
            .await;
            if result.is_err() {
                break;
            }
        }
        if let Err(e) = result {
            remove_dirs(placed.iter().map(|(_, s)| s.clone())).await;
            return Err(e.into());
        }
        // The claims' files staged inside each claim, the same way.
        let mut staged = Vec::new();
        if !claims.is_empty() {
            let image = snapshot_image(&loaded.environment);
            let r = self
                .stage_claims(&rt, req, &image, &claims, &store, events, &mut staged)
                .await;
            if let Err(e) = r {
                super::snapshot_pvc::finish(staged, false).await;
                remove_dirs(placed.iter().map(|(_, s)| s.clone())).await;
                return Err(e);
            }
        }
        // The container engine's volumes into fresh volumes, the same way.
        let ids = (rt.shared.id.as_str(), loaded.environment.name.as_str());
        let mut engine = None;
        if !cvols.is_empty() {
            let r = self
                .stage_volumes(req, &loaded.environment, ids, &cvols, &store, events)
                .await;
            match r {
                Ok(e) => engine = Some(e),
                Err(e) => {
                    super::snapshot_pvc::finish(staged, false).await;
                    remove_dirs(placed.iter().map(|(_, s)| s.clone())).await;
                    return Err(e);
                }
            }
        }
        let drop_engine = |engine: Option<EngineStaged>| async move {
            if let Some((docker, _, staged)) = engine {
                super::snapshot_engine::finish(&docker, staged).await;
            }
        };
        // 2. Stop, swap in, start.
        let _ = events
            .send(SnapshotEvent::Step("stopping the environment".into()))
            .await;
        if let Err(e) = self.down(req, false).await {
            super::snapshot_pvc::finish(staged, false).await;
            remove_dirs(placed.iter().map(|(_, s)| s.clone())).await;
            drop_engine(engine).await;
            return Err(e);
        }
        if let Some((docker, image, vols)) = &mut engine {
            if let Err(e) = super::snapshot_engine::swap(docker, image, vols, ids).await {
                super::snapshot_pvc::finish(staged, false).await;
                remove_dirs(placed.iter().map(|(_, s)| s.clone())).await;
                drop_engine(engine).await;
                return Err(e);
            }
        }
        if let Err(e) = super::snapshot_pvc::swap(&mut staged).await {
            super::snapshot_pvc::finish(staged, false).await;
            remove_dirs(placed.iter().map(|(_, s)| s.clone())).await;
            undo_engine(&mut engine, ids).await;
            drop_engine(engine).await;
            return Err(e);
        }
        let olds = match swap(&placed) {
            Ok(olds) => olds,
            Err(e) => {
                super::snapshot_pvc::undo(&mut staged).await;
                super::snapshot_pvc::finish(staged, false).await;
                remove_dirs(placed.iter().map(|(_, s)| s.clone())).await;
                undo_engine(&mut engine, ids).await;
                drop_engine(engine).await;
                return Err(e.into());
            }
        };
        super::snapshot_pvc::finish(staged, true).await;
        drop_engine(engine).await;
        remove_dirs(olds).await;
        let _ = events
            .send(SnapshotEvent::Step(format!(
                "data of {} restored; bringing the environment up",
                manifest.name
            )))
            .await;
        let mut info = SnapshotInfo::of(&manifest);
        if manifest.config != loaded.merged_yaml {
            info.notes.push(
                "the config changed since this snapshot (`devenv snapshot diff` shows how); the current config is used".into(),
            );
        }
        let (ok, message) = drain_up(self.up(req.clone(), UpOptions::default())?.events).await;
        info.message = message;
        info.seconds = started.elapsed().as_secs_f64();
        if !ok {
            return Err(EngineError::SnapshotUp(info.message));
        }
        Ok(info)
    }

    /// The environment's snapshots, oldest first, with the store's size on disk.
    pub async fn snapshot_list(
        &self,
        req: &ProjectRef,
    ) -> Result<(Vec<SnapshotInfo>, u64), EngineError> {
        let loaded = self.load(req)?;
        let rt = self.register(&loaded, req)?;
        let store = self.snapshot_store();
        let key = crate::state::env_key(&rt.shared.id);
        Ok(blocking(move || {
            let list = store
                .list(&key)?
                .iter()
                .map(|m| {
                    let mut info = SnapshotInfo::of(m);
                    info.stored = store.chunks.stored_size(&m.hashes());
                    info
                })
                .collect();
            Ok((list, store.chunks.total_size()))
        })
        .await?)
    }

    /// Removes a snapshot and the chunks no other uses; the bytes freed.
    pub async fn snapshot_remove(&self, req: &ProjectRef, name: &str) -> Result<u64, EngineError> {
        let loaded = self.load(req)?;
        let rt = self.register(&loaded, req)?;
        let _op = OPS.lock().await;
        let store = self.snapshot_store();
        let key = crate::state::env_key(&rt.shared.id);
        let name = name.to_owned();
        Ok(blocking(move || store.remove(&key, &name)).await?)
    }

    /// What changed since a snapshot: config lines, dev mode, files of each data set.
    pub async fn snapshot_diff(
        &self,
        req: &ProjectRef,
        name: &str,
    ) -> Result<SnapshotDiff, EngineError> {
        let loaded = self.load(req)?;
        let rt = self.register(&loaded, req)?;
        let store = self.snapshot_store();
        let key = crate::state::env_key(&rt.shared.id);
        let manifest = store.get(&key, name)?;
        let env_dir = self.state.env_dir(&rt.shared.id);
        let mut diff = SnapshotDiff {
            name: manifest.name.clone(),
            config: line_diff(&manifest.config, &loaded.merged_yaml),
            dev_then: manifest.dev.clone(),
            dev_now: rt
                .statuses()
                .iter()
                .filter(|s| s.dev)
                .map(|s| s.name.clone())
                .collect(),
            datasets: Vec::new(),
        };
        for d in manifest.datasets {
            if let Some(claim) = super::snapshot_pvc::claim_of(&d.id) {
                let conn = rt.kube_env(&loaded.environment, &req.vars).await?;
                let image = snapshot_image(&loaded.environment);
                let now = super::snapshot_pvc::list(&conn, &image, claim).await?;
                let (added, removed, changed, bytes_now) = super::snapshot_pvc::diff(&d, &now);
                diff.datasets.push(DatasetDiff {
                    id: d.id.clone(),
                    added,
                    removed,
                    changed,
                    bytes_then: d.bytes(),
                    bytes_now,
                });
                continue;
            }
            if let Some(volume) = super::snapshot_engine::volume_of(&d.id) {
                let now = self
                    .volume_now(req, &loaded.environment, &rt.shared.id, volume)
                    .await?;
                diff.datasets.push(dataset_diff(&d, &now));
                continue;
            }
            let dir = target(&env_dir, &d.id)?;
            let skip = d.skip.clone();
            let now = blocking(move || {
                if !dir.is_dir() {
                    return Ok(Vec::new());
                }
                tree::scan(&dir, &skip)
            })
            .await?;
            diff.datasets.push(dataset_diff(&d, &now));
        }
        Ok(diff)
    }
}

/// A restore's container engine volumes, staged: the engine, the helper image, the
/// staged volumes.
type EngineStaged = (bollard::Docker, String, Vec<super::snapshot_engine::Staged>);

/// Gives the container engine's swapped volumes their files back.
async fn undo_engine(engine: &mut Option<EngineStaged>, ids: (&str, &str)) {
    if let Some((docker, image, vols)) = engine {
        super::snapshot_engine::undo(docker, image, vols, ids).await;
    }
}

/// Copies each container engine volume (its users were stopped unless live).
async fn capture_volumes(
    docker: &bollard::Docker,
    vols: &[(super::snapshot_engine::VolumePlan, String)],
    ids: (&str, &str),
    store: &Store,
    events: &mpsc::Sender<SnapshotEvent>,
    manifest: &mut Manifest,
) -> Result<u64, EngineError> {
    let mut written = 0;
    for (c, image) in vols {
        let (ev, id) = (events.clone(), c.id.clone());
        let done = Arc::new(AtomicU64::new(0));
        let progress: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |n| {
            let done = done.fetch_add(n, Ordering::Relaxed) + n;
            // The size is not known before the copy: the total grows with it.
            let _ = ev.try_send(SnapshotEvent::Progress {
                dataset: id.clone(),
                done,
                total: done,
            });
        });
        let (dataset, w) =
            super::snapshot_engine::save(docker, image, c, ids, store.chunks.clone(), progress)
                .await?;
        let note = format!(
            "{}: {} copied from the container engine (volume {})",
            c.id,
            human_bytes(dataset.bytes()),
            c.volume
        );
        let _ = events.send(SnapshotEvent::Step(note.clone())).await;
        manifest.notes.push(note);
        written += w;
        manifest.datasets.push(dataset);
    }
    Ok(written)
}

impl Engine {
    /// Writes each container engine volume's data set into a fresh staging volume.
    async fn stage_volumes(
        &self,
        req: &ProjectRef,
        env: &Environment,
        ids: (&str, &str),
        datasets: &[&Dataset],
        store: &Store,
        events: &mpsc::Sender<SnapshotEvent>,
    ) -> Result<EngineStaged, EngineError> {
        let docker = super::snapshot_engine::connect(&req.vars).await?;
        let plans = super::snapshot_engine::volumes(env, ids.0);
        let users: Vec<String> = plans.iter().flat_map(|p| p.users.clone()).collect();
        let image = super::snapshot_engine::helper_image(&docker, env, ids.0, &users).await?;
        let mut staged = Vec::new();
        for d in datasets {
            let name = super::snapshot_engine::volume_of(&d.id).unwrap_or_default();
            let volume = crate::docker::volume_name(ids.0, ids.1, name);
            let _ = events
                .send(SnapshotEvent::Step(format!(
                    "{}: writing {} into a fresh volume of the container engine",
                    d.id,
                    human_bytes(d.bytes())
                )))
                .await;
            let progress: Arc<dyn Fn(u64) + Send + Sync> =
                Arc::new(progress_sink(events, &d.id, d.bytes()));
            let r = super::snapshot_engine::stage(
                &docker,
                &image,
                &volume,
                d,
                ids,
                store.chunks.clone(),
                progress,
            )
            .await;
            match r {
                Ok(s) => staged.push(s),
                Err(e) => {
                    super::snapshot_engine::finish(&docker, staged).await;
                    return Err(e);
                }
            }
        }
        Ok((docker, image, staged))
    }

    /// The files of a container engine volume now, for `diff` (read into a
    /// throwaway store, never the snapshots' one).
    async fn volume_now(
        &self,
        req: &ProjectRef,
        env: &Environment,
        env_id: &str,
        volume: &str,
    ) -> Result<Vec<tree::Entry>, EngineError> {
        let docker = super::snapshot_engine::connect(&req.vars).await?;
        let plan = super::snapshot_engine::volumes(env, env_id)
            .into_iter()
            .find(|p| super::snapshot_engine::volume_of(&p.id) == Some(volume));
        let Some(plan) = plan else {
            return Ok(Vec::new());
        };
        if !super::snapshot_engine::exists(&docker, &plan.volume).await {
            return Ok(Vec::new());
        }
        let image = super::snapshot_engine::helper_image(&docker, env, env_id, &plan.users).await?;
        let scratch =
            tempfile::tempdir_in(self.state.data_dir()).map_err(|source| SnapshotError::Io {
                path: self.state.data_dir(),
                source,
            })?;
        let chunks = snapshot::Chunks::new(scratch.path().to_path_buf());
        let (dataset, _) = super::snapshot_engine::save(
            &docker,
            &image,
            &plan,
            (env_id, &env.name),
            chunks,
            Arc::new(|_| {}),
        )
        .await?;
        Ok(dataset.entries)
    }
}

fn dataset_diff(then: &Dataset, now: &[tree::Entry]) -> DatasetDiff {
    let then_map: BTreeMap<&str, &tree::Entry> =
        then.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let now_map: BTreeMap<&str, &tree::Entry> = now.iter().map(|e| (e.path.as_str(), e)).collect();
    let size = |e: &tree::Entry| match &e.kind {
        tree::EntryKind::File { size, .. } => *size,
        _ => 0,
    };
    let mut d = DatasetDiff {
        id: then.id.clone(),
        bytes_then: then.bytes(),
        bytes_now: now.iter().map(size).sum(),
        ..DatasetDiff::default()
    };
    for (path, e) in &now_map {
        match then_map.get(path) {
            None => d.added.push((*path).to_owned()),
            Some(t) if t.kind != e.kind => d.changed.push((*path).to_owned()),
            Some(_) => {}
        }
    }
    d.removed = then_map
        .keys()
        .filter(|p| !now_map.contains_key(*p))
        .map(|p| (*p).to_owned())
        .collect();
    d
}

/// Lines only in `a` (`- `) and only in `b` (`+ `), in order: a longest common
/// subsequence diff, for configs (bounded: past 4,000 lines a side, one line says so).
fn line_diff(a: &str, b: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    if a == b {
        return Vec::new();
    }
    if a.len() > 4000 || b.len() > 4000 {
        return vec!["~ the config changed (too long to show line by line)".into()];
    }
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(format!("- {}", a[i]));
            i += 1;
        } else {
            out.push(format!("+ {}", b[j]));
            j += 1;
        }
    }
    out
}

/// Renames each (target, staging): the target aside, the staging in its place. On a
/// failure, puts back those done. Returns the set-aside directories to remove.
fn swap(placed: &[(PathBuf, PathBuf)]) -> Result<Vec<PathBuf>, SnapshotError> {
    let mut done: Vec<(PathBuf, PathBuf, Option<PathBuf>)> = Vec::new();
    for (dir, staging) in placed {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SnapshotError::Io { path, source }
        };
        let step = || -> Result<Option<PathBuf>, SnapshotError> {
            let old = if dir.exists() {
                let old = beside(dir, "old");
                if old.exists() {
                    std::fs::remove_dir_all(&old).map_err(io(&old))?;
                }
                std::fs::rename(dir, &old).map_err(io(dir))?;
                Some(old)
            } else {
                None
            };
            if let Err(e) = std::fs::rename(staging, dir) {
                if let Some(old) = &old {
                    let _ = std::fs::rename(old, dir);
                }
                return Err(io(dir)(e));
            }
            Ok(old)
        };
        match step() {
            Ok(old) => done.push((dir.clone(), staging.clone(), old)),
            Err(e) => {
                for (dir, staging, old) in done.into_iter().rev() {
                    let _ = std::fs::rename(&dir, &staging);
                    if let Some(old) = old {
                        let _ = std::fs::rename(&old, &dir);
                    }
                }
                return Err(e);
            }
        }
    }
    Ok(done.into_iter().filter_map(|(_, _, old)| old).collect())
}

/// Removes the save's helper pods.
async fn close(opened: Vec<super::snapshot_pvc::Open>) {
    futures::future::join_all(opened.into_iter().map(|o| o.helper.remove())).await;
}

async fn remove_dirs(dirs: impl IntoIterator<Item = PathBuf>) {
    let dirs: Vec<PathBuf> = dirs
        .into_iter()
        .filter(|d| !d.as_os_str().is_empty())
        .collect();
    let _ = tokio::task::spawn_blocking(move || {
        for d in dirs {
            let _ = std::fs::remove_dir_all(&d);
        }
    })
    .await;
}

/// Waits for an `up`'s end: (ok, its message).
async fn drain_up(mut rx: mpsc::Receiver<UpEvent>) -> (bool, String) {
    while let Some(ev) = rx.recv().await {
        if let UpEvent::Done {
            ok,
            failed,
            message,
        } = ev
        {
            let message = if failed.is_empty() {
                message
            } else {
                format!("{message} (failed: {})", failed.join(", "))
            };
            return (ok, message);
        }
    }
    (false, "the up ended without a result".into())
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Why a BGSAVE failed.
#[derive(Debug, thiserror::Error)]
pub enum BgsaveError {
    #[error("cannot reach redis at 127.0.0.1:{port}: {source}")]
    Connect {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("redis answered: {0}")]
    Refused(String),
    #[error("the background save did not finish within {}s", BGSAVE_LIMIT.as_secs())]
    Timeout,
    #[error("the background save failed (rdb_last_bgsave_status: {0}); see the service's log")]
    Failed(String),
}

/// `BGSAVE` on the Redis at `port`, waited for: INFO's `rdb_saves` (Redis 7) goes up
/// and no save is in progress. Redis sends no event when a save ends, so INFO is
/// asked every 100 ms, under [`BGSAVE_LIMIT`].
async fn bgsave(port: u16, password: Option<&str>) -> Result<(), BgsaveError> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|source| BgsaveError::Connect { port, source })?;
    let mut conn = tokio::io::BufReader::new(stream);
    let io = |e: std::io::Error| BgsaveError::Connect { port, source: e };
    if let Some(pw) = password {
        redis_call(&mut conn, &["AUTH", pw]).await.map_err(io)??;
    }
    let info = |text: &str, key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key}:")))
            .map(|v| v.trim().to_owned())
    };
    let before = redis_call(&mut conn, &["INFO", "persistence"])
        .await
        .map_err(io)??;
    let saves_before: u64 = info(&before, "rdb_saves")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            BgsaveError::Refused("no rdb_saves in INFO (Redis 7 or newer is needed)".into())
        })?;
    redis_call(&mut conn, &["BGSAVE", "SCHEDULE"])
        .await
        .map_err(io)??;
    let deadline = Instant::now() + BGSAVE_LIMIT;
    loop {
        let now = redis_call(&mut conn, &["INFO", "persistence"])
            .await
            .map_err(io)??;
        let saves: u64 = info(&now, "rdb_saves")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let busy = info(&now, "rdb_bgsave_in_progress").as_deref() == Some("1");
        if saves > saves_before && !busy {
            let status = info(&now, "rdb_last_bgsave_status").unwrap_or_default();
            return if status == "ok" {
                Ok(())
            } else {
                Err(BgsaveError::Failed(status))
            };
        }
        if Instant::now() > deadline {
            return Err(BgsaveError::Timeout);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One command in RESP and its reply: a simple string, integer or bulk string, or
/// Redis's error as `Err`.
async fn redis_call(
    conn: &mut tokio::io::BufReader<tokio::net::TcpStream>,
    args: &[&str],
) -> std::io::Result<Result<String, BgsaveError>> {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req += &format!("${}\r\n{a}\r\n", a.len());
    }
    conn.get_mut().write_all(req.as_bytes()).await?;
    let mut line = String::new();
    (&mut *conn)
        .take(REDIS_REPLY_MAX as u64)
        .read_line(&mut line)
        .await?;
    let line = line.trim_end();
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "not a RESP reply");
    Ok(match line.as_bytes().first() {
        Some(b'+') | Some(b':') => Ok(line[1..].to_owned()),
        Some(b'-') => Err(BgsaveError::Refused(line[1..].to_owned())),
        Some(b'$') => {
            let len: i64 = line[1..].parse().map_err(|_| bad())?;
            if len < 0 {
                return Ok(Ok(String::new()));
            }
            let len = usize::try_from(len).map_err(|_| bad())?;
            if len > REDIS_REPLY_MAX {
                return Err(bad());
            }
            let mut buf = vec![0u8; len + 2];
            conn.read_exact(&mut buf).await?;
            buf.truncate(len);
            Ok(String::from_utf8_lossy(&buf).into_owned())
        }
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines_only_on_one_side_are_shown_in_order() {
        let a = "a: 1\nb: 2\nc: 3\n";
        let b = "a: 1\nb: 5\nc: 3\nd: 4\n";
        assert_eq!(line_diff(a, b), vec!["- b: 2", "+ b: 5", "+ d: 4"]);
        assert!(line_diff(a, a).is_empty());
    }

    #[test]
    fn a_manifest_cannot_name_a_place_outside_the_environment() {
        let env = Path::new("/data/envs/x");
        assert_eq!(
            target(env, "preset/db").unwrap(),
            Path::new("/data/envs/x/presets/db")
        );
        assert_eq!(
            target(env, "volume/data").unwrap(),
            Path::new("/data/envs/x/volumes/data")
        );
        for bad in ["preset/../x", "volume/", "other/x", "preset", "volume/.."] {
            assert!(target(env, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_failed_swap_puts_back_what_it_swapped() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, a_new) = (tmp.path().join("a"), tmp.path().join("a.restore"));
        std::fs::create_dir(&a).unwrap();
        std::fs::write(a.join("f"), "old").unwrap();
        std::fs::create_dir(&a_new).unwrap();
        std::fs::write(a_new.join("f"), "new").unwrap();
        // The second staging dir does not exist: its rename fails.
        let (b, b_new) = (tmp.path().join("b"), tmp.path().join("b.restore"));
        std::fs::create_dir(&b).unwrap();
        std::fs::write(b.join("f"), "old b").unwrap();
        assert!(swap(&[(a.clone(), a_new.clone()), (b.clone(), b_new)]).is_err());
        assert_eq!(std::fs::read_to_string(a.join("f")).unwrap(), "old");
        assert_eq!(std::fs::read_to_string(b.join("f")).unwrap(), "old b");
        assert_eq!(std::fs::read_to_string(a_new.join("f")).unwrap(), "new");
    }
}
