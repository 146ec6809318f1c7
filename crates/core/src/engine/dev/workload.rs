//! The kube runner's dev-mode steps: put the service's workload in dev mode (backup
//! first), start the file sync into its pods, and put it back when dev mode ends.
//!
//! The runner (`kuberun/`) hands these steps a [`DevTarget`]: the few parts of itself
//! they use (board, service, cluster connection, variables). `dev/` knows nothing of
//! the runner, so the two no longer name each other.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::restore::put_back;
use super::sync::DevSync;
use crate::config::{Environment, Service};
use crate::engine::board::Shared;
use crate::engine::error::DeployError;
use crate::kube::devmode::{self, DevSpec, Restored};
use crate::kube::rollout::Workload;
use crate::kube::ClusterConn;
use crate::logs::Stream;
use crate::state::DevRecord;

/// Restoring a workload after dev mode gives up after this (and is retried later).
const RESTORE_LIMIT: Duration = Duration::from_secs(20);

/// A workload this run put in dev mode.
pub(in crate::engine) struct DevActive {
    workload: Workload,
    record: DevRecord,
    sync: Option<DevSync>,
}

/// The service whose workload the dev-mode steps act on, as its runner sees it.
pub(in crate::engine) struct DevTarget<'a> {
    pub shared: &'a Arc<Shared>,
    pub svc: &'a Service,
    pub env: &'a Environment,
    pub conn: &'a ClusterConn,
    /// The client's variables (`KUBECONFIG`, `HOME` go into the state record).
    pub vars: &'a BTreeMap<String, String>,
}

impl DevTarget<'_> {
    /// A system line in the service's log.
    fn system(&self, msg: &str) {
        let name: Arc<str> = Arc::from(self.svc.name.as_str());
        self.shared.logs.push(&name, Stream::System, msg);
    }

    /// The state record of `backup`, taken by this service: with the cluster context
    /// and the kubeconfig variables a later daemon needs to restore it.
    fn record(&self, backup: devmode::Backup) -> DevRecord {
        let vars = ["KUBECONFIG", "HOME"]
            .into_iter()
            .filter_map(|k| self.vars.get(k).map(|v| (k.to_owned(), v.clone())))
            .collect();
        DevRecord {
            env_id: self.shared.id.clone(),
            env_name: self.env.name.clone(),
            service: self.svc.name.clone(),
            context: self
                .env
                .cluster
                .as_ref()
                .and_then(crate::kube::context_name),
            vars,
            backup,
        }
    }

    /// Puts the service's workload in dev mode (backup first, in state and on the
    /// object).
    /// Returns what [`DevActive::leave`] needs to put it back.
    pub(in crate::engine) async fn enter(
        &self,
        workloads: &[Workload],
    ) -> Result<DevActive, DeployError> {
        let Some(dev) = self.svc.dev.clone() else {
            return Err(DeployError::NoDevSection(self.svc.name.clone()));
        };
        let w = match workloads {
            [w] => w.clone(),
            [] => return Err(DeployError::DevNoWorkload),
            many => {
                let names: Vec<String> = many
                    .iter()
                    .map(|w| format!("{}/{}", w.kind.to_ascii_lowercase(), w.name))
                    .collect();
                return Err(DeployError::DevManyWorkloads(names));
            }
        };
        let command = dev.command.clone().or_else(|| {
            (dev.on_sync == crate::config::OnSync::Restart)
                .then(|| self.svc.command.clone())
                .flatten()
        });
        let spec = DevSpec {
            image: dev.image.clone(),
            restartable: dev.on_sync == crate::config::OnSync::Restart && command.is_some(),
            command,
            owner: format!("{}/{}", self.env.name, self.svc.name),
        };
        let state = self.shared.state.clone();
        let make = |b: &devmode::Backup| self.record(b.clone());
        let backup = devmode::enter(&self.conn.client, &self.conn.context, &w, &spec, |b| {
            state.put_dev(&make(b)).map_err(|e| e.to_string())
        })
        .await?;
        self.system(&format!(
            "dev mode: {}/{} now runs the dev version (original saved; restored when dev mode ends)",
            w.kind.to_ascii_lowercase(),
            w.name
        ));
        self.shared.set_dev_active(&self.svc.name, true);
        Ok(DevActive {
            workload: w,
            record: self.record(backup),
            sync: None,
        })
    }

    /// Restores what an earlier dev mode of this service left (a daemon killed in
    /// dev mode, a cluster unreachable when it ended), before applying anything:
    /// first the backups recorded in state, then those only on the objects
    /// (`workloads`, the service's workloads as they are on the cluster: the
    /// daemon's state was lost).
    pub(in crate::engine) async fn restore_pending(
        &self,
        workloads: &[Workload],
    ) -> Result<(), DeployError> {
        let records = self
            .shared
            .state
            .devs(&self.shared.id)
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.service == self.svc.name);
        for rec in records {
            let r = put_back(self.conn, &self.shared.state, &rec, None)
                .await
                .map_err(|source| DeployError::DevRestore {
                    what: rec.backup.display(),
                    source,
                })?;
            if r == Restored::Restored {
                self.system(&format!(
                    "restored {} from an earlier dev mode",
                    rec.backup.display()
                ));
            }
        }
        for w in workloads {
            if let Ok(Restored::Restored) =
                devmode::restore(&self.conn.client, &self.conn.context, w, None).await
            {
                self.system(&format!(
                    "restored {}/{} from an earlier dev mode",
                    w.kind.to_ascii_lowercase(),
                    w.name
                ));
            }
        }
        Ok(())
    }
}

