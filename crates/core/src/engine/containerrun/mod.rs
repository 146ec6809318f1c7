//! One task per container service on the local engine: creates (or adopts) its
//! container on the environment's network, streams its output into the log hub,
//! gates readiness on devenv's probe (or the image's HEALTHCHECK), applies the
//! restart policy, and removes the container when stopped. Restarts are devenv's,
//! not the engine's, so they follow the same back-off as local services.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, EventsOptions, LogsOptions, StopContainerOptions,
    WaitContainerOptions,
};
use bollard::Docker;
use futures::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::io::StreamReader;

use super::board::Shared;
use super::supervisor::{
    after_exit, fail_until_told, settle_exit, Ctl, HookPoint, RunHooks, Supervisor, FAILURE_LINES,
    STOP_GRACE,
};
use crate::config::{Environment, Service};
use crate::docker::{self, DockerError, LABEL_CONFIG};
use crate::logs::{self, Stream as LogStream};
use crate::status::ServiceState;

mod build;
mod ready;
mod spec;

pub(in crate::engine) use build::stale as stale_build;

pub(in crate::engine) struct ContainerRun {
    shared: Arc<Shared>,
    svc: Service,
    env: Arc<Environment>,
    vars: Arc<BTreeMap<String, String>>,
    ctl: mpsc::Receiver<Ctl>,
    /// The hooks of its restarts (see `supervisor::ServiceHooks`).
    hooks: RunHooks,
}

/// Why a container could not be made.
#[derive(Debug, thiserror::Error)]
enum StartError {
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    Build(#[from] build::ImageBuildFailed),
}

/// A build of a service's image: its tag.
type Rebuild = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<String, build::ImageBuildFailed>> + Send>,
>;

enum Outcome {
    Exited(Option<i32>, String),
    /// Retrying can't help (no engine, no image): the service fails at once.
    CannotStart(String),
    ProbeFailed(String),
    Stop(Option<oneshot::Sender<()>>),
    Restart,
}

impl ContainerRun {
    /// Starts the runner; its handle is a [`Supervisor`] like a local service's.
    pub(in crate::engine) fn start(
        shared: Arc<Shared>,
        service: Service,
        env: Arc<Environment>,
        vars: Arc<BTreeMap<String, String>>,
        hooks: RunHooks,
    ) -> Supervisor {
        let (tx, rx) = mpsc::channel(8);
        let svc = service.clone();
        let task = tokio::spawn(async move {
            ContainerRun {
                shared,
                svc,
                env,
                vars,
                ctl: rx,
                hooks,
            }
            .main()
            .await
        });
        Supervisor {
            ctl: tx,
            task,
            service,
            dev: false,
            secrets_revision: String::new(),
            tf_values: String::new(),
            // Local processes' exec context; a container has none.
            context: Default::default(),
        }
    }

    fn log_name(&self) -> Arc<str> {
        Arc::from(self.svc.name.as_str())
    }

    fn system(&self, msg: &str) {
        self.shared
            .logs
            .push(&self.log_name(), LogStream::System, msg);
    }

    async fn main(mut self) {
        let name = self.svc.name.clone();
        let mut failures: u32 = 0;
        let mut restarts = self
            .shared
            .status_of(&name)
            .map(|s| s.restarts)
            .unwrap_or(0);
        // The first run adopts a container an earlier daemon left running.
        let mut adopt = true;
        loop {
            let started = Instant::now();
            let first = adopt;
            let outcome = match self.pre_start(first).await {
                Ok(()) => self.run_once(restarts, adopt).await,
                Err(msg) => Outcome::CannotStart(msg),
            };
            adopt = false;
            let (code, why) = match outcome {
                Outcome::Stop(reply) => {
                    self.system("stopped");
                    self.shared.update(&name, |s| {
                        s.state = ServiceState::Stopped;
                        s.message = "stopped".into();
                    });
                    if let Some(r) = reply {
                        let _ = r.send(());
                    }
                    return;
                }
                Outcome::Restart => {
                    restarts += 1;
                    failures = 0;
                    self.shared.update(&name, |s| s.restarts = restarts);
                    continue;
                }
                Outcome::ProbeFailed(msg) | Outcome::CannotStart(msg) => {
                    let lines = self.shared.logs.last_lines(&name, FAILURE_LINES);
                    if fail_until_told(&mut self.ctl, &self.shared, &name, msg, lines).await {
                        restarts += 1;
                        continue;
                    }
                    return;
                }
                Outcome::Exited(code, why) => (code, why),
            };
            let next = settle_exit(
                &self.shared,
                &name,
                self.svc.restart,
                true,
                (code, why),
                started.elapsed(),
                (&mut failures, &mut restarts),
            );
            let go_on = after_exit(
                next,
                &mut self.ctl,
                &self.shared,
                &name,
                (&mut failures, &mut restarts),
            )
            .await;
            if !go_on {
                return;
            }
        }
    }

