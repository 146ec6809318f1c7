//! Putting workloads back after dev mode. [`put_back`] is the one routine every
//! path uses (a dev mode ending, `up` and `down` finding a backup, a daemon start);
//! [`Engine::restore_dev_workloads`] retries what an earlier daemon left.

use std::sync::Arc;
use std::time::Duration;

use super::super::Engine;
use crate::config::{Cluster, ClusterProvider};
use crate::kube::devmode::{self, Restored};
use crate::kube::rollout::Workload;
use crate::kube::{ClusterConn, KubeError};
use crate::state::{DevRecord, StateStore};

/// Restores a workload from its dev-mode backup (the copy on the object wins, see
/// [`devmode::restore`]) and forgets the backup once that worked. `workload` is the
/// live workload when the caller has it, else the one the backup names.
pub(in crate::engine) async fn put_back(
    kenv: &ClusterConn,
    state: &StateStore,
    rec: &DevRecord,
    workload: Option<&Workload>,
) -> Result<Restored, KubeError> {
    let named;
    let w = match workload {
        Some(w) => w,
        None => {
            named = devmode::workload_of(&rec.backup);
            &named
        }
    };
    let r = devmode::restore(&kenv.client, &kenv.context, w, Some(&rec.backup)).await?;
    if let Err(e) = state.remove_dev(rec) {
        tracing::warn!(workload = %rec.backup.display(), error = %e, "cannot forget a dev-mode backup");
    }
    Ok(r)
}

impl Engine {
    /// Workloads left in dev mode by an earlier daemon (killed while a `devenv dev`
    /// or `up --dev` ran) are restored in the background, retried with back-off while
    /// their cluster is unreachable; `up` and `down` of their environment also restore.
    /// The tasks are the engine's: shutdown cancels them (an unreachable cluster must
    /// not hold it up) and joins them.
    pub(in crate::engine) fn restore_dev_workloads(&self) {
        let records = match self.state.devs("") {
            Ok(r) if !r.is_empty() => r,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read dev-mode backups");
                return;
            }
        };
        let envs = self.envs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for rec in records {
            let state = self.state.clone();
            let rt = envs.get(&rec.env_id).cloned();
            let closing = self.closing.clone();
            self.tasks.spawn(async move {
                let mut wait = Duration::from_secs(1);
                loop {
                    let attempt = tokio::select! {
                        r = restore_record(&state, &rec) => r,
                        _ = closing.cancelled() => return,
                    };
                    match attempt {
                        Ok(restored) => {
                            if let Some(rt) = &rt {
                                if restored {
                                    let name: Arc<str> = Arc::from(rec.service.as_str());
                                    rt.shared.logs.push(
                                        &name,
                                        crate::logs::Stream::System,
                                        &format!(
                                            "dev mode ended by a daemon restart: {} restored",
                                            rec.backup.display()
                                        ),
                                    );
                                }
                            }
                            tracing::info!(workload = %rec.backup.display(), restored, "dev mode backup handled");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(workload = %rec.backup.display(), error = %e, "cannot restore after dev mode yet");
                            // Someone else (an `up` or `down`) may have restored it meanwhile.
                            let still = state
                                .devs(&rec.env_id)
                                .map(|all| all.contains(&rec))
                                .unwrap_or(false);
                            if !still {
                                return;
                            }
                            tokio::select! {
                                _ = tokio::time::sleep(wait) => {}
                                _ = closing.cancelled() => return,
                            }
                            wait = (wait * 2).min(Duration::from_secs(60));
                        }
                    }
                }
            });
        }
    }
}

/// Restores one dev-mode backup through its recorded cluster; true when the
/// workload was changed back.
async fn restore_record(state: &StateStore, rec: &DevRecord) -> Result<bool, KubeError> {
    let cluster = Cluster {
        provider: ClusterProvider::Kubeconfig,
        name: None,
        context: rec.context.clone(),
        namespace: rec.backup.namespace.clone(),
        k3d: Default::default(),
        shared: false,
        policy: Default::default(),
        snapshot_image: None,
        registry: None,
    };
    let kenv = ClusterConn::connect(&cluster, &rec.env_name, &rec.vars).await?;
    let r = put_back(&kenv, state, rec, None).await?;
    Ok(r == Restored::Restored)
}
