use std::sync::Arc;

use devenv_api::pb::{self, environment_service_server::EnvironmentService};
use devenv_core::engine::{Engine, EngineError, Started, UpEvent, UpOptions};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::ResponseStream;
use crate::convert;

#[derive(Debug)]
pub struct Environments {
    pub engine: Arc<Engine>,
    /// Where the local router listens, for each service's URL.
    pub router: crate::router::RouterState,
}

#[tonic::async_trait]
impl EnvironmentService for Environments {
    async fn validate(
        &self,
        req: Request<pb::ValidateRequest>,
    ) -> Result<Response<pb::ValidateResponse>, Status> {
        let env = convert::env_request(&self.engine, req.into_inner().environment)?;
        super::record(&env, &[]);
        Ok(Response::new(match self.engine.load(&env) {
            Ok(loaded) => {
                // Plugin services: the plugin's own check of its settings.
                let plugin_errors = self.engine.validate_plugins(&env, &loaded).await;
                if !plugin_errors.is_empty() {
                    return Ok(Response::new(convert::invalid(
                        &devenv_core::config::ConfigErrors(plugin_errors),
                    )));
                }
                pb::ValidateResponse {
                    valid: true,
                    errors: Vec::new(),
                    name: loaded.environment.name.clone(),
                    services: loaded
                        .environment
                        .services
                        .iter()
                        .map(|s| s.name.clone())
                        .collect(),
                    warnings: loaded.warnings.iter().map(convert::config_error).collect(),
                }
            }
            Err(errors) => convert::invalid(&errors),
        }))
    }

    async fn show_config(
        &self,
        req: Request<pb::ShowConfigRequest>,
    ) -> Result<Response<pb::ShowConfigResponse>, Status> {
        let env = convert::env_request(&self.engine, req.into_inner().environment)?;
        super::record(&env, &[]);
        let loaded = self
            .engine
            .load(&env)
            .map_err(|e| convert::status(e.into()))?;
        Ok(Response::new(pb::ShowConfigResponse {
            yaml: loaded.merged_yaml,
            values: loaded
                .values
                .into_iter()
                .map(|(path, value, origin)| pb::ConfigValue {
                    path,
                    value,
                    origin: origin.to_string(),
                })
                .collect(),
        }))
    }

    type UpStream = ResponseStream<pb::UpEvent>;

    async fn up(&self, req: Request<pb::UpRequest>) -> Result<Response<Self::UpStream>, Status> {
        let req = req.into_inner();
        let env = convert::env_request(&self.engine, req.environment)?;
        super::record(&env, &req.services);
        let opts = UpOptions {
            services: req.services,
            keep_going: req.keep_going,
            dev: req.dev,
            dev_session: None,
            profiles: req.profiles,
            keep_stopped: false,
            skip_env_hooks: false,
            keep_terraform: false,
        };
        Ok(Response::new(up_stream(
            self.engine.up(env, opts),
            self.router.clone(),
        )?))
    }

    async fn down(
        &self,
        req: Request<pb::DownRequest>,
    ) -> Result<Response<pb::DownResponse>, Status> {
        let req = req.into_inner();
        let env = convert::env_request(&self.engine, req.environment)?;
        super::record(&env, &[]);
        let r = self
            .engine
            .down(&env, req.volumes)
            .await
            .map_err(convert::status)?;
        Ok(Response::new(pb::DownResponse {
            stopped: r.stopped,
            deleted: r.deleted,
            kept_volumes: r.kept_volumes,
            namespace_removed: r.namespace_removed.unwrap_or_default(),
            restored: r.restored,
            removed_data: r.removed_data,
        }))
    }

    async fn status(
        &self,
        req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let rt = super::runtime(&self.engine, req.into_inner().environment)?;
        let config = rt.config();
        Ok(Response::new(pb::StatusResponse {
            environment: rt.name().to_owned(),
            project: rt.project_dir.display().to_string(),
            services: rt
                .statuses()
                .iter()
                .map(|s| convert::service_status_in(s, config.as_deref(), &self.router))
                .collect(),
            version: config
                .as_deref()
                .and_then(|c| c.version.clone())
                .unwrap_or_default(),
        }))
    }