    /// The container to run: an adoptable one left by an earlier daemon (same
    /// config, still running), else a new one (a stale one of the same name removed).
    /// Returns its id, whether it was adopted, and its image.
    async fn container(
        &self,
        docker: &Docker,
        adopt: bool,
    ) -> Result<(String, bool, String), StartError> {
        let network = docker::ensure_network(docker, &self.shared.id, &self.shared.name).await?;
        let named: Vec<String> = self
            .svc
            .volumes
            .iter()
            .filter(|m| {
                self.env
                    .volumes
                    .iter()
                    .any(|v| v.name == m.name && v.persistent())
            })
            .map(|m| docker::volume_name(&self.shared.id, &self.shared.name, &m.name))
            .collect();
        docker::ensure_volumes(docker, &self.shared.id, &self.shared.name, &named).await?;
        let image = build::image_of(&self.shared, &self.svc, docker).await?;
        let svc = Service {
            image: Some(image.clone()),
            ..self.svc.clone()
        };
        let body = spec::create_body(&svc, &self.env, &self.shared.id, &network);
        let name = docker::container_name(&self.shared.id, &self.shared.name, &self.svc.name);
        if let Ok(found) = docker.inspect_container(&name, None).await {
            let same = found
                .config
                .as_ref()
                .and_then(|c| c.labels.as_ref())
                .and_then(|l| l.get(LABEL_CONFIG))
                == body.labels.as_ref().and_then(|l| l.get(LABEL_CONFIG));
            let running = found.state.as_ref().and_then(|s| s.running) == Some(true);
            let id = found.id.unwrap_or(name.clone());
            if adopt && same && running {
                return Ok((id, true, image));
            }
            docker::remove(docker, &id).await?;
        }
        if docker.inspect_image(&image).await.is_err() {
            self.shared.update(&self.svc.name, |s| {
                s.message = format!("pulling {image}");
            });
            self.system(&format!(
                "image {image} is not in the local engine: pulling"
            ));
            pull(docker, &image).await?;
        }
        let created = docker
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(name.clone()),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(DockerError::api(format!("create container {name}")))?;
        Ok((created.id, false, image))
    }

    /// A build of the service's image as it is now (the old container keeps running).
    fn rebuild(&self, docker: &Docker) -> Rebuild {
        let (shared, svc, docker) = (self.shared.clone(), self.svc.clone(), docker.clone());
        Box::pin(async move { build::image_of(&shared, &svc, &docker).await })
    }

    /// A rebuild is over without replacing the container: says why, in the log and,
    /// for a failure, in the status (the container still runs the previous image).
    fn rebuild_kept(&self, failure: Option<String>) {
        match failure {
            Some(why) => {
                let msg = format!(
                    "the rebuild failed; the container keeps running the previous image: {why}"
                );
                self.system(&msg);
                self.shared.update(&self.svc.name, |s| s.message = msg);
            }
            None => {
                self.system("the image is unchanged (its build context is as before): the container is kept");
                self.shared.update(&self.svc.name, |s| {
                    if s.state == ServiceState::Ready {
                        s.message = String::new();
                    }
                });
            }
        }
    }

    /// The `preStart` hooks of a run the runner owns the hooks of; the failure's
    /// message.
    async fn pre_start(&self, first: bool) -> Result<(), String> {
        if !self.hooks.owns(first) || self.svc.hooks.pre_start.is_empty() {
            return Ok(());
        }
        self.shared.update(&self.svc.name, |s| {
            s.state = ServiceState::Starting;
            s.message = "running its preStart hook".into();
        });
        self.hooks
            .run(HookPoint::PreStart, first)
            .await
            .map_err(|f| format!("preStart hook failed: {}", f.reason))
    }

