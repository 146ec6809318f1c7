//! `devenv workspace sync NAME`: the workspace's `sync` rules (local directories ->
//! directories in its volumes) kept copied into its pod while the client's call lasts.
//! It is dev mode's sync (`engine::dev::sync`: one long-lived receiver stream per rule,
//! an initial sync that sends only what differs, then every debounced batch), taking
//! the workspace's own pod instead of dev-annotated ones; files written or deleted are
//! the idle watcher's `sync` signal. A new pod (a restart, a stop then start) gets an
//! initial sync again; while the workspace is stopped the sync waits.
//!
//! Its lines go to the environment's log hub as service `workspace/NAME` (so `devenv
//! logs workspace/NAME` has them) and to the client; its sessions show in `devenv sync
//! status` and `devenv sync verify workspace/NAME`.

use std::sync::Arc;
use std::time::Duration;

use super::{Signal, Target, WorkspaceError};
use crate::engine::board::Shared;
use crate::engine::dev::sync::{DevSync, SyncMode};
use crate::engine::{Engine, EngineError, ProjectRef};
use crate::kube::workspace as kws;
use crate::logs::{Received, Stream};

/// How long the start waits for the file watcher to have its directories.
const WATCH_READY: Duration = Duration::from_secs(10);

/// A running `workspace sync`; ends with [`Self::serve`]'s `until`.
pub struct WorkspaceSync {
    sync: DevSync,
    shared: Arc<Shared>,
    /// The log hub's service name of its lines: `workspace/NAME`.
    service: Arc<str>,
    /// `from -> to` per rule, for the client's first lines.
    pub rules: Vec<String>,
}

impl std::fmt::Debug for WorkspaceSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkspaceSync")
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts syncing the workspace's `sync` rules into its pod; refused when it has
    /// none, or is stopped (a sync never starts a workspace).
    pub async fn workspace_sync(
        &self,
        req: &ProjectRef,
        name: &str,
    ) -> Result<WorkspaceSync, EngineError> {
        let t: Target = self.workspace_target(req, name).await?;
        if t.ws.sync.is_empty() {
            return Err(WorkspaceError::NoSync {
                name: name.to_owned(),
            }
            .into());
        }
        self.running_or_refuse(&t).await?;
        let rt = self.find_or_register(req)?;
        let service: Arc<str> = Arc::from(format!("workspace/{name}"));
        let activity = self.idle_arm(&t, Signal::Seen);
        let mode = SyncMode {
            dev_pods_only: false,
            on_traffic: Some(Arc::new(move || activity.touch(Signal::Sync))),
        };
        let dev = crate::config::Dev {
            command: None,
            image: None,
            sync: t.ws.sync.clone(),
            on_sync: crate::config::OnSync::None,
        };
        let sync = DevSync::start(
            t.conn.clone(),
            &service,
            &dev,
            kws::selector(&t.env.name, &t.ws),
            rt.shared.logs.clone(),
            &t.env.project_dir,
            mode,
        )
        .map_err(|message| WorkspaceError::Watch {
            name: name.to_owned(),
            message,
        })?;
        sync.ready(WATCH_READY).await;
        rt.shared.set_sync(&service, Some(sync.state.clone()));
        let rules =
            t.ws.sync
                .iter()
                .map(|r| {
                    let from = r
                        .from
                        .strip_prefix(&t.env.project_dir)
                        .map(|p| format!("./{}", p.display()))
                        .unwrap_or_else(|_| r.from.display().to_string());
                    format!("{from} -> {}", r.to)
                })
                .collect();
        Ok(WorkspaceSync {
            sync,
            shared: rt.shared.clone(),
            service,
            rules,
        })
    }
}

impl WorkspaceSync {
    /// Hands each of its log lines to `line` until `until` resolves (the client went
    /// away) or `line` says stop (returns false); then stops the sync.
    pub async fn serve(
        self,
        until: impl std::future::Future<Output = ()>,
        mut line: impl FnMut(&str) -> bool,
    ) {
        let mut follower = self.shared.logs.follow(Some(vec![self.service.clone()]));
        for r in &self.rules {
            self.shared
                .logs
                .push(&self.service, Stream::System, &format!("sync: {r}"));
        }
        tokio::pin!(until);
        loop {
            tokio::select! {
                () = &mut until => break,
                got = follower.recv() => match got {
                    Some(Received::Lines(lines)) => {
                        if !lines.iter().all(|l| line(&l.text)) {
                            break;
                        }
                    }
                    Some(Received::Missed(m)) => {
                        if !line(&format!("[{} line(s) not shown]", m.lines)) {
                            break;
                        }
                    }
                    None => break,
                },
            }
        }
        self.shared.set_sync(&self.service, None);
        self.sync.stop().await;
        self.shared
            .logs
            .push(&self.service, Stream::System, "sync: stopped");
    }
}