    type WatchStream = ResponseStream<pb::ServiceStatus>;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let rt = super::runtime(&self.engine, req.into_inner().environment)?;
        let (snapshot, mut events) = rt.watch();
        let (tx, rx) = mpsc::channel(256);
        let router = self.router.clone();
        tokio::spawn(async move {
            let config = rt.config();
            for s in &snapshot {
                let s = convert::service_status_in(s, config.as_deref(), &router);
                if tx.send(Ok(s)).await.is_err() {
                    return;
                }
            }
            loop {
                let batch = match events.recv().await {
                    Ok(s) => vec![s],
                    // Events carry one service each, so a skipped one may have been
                    // some service's last: send everything current again.
                    Err(broadcast::error::RecvError::Lagged(_)) => rt.statuses(),
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                // A later `up` may have loaded a changed config.
                let config = rt.config();
                for s in &batch {
                    let s = convert::service_status_in(s, config.as_deref(), &router);
                    if tx.send(Ok(s)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn list(
        &self,
        _: Request<pb::ListRequest>,
    ) -> Result<Response<pb::ListResponse>, Status> {
        let environments = self
            .engine
            .list()
            .into_iter()
            .map(|e| pb::EnvironmentSummary {
                name: e.name,
                project: e.project_dir.display().to_string(),
                env: e.env_name.unwrap_or_default(),
                services: e.services as u32,
                ready: e.ready as u32,
                running: e.running,
                version: e.version.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::ListResponse { environments }))
    }

    async fn init(
        &self,
        req: Request<pb::InitRequest>,
    ) -> Result<Response<pb::InitResponse>, Status> {
        let dir = std::path::PathBuf::from(req.into_inner().dir);
        if !dir.is_absolute() {
            return Err(Status::invalid_argument("dir must be an absolute path"));
        }
        // As `devenv init` does: a compose file is converted (what it could not convert
        // is listed as comments in the YAML); variables are the daemon's, and stay
        // references in the config either way.
        let vars: std::collections::BTreeMap<String, String> = std::env::vars().collect();
        let outcome = devenv_core::config::init_project(
            &dir,
            &devenv_core::config::InitOptions::default(),
            &vars,
        )
        .map_err(|e| Status::invalid_argument(e.to_string()))?;
        Ok(Response::new(pb::InitResponse {
            yaml: outcome.yaml,
            detected: outcome.detected,
        }))
    }
}

/// An engine `up` event on the wire; a service's status with its dependencies and
/// URL from `config` (the environment's, as `Status` and `Watch` give them).
pub(crate) fn up_event(
    ev: UpEvent,
    config: Option<&devenv_core::config::Environment>,
    router: &crate::router::RouterState,
) -> pb::UpEvent {
    let event = match ev {
        UpEvent::Service(s) => {
            pb::up_event::Event::Service(convert::service_status_in(&s, config, router))
        }
        UpEvent::Done {
            ok,
            failed,
            message,
        } => pb::up_event::Event::Result(pb::UpResult {
            ok,
            failed,
            message,
        }),
    };
    pb::UpEvent { event: Some(event) }
}

/// The response stream of an `up`-like call (Up, Start): its events, or the config's
/// errors as one `invalid` event.
pub(super) fn up_stream(
    started: Result<Started, EngineError>,
    router: crate::router::RouterState,
) -> Result<ResponseStream<pb::UpEvent>, Status> {
    let (tx, rx) = mpsc::channel(64);
    match started {
        Ok(Started { mut events, env }) => {
            tokio::spawn(async move {
                while let Some(ev) = events.recv().await {
                    // The config this `up` loaded (set before its first event).
                    let config = env.config();
                    if tx
                        .send(Ok(up_event(ev, config.as_deref(), &router)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
        Err(EngineError::Config(errors)) => {
            let ev = pb::UpEvent {
                event: Some(pb::up_event::Event::Invalid(convert::invalid(&errors))),
            };
            // The channel is new and has room.
            let _ = tx.try_send(Ok(ev));
        }
        Err(e) => return Err(convert::status(e)),
    }
    Ok(Box::pin(ReceiverStream::new(rx)))
}