    /// `adopt`: the first run (see `main`).
    async fn run_once(&mut self, restarts: u32, adopt: bool) -> Outcome {
        let name = self.svc.name.clone();
        let log_name = self.log_name();
        self.shared.update(&name, |s| {
            s.state = ServiceState::Starting;
            s.pid = None;
            s.exit_code = None;
            s.restarts = restarts;
            s.message = "connecting to the container engine".into();
            s.last_lines.clear();
            s.since = SystemTime::now();
        });
        let docker = match docker::connect(&self.vars).await {
            Ok(d) => d,
            Err(e) => {
                let msg = e.to_string();
                self.system(&msg);
                return Outcome::CannotStart(msg);
            }
        };
        let (id, adopted, image) = match self.container(&docker, adopt).await {
            Ok(c) => c,
            Err(e) => {
                let msg = e.to_string();
                self.system(&msg);
                return Outcome::CannotStart(msg);
            }
        };
        // Subscribed before the start, so no health event or exit is missed.
        let events = health_events(&docker, &id);
        let mut exit = Box::pin(wait_exit(docker.clone(), id.clone()));
        let since = if adopted {
            // The earlier daemon's hub has its output up to now.
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs() as i32)
                .unwrap_or(0)
        } else {
            0
        };
        if !adopted {
            if let Err(e) = docker.start_container(&id, None).await {
                let msg = format!("cannot start container for `{name}`: {e}");
                self.system(&msg);
                let _ = docker::remove(&docker, &id).await;
                return Outcome::CannotStart(msg);
            }
        }
        let short: String = id.chars().take(12).collect();
        self.system(&if adopted {
            format!("adopted running container {short}")
        } else {
            format!("started container {short}")
        });
        self.shared.update(&name, |s| s.message = "starting".into());
        let mut readers = JoinSet::new();
        for (stream, out) in [(LogStream::Stdout, true), (LogStream::Stderr, false)] {
            let reader = StreamReader::new(container_output(&docker, &id, out, since));
            readers.spawn(logs::copy_pipe(
                self.shared.logs.clone(),
                reader,
                log_name.clone(),
                stream,
            ));
        }

        let waiter = ready::Waiter {
            docker: docker.clone(),
            id: id.clone(),
            svc: self.svc.clone(),
            logs: self.shared.logs.clone(),
        };
        let ready_fut = ready::until_ready(waiter, events);
        let oneshot = self.svc.oneshot;
        let ready_fut = async move {
            if oneshot {
                std::future::pending::<()>().await;
            }
            ready_fut.await
        };
        tokio::pin!(ready_fut);
        let mut ready = false;
        let mut monitor: Option<ready::Monitor> = None;
        // A watch-triggered build in progress, and whether changes came in during it.
        let mut rebuild: Option<Rebuild> = None;
        let mut again = false;
        let outcome = loop {
            tokio::select! {
                (code, why) = &mut exit => break Outcome::Exited(code, why),
                r = &mut ready_fut, if !ready => match r {
                    Ok(rest) => {
                        ready = true;
                        self.system("ready");
                        if self.hooks.owns(adopt) && !self.svc.hooks.post_ready.is_empty() {
                            // Ready once its `postReady` is done, as on a first start.
                            self.shared.update(&name, |s| s.message = "running its postReady hook".into());
                            if let Err(f) = self.hooks.run(HookPoint::PostReady, adopt).await {
                                break Outcome::ProbeFailed(format!("postReady hook failed: {}", f.reason));
                            }
                        }
                        monitor = Some(rest);
                        self.shared.update(&name, |s| { s.state = ServiceState::Ready; s.message = String::new(); });
                    }
                    Err(msg) => break Outcome::ProbeFailed(msg),
                },
                h = async { monitor.as_mut().expect("set when ready").next().await }, if monitor.is_some() => match h {
                    Some(reason) => self.shared.update(&name, |s| { s.state = ServiceState::Unhealthy; s.message = reason; }),
                    None => self.shared.update(&name, |s| { s.state = ServiceState::Ready; s.message = String::new(); }),
                },
                built = async { rebuild.as_mut().expect("set while building").await }, if rebuild.is_some() => {
                    rebuild = None;
                    if std::mem::take(&mut again) {
                        // The build may have read the context before the latest change.
                        rebuild = Some(self.rebuild(&docker));
                        continue;
                    }
                    match built {
                        Ok(tag) if tag == image => self.rebuild_kept(None),
                        Ok(tag) => {
                            self.system(&format!("rebuilt {tag}: replacing the container"));
                            break Outcome::Restart;
                        }
                        Err(e) => self.rebuild_kept(Some(e.to_string())),
                    }
                }
                c = self.ctl.recv() => match c {
                    Some(Ctl::Stop(reply)) => break Outcome::Stop(Some(reply)),
                    Some(Ctl::Restart) => break Outcome::Restart,
                    Some(Ctl::Rebuild) if self.svc.build.is_some() => {
                        if rebuild.is_some() {
                            again = true;
                        } else {
                            rebuild = Some(self.rebuild(&docker));
                        }
                    }
                    Some(Ctl::Rebuild) => break Outcome::Restart,
                    None => break Outcome::Stop(None),
                },
            }
        };
        if matches!(outcome, Outcome::Restart) {
            // Asked to restart a running container: its `preStop` first (a failure is
            // logged by the hook; the restart goes on, as a stop does).
            if let Err(f) = self.hooks.run(HookPoint::PreStop, false).await {
                tracing::warn!(service = %name, error = %f, "preStop hook failed; restarting it anyway");
            }
        }
        if matches!(
            outcome,
            Outcome::Stop(_) | Outcome::Restart | Outcome::ProbeFailed(_)
        ) {
            self.shared.update(&name, |s| {
                s.state = ServiceState::Stopping;
                s.message = "stopping".into();
            });
            self.system("stopping");
            let _ = docker
                .stop_container(
                    &id,
                    Some(StopContainerOptions {
                        t: Some(STOP_GRACE.as_secs() as i32),
                        ..Default::default()
                    }),
                )
                .await;
        }
        // Output still in the stream belongs to this run; bounded, the container is done.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while readers.join_next().await.is_some() {}
        })
        .await;
        readers.abort_all();
        if let Err(e) = docker::remove(&docker, &id).await {
            self.system(&e.to_string());
        }
        if let Outcome::Exited(_, why) = &outcome {
            self.system(why);
        }
        outcome
    }
}

