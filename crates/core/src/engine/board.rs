//! The status board of one environment: every service's status (watched, broadcast
//! and persisted on change), its port forwards, and what of it is in dev mode. The
//! lowest piece of the engine: supervisors, the kube runner, up and down all write
//! here, and it depends on none of them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use super::dev::sync::SyncState;
use super::dev::wanting::DevOwner;
use crate::config::Service;
use crate::kube::forward::Forwarder;
use crate::kube::rollout::{self, PodSet, Workload};
use crate::logs::LogHub;
use crate::process::{Guardian, Spawner};
use crate::state::{ServiceRecord, StateStore};
use crate::status::ServiceStatus;

/// Runtime shown for hook entries on the status board (see `hooks.rs`).
pub const HOOK_RUNTIME: &str = "hook";

/// The board and log name of a hook point: `hook/preUp`, `hook/api.postReady`.
pub fn hook_name(service: Option<&str>, point: &str) -> String {
    match service {
        Some(s) => format!("hook/{s}.{point}"),
        None => format!("hook/{point}"),
    }
}

/// Whether a board entry is a hook's (not a service's).
pub fn is_hook(status: &ServiceStatus) -> bool {
    status.runtime == HOOK_RUNTIME
}

/// The board names of every hook point `env` configures.
pub fn configured_hooks(env: &crate::config::Environment) -> Vec<String> {
    let h = &env.hooks;
    let mut out: Vec<String> = [
        ("preUp", &h.pre_up),
        ("postUp", &h.post_up),
        ("preDown", &h.pre_down),
        ("postDown", &h.post_down),
    ]
    .into_iter()
    .filter(|(_, hooks)| !hooks.is_empty())
    .map(|(point, _)| hook_name(None, point))
    .collect();
    for s in &env.services {
        let h = &s.hooks;
        for (point, hooks) in [
            ("preStart", &h.pre_start),
            ("postReady", &h.post_ready),
            ("preStop", &h.pre_stop),
        ] {
            if !hooks.is_empty() {
                out.push(hook_name(Some(&s.name), point));
            }
        }
    }
    out
}

/// What supervisors of one environment share.
#[derive(Debug)]
pub struct Shared {
    pub id: String,
    pub name: String,
    pub logs: LogHub,
    pub spawner: Arc<Spawner>,
    pub guardian: Arc<Guardian>,
    pub state: StateStore,
    /// Identifies this daemon instance in service markers.
    pub instance: String,
    /// Private temp files (helm values, image tarballs).
    pub scratch: crate::scratch::Scratch,
    pub(super) statuses: Mutex<HashMap<String, watch::Sender<ServiceStatus>>>,
    pub(super) events: broadcast::Sender<ServiceStatus>,
    /// Port forwards of kubernetes services that are up, by service.
    pub(super) forwards: Mutex<BTreeMap<String, Vec<Forwarder>>>,
    /// Services asked to run in dev mode, and by whom.
    pub(super) dev_wanted: Mutex<BTreeMap<String, DevOwner>>,
    /// Services whose workload is in dev mode now.
    pub(super) dev_active: Mutex<BTreeSet<String>>,
    /// Sync sessions of services in dev mode.
    pub(super) syncs: Mutex<BTreeMap<String, Arc<SyncState>>>,
    /// Services the user stopped (`devenv stop`): only an explicit `up` or `start`
    /// runs them again (see hold.rs).
    pub(super) held: Mutex<BTreeSet<String>>,
    /// Services waiting for one the user stopped, with the name of that one.
    pub(super) parked: Mutex<BTreeMap<String, String>>,
    /// Replicas asked for by `devenv scale`, by service.
    pub(super) scaled: Mutex<BTreeMap<String, u32>>,
    /// Replicas of the workloads `stop` took to 0, by service and `Kind/name`, put
    /// back when the service starts again.
    pub(super) stopped_replicas: Mutex<BTreeMap<String, BTreeMap<String, u32>>>,
    /// The workloads each kubernetes service's runner deployed.
    pub(super) workloads: Mutex<BTreeMap<String, Vec<Workload>>>,
    /// Outputs of the terraform services that are ready, by service then output
    /// (memory only: sensitive ones are secrets); see tfrun.rs.
    pub(super) tf_outputs: Mutex<BTreeMap<String, BTreeMap<String, crate::terraform::Output>>>,
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Where the pods of `service` (of the environment `env_name`) are: those of the
    /// workloads its runner deployed, by their own selectors
    /// ([`rollout::pod_sets`]), else devenv's labels in `namespace`.
    pub fn pod_sets(&self, env_name: &str, service: &str, namespace: &str) -> Vec<PodSet> {
        let workloads = lock(&self.workloads)
            .get(service)
            .cloned()
            .unwrap_or_default();
        rollout::pod_sets(&workloads, || PodSet {
            namespace: namespace.to_owned(),
            selector: crate::kube::selector(env_name, Some(service)),
        })
    }

