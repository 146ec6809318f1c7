//! Workloads an earlier dev mode left replaced (the daemon was killed while a
//! `devenv dev` or `up --dev` ran) are put back from their backups.

use std::sync::Arc;
use std::time::Duration;

use super::super::Engine;

impl Engine {
    /// Workloads left in dev mode by an earlier daemon (killed while a `devenv dev`
    /// or `up --dev` ran) are restored in the background, retried with back-off while
    /// their cluster is unreachable; `up` and `down` of their environment also restore.
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
            // Not tracked: shutdown must not wait for an unreachable cluster.
            tokio::spawn(async move {
                let mut wait = Duration::from_secs(1);
                loop {
                    match restore_record(&rec).await {
                        Ok(restored) => {
                            let _ = state.remove_dev(&rec);
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
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(60));
                        }
                    }
                }
            });
        }
    }
}

/// Restores one dev-mode backup; true when the workload was changed back.
async fn restore_record(rec: &crate::state::DevRecord) -> Result<bool, String> {
    use crate::config::{Cluster, ClusterProvider};
    use crate::kube::devmode::{self, Restored};
    let cluster = Cluster {
        provider: ClusterProvider::Kubeconfig,
        name: None,
        context: rec.context.clone(),
        namespace: rec.backup.namespace.clone(),
        k3d: Default::default(),
    };
    let kenv = crate::kube::KubeEnv::connect(&cluster, &rec.env_name, &rec.vars)
        .await
        .map_err(|e| e.to_string())?;
    let w = devmode::workload_of(&rec.backup);
    let r = devmode::restore(&kenv.client, &kenv.context, &w, Some(&rec.backup))
        .await
        .map_err(|e| e.to_string())?;
    Ok(r == Restored::Restored)
}
