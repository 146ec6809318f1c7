//! Dev mode, all of it: who wants a service in dev mode (wanting.rs, `up --dev` and
//! `devenv dev` sessions), the engine's dev API (here), the kube runner's dev steps
//! (workload.rs: enter, sync, leave), restoring workloads an earlier dev mode left
//! replaced (restore.rs), and the file sync into dev pods (sync.rs). The cluster
//! mechanics of replacing and restoring a workload stay in `kube::devmode` (the
//! state store keeps its `Backup`s, and kube/ depends on nothing in the engine).

mod restore;
pub mod sync;
pub(in crate::engine) mod wanting;
pub(in crate::engine) mod workload;

pub(in crate::engine) use restore::put_back;
pub use wanting::DevOwner;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::board::lock;
use super::error::DevError;
use super::runtime::LiveEnv;
use super::up::{UpEvent, UpOptions};
use super::{Engine, EngineError, ProjectRef};
use crate::config::Environment;

impl LiveEnv {
    /// Records which services of this `up` run in dev mode.
    pub(super) fn want_dev(
        &self,
        env: &Environment,
        set: &[String],
        opts: &UpOptions,
    ) -> Result<(), EngineError> {
        let session = opts
            .dev_session
            .as_ref()
            .map(|(id, names)| (*id, names.as_slice()));
        wanting::want(
            &mut lock(&self.shared.dev_wanted),
            env,
            set,
            opts.dev,
            session,
        )
    }

    /// Ends a `devenv dev` session's claim on its services; returns the ones it held.
    pub fn end_dev_session(&self, id: u64) -> Vec<String> {
        let mut wanted = lock(&self.shared.dev_wanted);
        let mine: Vec<String> = wanted
            .iter()
            .filter(|(_, o)| **o == DevOwner::Session(id))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &mine {
            wanted.remove(n);
        }
        mine
    }
}

/// A `devenv dev` session: its services stay in dev mode while this is held; the
/// holder (the RPC handler) drops it when the client goes away.
#[derive(Debug)]
pub struct DevSession {
    /// The session's `up` progress, ending with [`UpEvent::Done`].
    pub events: mpsc::Receiver<UpEvent>,
    /// The environment (for the services' URLs in those events).
    pub env: Arc<super::LiveEnv>,
    _held: oneshot::Sender<()>,
}

impl Engine {
    /// Starts a `devenv dev` session: `services` in dev mode (their dependencies up)
    /// while the returned [`DevSession`] is held. Dropping it ends the session in a
    /// task of the engine's (joined on shutdown, where `down` restores instead).
    pub fn dev(
        self: &Arc<Self>,
        req: ProjectRef,
        services: Vec<String>,
    ) -> Result<DevSession, EngineError> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let opts = UpOptions {
            services: services.clone(),
            keep_going: true,
            dev: false,
            dev_session: Some((id, services)),
            profiles: Vec::new(),
            // Dev mode of a service the user stopped runs it: they asked.
            keep_stopped: false,
            // A service's transition, not the environment's.
            skip_env_hooks: true,
            keep_terraform: false,
        };
        let super::Started { events, env } = self.up(req.clone(), opts)?;
        let (held, released) = oneshot::channel::<()>();
        let engine = Arc::downgrade(self);
        let closing = self.closing.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = released => {}
                _ = closing.cancelled() => return,
            }
            if let Some(engine) = engine.upgrade() {
                engine.end_dev(req, id).await;
            }
        });
        Ok(DevSession {
            events,
            env,
            _held: held,
        })
    }

    /// Ends a `devenv dev` session: its services go back to their original workload
    /// (restored, and running again if they were running). Waits until they are.
    async fn end_dev(&self, req: ProjectRef, id: u64) {
        let Ok(rt) = self.find_or_register(&req) else {
            return;
        };
        let names = rt.end_dev_session(id);
        let running: Vec<String> = names
            .into_iter()
            .filter(|n| rt.shared.status_of(n).is_some_and(|s| s.state.is_active()))
            .collect();
        if running.is_empty() {
            return;
        }
        let opts = UpOptions {
            services: running,
            keep_going: true,
            dev: false,
            dev_session: None,
            profiles: Vec::new(),
            // Putting back what ran: not what the user stopped meanwhile.
            keep_stopped: true,
            skip_env_hooks: true,
            keep_terraform: false,
        };
        if let Ok(mut started) = self.up(req, opts) {
            while started.events.recv().await.is_some() {}
        }
    }

    /// Sync sessions of the environment's services in dev mode.
    pub fn sync_status(&self, req: &ProjectRef) -> Result<Vec<sync::PodSync>, EngineError> {
        let rt = self.find_or_register(req)?;
        Ok(rt
            .shared
            .syncs()
            .into_iter()
            .flat_map(|(_, s)| s.status())
            .collect())
    }

    /// Compares the pods' trees with the local ones.
    pub async fn sync_verify(
        &self,
        req: &ProjectRef,
        services: &[String],
    ) -> Result<Vec<(String, sync::Verified)>, EngineError> {
        let rt = self.find_or_register(req)?;
        let syncs = rt.shared.syncs();
        if let Some(missing) = services
            .iter()
            .find(|n| !syncs.iter().any(|(s, _)| s == *n))
        {
            return Err(DevError::NotSyncing(missing.clone()).into());
        }
        let mut out = Vec::new();
        for (name, s) in syncs {
            if !services.is_empty() && !services.contains(&name) {
                continue;
            }
            for v in s.verify().await {
                out.push((name.clone(), v));
            }
        }
        Ok(out)
    }
}