    /// The state store's directory.
    pub fn state_dir(&self) -> PathBuf {
        self.state.dir().to_path_buf()
    }

    pub fn add_forward(&self, service: &str, f: Forwarder) {
        self.forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(service.to_owned())
            .or_default()
            .push(f);
    }

    pub fn dev_wanted(&self, service: &str) -> bool {
        lock(&self.dev_wanted).contains_key(service)
    }

    pub fn set_dev_active(&self, service: &str, on: bool) {
        {
            let mut a = lock(&self.dev_active);
            if on {
                a.insert(service.to_owned());
            } else {
                a.remove(service);
            }
        }
        self.update(service, |s| s.dev = on);
    }

    pub fn dev_active(&self, service: &str) -> bool {
        lock(&self.dev_active).contains(service)
    }

    pub fn set_sync(&self, service: &str, s: Option<Arc<SyncState>>) {
        let mut m = lock(&self.syncs);
        match s {
            Some(s) => m.insert(service.to_owned(), s),
            None => m.remove(service),
        };
    }

    /// Sync states of the services in dev mode, by service.
    pub fn syncs(&self) -> Vec<(String, Arc<SyncState>)> {
        lock(&self.syncs)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Whether the user stopped `service` (`devenv stop`) and has not started it.
    pub fn held(&self, service: &str) -> bool {
        lock(&self.held).contains(service)
    }

    /// Writes what the user stopped and scaled into the environment's wanted record
    /// (when it is wanted up), so that a recovery keeps it so.
    pub(super) fn persist_user_choices(&self) {
        let mut rec = match self.state.wanted_of(&self.id) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the wanted record");
                return;
            }
        };
        rec.stopped = lock(&self.held).iter().cloned().collect();
        rec.replicas = lock(&self.scaled).clone();
        if let Err(e) = self.state.put_wanted(&rec) {
            tracing::error!(error = %e, "cannot persist stopped and scaled services");
        }
    }

    pub fn has_forwards(&self, service: &str) -> bool {
        self.forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(service)
            .is_some_and(|v| !v.is_empty())
    }

    pub fn take_forwards(&self, service: &str) -> Vec<Forwarder> {
        self.forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(service)
            .unwrap_or_default()
    }

    pub fn marker(&self, service: &str) -> String {
        format!("{}/{}/{}", self.instance, self.id, service)
    }

    pub fn status_of(&self, name: &str) -> Option<ServiceStatus> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map(|s| s.borrow().clone())
    }

    pub(super) fn watch_of(&self, name: &str) -> Option<watch::Receiver<ServiceStatus>> {
        self.statuses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .map(|s| s.subscribe())
    }

    /// Changes a service's status, then publishes and persists it.
    pub fn update(&self, name: &str, f: impl FnOnce(&mut ServiceStatus)) {
        let snapshot = {
            let map = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
            let Some(tx) = map.get(name) else { return };
            let before = tx.borrow().state;
            tx.send_modify(|s| {
                f(s);
                if s.state != before {
                    s.since = std::time::SystemTime::now();
                }
                // Only a live process has a pid worth showing, or is degraded.
                if !s.state.is_active() {
                    s.pid = None;
                    s.degraded = None;
                }
            });
            let snap = tx.borrow().clone();
            snap
        };
        let _ = self.events.send(snapshot.clone());
        self.persist(snapshot);
    }

    pub(super) fn persist(&self, status: ServiceStatus) {
        if let Err(e) = self.state.put_service(&self.id, &ServiceRecord { status }) {
            tracing::error!(error = %e, "cannot persist service state");
        }
    }

    /// Makes sure a hook point has its entry on the board (see `hooks.rs`).
    pub(super) fn ensure_hook(&self, name: &str) {
        let mut map = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(name.to_owned()).or_insert_with(|| {
            watch::channel(ServiceStatus::new(name, HOOK_RUNTIME, Vec::new())).0
        });
    }

    pub(super) fn ensure_status(&self, svc: &Service) {
        let mut map = self.statuses.lock().unwrap_or_else(|p| p.into_inner());
        match map.get(&svc.name) {
            Some(tx) => tx.send_modify(|s| {
                s.ports = svc.ports.clone();
                s.runtime = svc.runtime.as_str().into();
            }),
            None => {
                let (tx, _) = watch::channel(ServiceStatus::new(
                    &svc.name,
                    svc.runtime.as_str(),
                    svc.ports.clone(),
                ));
                map.insert(svc.name.clone(), tx);
            }
        }
    }
}