/// Pulls `image`; with no registry reachable this fails fast with the engine's reason.
async fn pull(docker: &Docker, image: &str) -> Result<(), DockerError> {
    let mut progress = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(image.to_owned()),
            ..Default::default()
        }),
        None,
        None,
    );
    while let Some(step) = progress.next().await {
        step.map_err(|source| DockerError::ImageMissing {
            image: image.to_owned(),
            source,
        })?;
    }
    Ok(())
}

/// One of the container's output streams as bytes (stdout or stderr), from `since`
/// (seconds since the epoch; 0: from its start).
fn container_output(
    docker: &Docker,
    id: &str,
    stdout: bool,
    since: i32,
) -> impl Stream<Item = std::io::Result<bytes::Bytes>> + Send + Unpin + 'static {
    Box::pin(
        docker
            .logs(
                id,
                Some(LogsOptions {
                    follow: true,
                    stdout,
                    stderr: !stdout,
                    since,
                    tail: "all".into(),
                    ..Default::default()
                }),
            )
            .map(|chunk| chunk.map(|c| c.into_bytes()).map_err(std::io::Error::other)),
    )
}

/// The container's health-status events.
fn health_events(
    docker: &Docker,
    id: &str,
) -> std::pin::Pin<Box<dyn Stream<Item = String> + Send>> {
    let filters = std::collections::HashMap::from([
        ("container".to_owned(), vec![id.to_owned()]),
        ("type".to_owned(), vec!["container".to_owned()]),
        ("event".to_owned(), vec!["health_status".to_owned()]),
    ]);
    Box::pin(
        docker
            .events(Some(EventsOptions {
                filters: Some(filters),
                ..Default::default()
            }))
            .filter_map(|e| async move { e.ok().and_then(|e| e.action) }),
    )
}

/// Resolves when the container exits, with its code and a description.
async fn wait_exit(docker: Docker, id: String) -> (Option<i32>, String) {
    let mut wait = docker.wait_container(&id, None::<WaitContainerOptions>);
    match wait.next().await {
        Some(Ok(r)) => {
            let code = r.status_code as i32;
            (Some(code), format!("exited with code {code}"))
        }
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
            let code = code as i32;
            (Some(code), format!("exited with code {code}"))
        }
        Some(Err(e)) => (None, format!("lost the container: {e}")),
        None => (None, "lost the container".into()),
    }
}