impl DevActive {
    /// Starts syncing into the dev pods (once per dev mode).
    pub(in crate::engine) async fn start_sync(&mut self, t: &DevTarget<'_>) {
        let active = self;
        let Some(dev) = t.svc.dev.as_ref().filter(|d| !d.sync.is_empty()) else {
            return;
        };
        if active.sync.is_some() {
            return;
        }
        match DevSync::start(
            t.conn.clone(),
            &t.svc.name,
            dev,
            active.workload.pods.clone(),
            t.shared.logs.clone(),
            &t.env.project_dir,
            super::sync::SyncMode::dev_mode(),
        ) {
            Ok(sync) => {
                sync.ready(Duration::from_secs(10)).await;
                t.shared.set_sync(&t.svc.name, Some(sync.state.clone()));
                for rule in &dev.sync {
                    let from = rule
                        .from
                        .strip_prefix(&t.env.project_dir)
                        .map(|p| format!("./{}", p.display()))
                        .unwrap_or_else(|_| rule.from.display().to_string());
                    let name: Arc<str> = Arc::from(t.svc.name.as_str());
                    t.shared.logs.push(
                        &name,
                        Stream::System,
                        &format!("sync: {from} -> {}", rule.to),
                    );
                }
                active.sync = Some(sync);
            }
            Err(e) => t.system(&format!("sync: cannot watch the files: {e}")),
        }
    }

    /// Ends dev mode: stops the sync and puts the original workload back.
    pub(in crate::engine) async fn leave(self, t: &DevTarget<'_>) {
        let mut active = self;
        t.shared.set_sync(&t.svc.name, None);
        if let Some(sync) = active.sync.take() {
            sync.stop().await;
        }
        let what = format!(
            "{}/{}",
            active.workload.kind.to_ascii_lowercase(),
            active.workload.name
        );
        let restored = tokio::time::timeout(
            RESTORE_LIMIT,
            put_back(
                t.conn,
                &t.shared.state,
                &active.record,
                Some(&active.workload),
            ),
        )
        .await;
        match restored {
            Ok(Ok(r)) => {
                t.shared.set_dev_active(&t.svc.name, false);
                if r == Restored::Restored {
                    t.system(&format!("dev mode ended: {what} restored"));
                }
            }
            Ok(Err(e)) => {
                t.shared.set_dev_active(&t.svc.name, false);
                t.system(&format!(
                "dev mode ended but {what} could not be restored yet: {e}; devenv restores it at the next `up`, `down` or daemon start"
            ));
            }
            Err(_) => {
                t.shared.set_dev_active(&t.svc.name, false);
                t.system(&format!(
                "dev mode ended but restoring {what} timed out; devenv restores it at the next `up`, `down` or daemon start"
            ));
            }
        }
    }
}
