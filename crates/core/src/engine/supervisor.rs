//! One task per running local service: spawns the process, pipes its output into
//! the log hub, gates readiness on the probe, applies the restart policy, and stops
//! it on request. The task is the only owner of the child process.
//!
//! Size (issue 12): about 700 lines, one state machine (`Run`) whose states share the
//! child, its process group, the probe and the back-off; kept in one file so the
//! lifetime of the child is read in one place. The readiness wait and the health
//! monitor at the bottom are the seam if it grows.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::board::Shared;
use crate::config::{Probe, Readiness, RestartPolicy, Service};
use crate::logs::{self, Received, Stream};
use crate::probe::{self, Backoff, ExecContext};
use crate::process;
use crate::status::ServiceState;

/// How long a service gets to exit after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Lines of output attached to a failure report.
pub(super) const FAILURE_LINES: usize = 10;
/// Lines of output searched for the port a service says it listens on.
const PORT_HINT_LINES: usize = 200;
/// A run longer than this resets the restart backoff.
const STABLE_RUN: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// A service hook point a runner runs itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HookPoint {
    PreStart,
    PostReady,
    PreStop,
}

/// The service hooks of a runner's own transitions (hooks.rs implements it over
/// `LiveEnv::run_hooks`). `up` runs `preStart` and `postReady` of a service's first
/// start itself (at most once per `up`, see hooks.rs); the runner runs them around
/// every later run it makes: a restart by its restart policy, and a restart it is
/// told to do (`devenv restart`, a watch rule, a restarted dependency, `up`
/// retrying a failed service), with `preStop` first when a process is running.
pub(super) trait ServiceHooks: Send + Sync {
    /// Runs the hooks of `point` (nothing configured: `Ok` at once).
    fn run(
        self: Arc<Self>,
        point: HookPoint,
    ) -> futures::future::BoxFuture<'static, Result<(), super::error::HookFailed>>;
}

/// A runner's service hooks, and whether it runs them for its first run too (a
/// runner `devenv restart` starts anew: no `up` ran them).
#[derive(Clone, Default)]
pub(super) struct RunHooks {
    pub hooks: Option<Arc<dyn ServiceHooks>>,
    pub on_first_run: bool,
}

impl RunHooks {
    /// Whether the runner runs the hooks of this run (its first or a later one).
    pub(super) fn owns(&self, first_run: bool) -> bool {
        self.hooks.is_some() && (!first_run || self.on_first_run)
    }

    /// Runs `point` when this run is one the runner owns the hooks of.
    pub(super) async fn run(
        &self,
        point: HookPoint,
        first_run: bool,
    ) -> Result<(), super::error::HookFailed> {
        match self.future(point, first_run) {
            Some(f) => f.await,
            None => Ok(()),
        }
    }

    /// The same as a future owning what it needs (to be polled beside a process).
    pub(super) fn future(
        &self,
        point: HookPoint,
        first_run: bool,
    ) -> Option<futures::future::BoxFuture<'static, Result<(), super::error::HookFailed>>> {
        match &self.hooks {
            Some(h) if self.owns(first_run) => Some(h.clone().run(point)),
            _ => None,
        }
    }
}

impl std::fmt::Debug for RunHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHooks")
            .field("hooks", &self.hooks.is_some())
            .field("on_first_run", &self.on_first_run)
            .finish()
    }
}

#[derive(Debug)]
pub enum Ctl {
    Stop(oneshot::Sender<()>),
    Restart,
    /// The watcher saw the build context change (containers with `build:`): build
    /// first, replace only when the image changed, keep running when the build fails.
    /// Other runners restart.
    Rebuild,
}

/// Handle to a running supervisor.
#[derive(Debug)]
pub struct Supervisor {
    pub ctl: mpsc::Sender<Ctl>,
    pub task: tokio::task::JoinHandle<()>,
    /// The config it runs, to notice changes on the next `up`.
    pub service: Service,
    /// Runs the dev version (dev mode).
    pub dev: bool,
    /// [`crate::config::Environment::secrets_revision`] of what it was started with, to
    /// notice a rotation on the next `up`; set by whoever starts it.
    pub secrets_revision: String,
    /// [`super::tfrun::values_digest`] of the terraform outputs it was started with,
    /// to restart it when one changes; set by whoever starts it.
    pub tf_values: String,
    /// The workdir and environment of the running process (`devenv exec` runs its
    /// commands with them); `None` while no process runs.
    pub context: Arc<std::sync::Mutex<Option<ExecContext>>>,
}

impl Supervisor {
    /// `secrets` are the variables the service's `secrets:` give it
    /// ([`crate::config::Environment::secret_vars`]): in its process's environment
    /// under its own `env`, never in what is kept to compare configs or shown.
    /// `volumes` are the environment's volumes it mounts: directories named by
    /// `DEVENV_VOLUME_<NAME>` in its environment ([`crate::volumes`]).
    pub fn start(
        shared: Arc<Shared>,
        service: Service,
        vars: Arc<std::collections::BTreeMap<String, String>>,
        secrets: std::collections::BTreeMap<String, String>,
        hooks: RunHooks,
        volumes: Vec<crate::config::Volume>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(8);
        let task_shared = shared.clone();
        let name = service.name.clone();
        let site = crate::presets::Site {
            env_dir: shared.state.env_dir(&shared.id),
            state_dir: shared.state_dir(),
            env_id: shared.id.clone(),
            path_var: vars.get("PATH").cloned(),
        };
        let mut configured = service.clone();
        for (k, v) in secrets {
            configured.env.entry(k).or_insert(v);
        }
        let context = Arc::new(std::sync::Mutex::new(None));
        let run_context = context.clone();
        let task = tokio::spawn(async move {
            let shared = task_shared;
            let log_name: Arc<str> = Arc::from(name.as_str());
            if !volumes.is_empty() {
                let env_dir = site.env_dir.clone();
                let prepared = tokio::task::spawn_blocking(move || {
                    crate::volumes::prepare(&volumes, &env_dir)
                })
                .await;
                match prepared {
                    Ok(Ok((dirs, notes))) => {
                        for note in notes {
                            shared.logs.push(&log_name, Stream::System, &note);
                        }
                        configured.env.extend(dirs);
                    }
                    Ok(Err(e)) => {
                        let msg = e.to_string();
                        shared.logs.push(&log_name, Stream::System, &msg);
                        shared.update(&name, |s| {
                            s.state = ServiceState::Failed;
                            s.message = msg;
                        });
                        return;
                    }
                    Err(e) => {
                        let msg = format!("preparing the volumes failed: {e}");
                        shared.update(&name, |s| {
                            s.state = ServiceState::Failed;
                            s.message = msg;
                        });
                        return;
                    }
                }
            }
            let svc = match crate::presets::prepare(&configured, &site).await {
                Ok((svc, notes)) => {
                    for note in notes {
                        shared.logs.push(&log_name, Stream::System, &note);
                    }
                    svc
                }
                Err(e) => {
                    let msg = e.to_string();
                    shared
                        .logs
                        .push(&Arc::from(name.as_str()), Stream::System, &msg);
                    shared.update(&name, |s| {
                        s.state = ServiceState::Failed;
                        s.message = msg;
                    });
                    return;
                }
            };
            Run {
                shared,
                svc,
                vars,
                ctl: rx,
                context: run_context,
                hooks,
            }
            .main()
            .await
        });
        Self {
            ctl: tx,
            task,
            service,
            dev: false,
            secrets_revision: String::new(),
            tf_values: String::new(),
            context,
        }
    }

    /// Asks the supervisor to stop and waits until the process group is gone.
    pub async fn stop(&self) {
        let (tx, rx) = oneshot::channel();
        if self.ctl.send(Ctl::Stop(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct Run {
    shared: Arc<Shared>,
    svc: Service,
    vars: Arc<std::collections::BTreeMap<String, String>>,
    ctl: mpsc::Receiver<Ctl>,
    context: Arc<std::sync::Mutex<Option<ExecContext>>>,
    hooks: RunHooks,
}

enum Outcome {
    Exited(Option<i32>, String),
    /// The process could not be spawned (no such program or workdir, not executable):
    /// retrying can't help, so the service fails at once.
    CannotStart(String),
    ProbeFailed(String),
    /// A `preStart` or `postReady` hook failed (`onError: fail`): the message and the
    /// hook's last lines.
    HookFailed(String, Vec<String>),
    Stop(Option<oneshot::Sender<()>>),
    Restart,
}

impl Run {
    async fn main(mut self) {
        let name = self.svc.name.clone();
        let mut failures: u32 = 0;
        let mut restarts = self
            .shared
            .status_of(&name)
            .map(|s| s.restarts)
            .unwrap_or(0);
        let mut first = true;
        loop {
            let started = Instant::now();
            let outcome = match self.pre_start(first, restarts).await {
                Ok(()) => self.run_once(restarts, first).await,
                Err(failed) => failed,
            };
            first = false;
            *self.context.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let (code, why) = match outcome {
                Outcome::Stop(reply) => {
                    self.shared
                        .logs
                        .push(&Arc::from(name.as_str()), Stream::System, "stopped");
                    self.shared.update(&name, |s| {
                        s.state = ServiceState::Stopped;
                        s.pid = None;
                        s.message = "stopped".into();
                    });
                    if let Some(r) = reply {
                        let _ = r.send(());
                    }
                    return;
                }
                Outcome::Restart => {
                    // Asked for (`devenv restart`, a watch rule, a dependency): not a
                    // crash, and the crash back-off starts over.
                    restarts += 1;
                    failures = 0;
                    self.shared.update(&name, |s| s.restarts = restarts);
                    continue;
                }
                Outcome::ProbeFailed(mut msg) => {
                    let lines = self.shared.logs.last_lines(&name, FAILURE_LINES);
                    let probed = self
                        .svc
                        .readiness
                        .as_ref()
                        .and_then(|r| super::portcheck::probe_port(&r.probe));
                    if let Some(probed) = probed {
                        let seen = self.shared.logs.last_lines(&name, PORT_HINT_LINES);
                        if let Some(port) = super::portcheck::port_in_logs(&seen, probed) {
                            msg.push_str(&format!(
                                " (hint: its log says it listens on port {port}, the probe checks {probed}; fix `readiness` or the service's port)"
                            ));
                        }
                    }
                    if fail_until_told(&mut self.ctl, &self.shared, &name, msg, lines).await {
                        restarts += 1;
                        continue;
                    }
                    return;
                }
                Outcome::HookFailed(msg, lines) => {
                    if fail_until_told(&mut self.ctl, &self.shared, &name, msg, lines).await {
                        restarts += 1;
                        continue;
                    }
                    return;
                }
                Outcome::CannotStart(msg) => {
                    if fail_until_told(&mut self.ctl, &self.shared, &name, msg, Vec::new()).await {
                        restarts += 1;
                        continue;
                    }
                    return;
                }
                Outcome::Exited(code, why) => (code, why),
            };
            // `sh -c` exits 127 when the program isn't found and 126 when it can't be
            // run: the same on every retry.
            let unrunnable = matches!(self.svc.command, Some(crate::config::Command::Shell(_)))
                && matches!(code, Some(126 | 127));
            let why = if unrunnable {
                format!("{why}: the shell could not find or run the command; not restarting (fix `command` or PATH, then `devenv restart {name}`)")
            } else {
                why
            };
            let next = settle_exit(
                &self.shared,
                &name,
                self.svc.restart,
                !unrunnable,
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

    /// The `preStart` hooks of a run the supervisor owns the hooks of (see
    /// [`ServiceHooks`]); a failure is the run's outcome.
    async fn pre_start(&mut self, first: bool, restarts: u32) -> Result<(), Outcome> {
        if !self.hooks.owns(first) || self.svc.hooks.pre_start.is_empty() {
            return Ok(());
        }
        self.shared.update(&self.svc.name, |s| {
            s.state = ServiceState::Starting;
            s.pid = None;
            s.restarts = restarts;
            s.message = "running its preStart hook".into();
        });
        self.hooks
            .run(HookPoint::PreStart, first)
            .await
            .map_err(|f| {
                Outcome::HookFailed(format!("preStart hook failed: {}", f.reason), f.last_lines)
            })
    }

    async fn run_once(&mut self, restarts: u32, first: bool) -> Outcome {
        let name = self.svc.name.clone();
        let svc_name: Arc<str> = Arc::from(name.as_str());
        self.shared.update(&name, |s| {
            s.state = ServiceState::Starting;
            s.pid = None;
            s.exit_code = None;
            s.restarts = restarts;
            s.message = "starting".into();
            s.last_lines.clear();
            s.since = SystemTime::now();
        });
        let Some(command) = self.svc.command.clone() else {
            return Outcome::Exited(None, "no command to run".into());
        };
        let marker = self.shared.marker(&name);
        if let Some(used) =
            super::portcheck::check_free(super::portcheck::wanted_ports(&self.svc), marker.clone())
                .await
        {
            let msg = format!(
                "cannot start: {used}; stop it or change the service's port, then `devenv restart {name}`"
            );
            self.shared.logs.push(&svc_name, Stream::System, &msg);
            return Outcome::CannotStart(msg);
        }
        let env = self.process_env();
        let mut cmd = probe::build_command(&command, env.get("PATH").map(String::as_str));
        cmd.current_dir(&self.svc.workdir)
            .env_clear()
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Subscribe before spawning so a log probe cannot miss an early line.
        let log_follower = match &self.svc.readiness {
            Some(Readiness {
                probe: Probe::Log { .. },
                ..
            }) => Some(self.shared.logs.follow(Some(vec![svc_name.clone()]))),
            _ => None,
        };
        let mut child = match self.shared.spawner.spawn(cmd).await {
            Ok(c) => c,
            Err(e) => {
                let what = match &command {
                    crate::config::Command::Shell(_) => "sh".to_string(),
                    crate::config::Command::Exec(argv) => argv[0].clone(),
                };
                let workdir = &self.svc.workdir;
                let msg = if !workdir.is_dir() {
                    format!(
                        "cannot start: workdir {} does not exist; create it or fix `workdir`",
                        workdir.display()
                    )
                } else if e.kind() == std::io::ErrorKind::NotFound {
                    format!(
                        "cannot start: `{what}` was not found on PATH; install it or fix `command`"
                    )
                } else {
                    format!("cannot start `{what}` in {}: {e}", workdir.display())
                };
                self.shared.logs.push(&svc_name, Stream::System, &msg);
                let permanent = !workdir.is_dir()
                    || matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                    );
                return if permanent {
                    Outcome::CannotStart(msg)
                } else {
                    Outcome::Exited(None, msg)
                };
            }
        };
        let leader = process::Leader::of(&child);
        let pid = leader.pid();
        self.shared.guardian.watch(pid);
        self.shared.update(&name, |s| s.pid = Some(pid as u32));
        self.shared
            .logs
            .push(&svc_name, Stream::System, &format!("started (pid {pid})"));

        let mut readers = JoinSet::new();
        if let Some(out) = child.stdout.take() {
            readers.spawn(logs::copy_pipe(
                self.shared.logs.clone(),
                out,
                svc_name.clone(),
                Stream::Stdout,
            ));
        }
        if let Some(err) = child.stderr.take() {
            readers.spawn(logs::copy_pipe(
                self.shared.logs.clone(),
                err,
                svc_name.clone(),
                Stream::Stderr,
            ));
        }

        let readiness = self.svc.readiness.clone();
        let exec_ctx = ExecContext {
            workdir: self.svc.workdir.clone(),
            env,
        };
        *self.context.lock().unwrap_or_else(|p| p.into_inner()) = Some(exec_ctx.clone());
        let oneshot = self.svc.oneshot;
        if oneshot {
            self.shared.update(&name, |s| {
                s.message = "running (oneshot: dependents wait for it to finish)".into()
            });
        }
        let (probe_name, probe_ctx) = (svc_name.clone(), exec_ctx.clone());
        let probe_logs = self.shared.logs.clone();
        let ready_fut = async move {
            if oneshot {
                // Done means exited 0, which the child branch sees.
                std::future::pending::<()>().await;
            }
            let owner = Owner { pgid: pid, marker };
            wait_ready(
                readiness,
                probe_ctx,
                log_follower,
                probe_name,
                probe_logs,
                owner,
            )
            .await
        };
        tokio::pin!(ready_fut);
        let mut ready = false;
        let mut health = HealthMonitor::new(self.svc.readiness.as_ref());
        // `postReady` of a run the supervisor owns the hooks of: runs beside the
        // process once it is ready.
        let mut post_ready = None;

        let outcome = loop {
            tokio::select! {
                () = leader.exited(&mut child) => {
                    // Take down anything it left in its group while the unreaped
                    // leader still holds the group id, then reap it.
                    process::signal_group(pid, Signal::SIGKILL);
                    self.shared.guardian.forget(pid);
                    let (code, why) = match child.wait().await {
                        Ok(st) => describe_exit(st),
                        Err(e) => (None, format!("wait failed: {e}")),
                    };
                    break Outcome::Exited(code, why);
                }
                r = &mut ready_fut, if !ready => {
                    match r {
                        Ok(()) => {
                            ready = true;
                            self.shared.logs.push(&svc_name, Stream::System, "ready");
                            if !self.svc.hooks.post_ready.is_empty() {
                                post_ready = self.hooks.future(HookPoint::PostReady, first);
                            }
                            // As on a first start, it is ready (for `devenv restart`,
                            // `up`) once its `postReady` is done.
                            let (state, message) = match post_ready {
                                Some(_) => (ServiceState::Starting, "running its postReady hook"),
                                None => (ServiceState::Ready, ""),
                            };
                            self.shared.update(&name, |s| { s.state = state; s.message = message.into(); });
                        }
                        Err(msg) => break Outcome::ProbeFailed(msg),
                    }
                }
                r = async { post_ready.as_mut().expect("guarded").await }, if post_ready.is_some() => {
                    post_ready = None;
                    if let Err(f) = r {
                        break Outcome::HookFailed(format!("postReady hook failed: {}", f.reason), f.last_lines);
                    }
                    self.shared.update(&name, |s| { s.state = ServiceState::Ready; s.message = String::new(); });
                }
                h = health.next(&exec_ctx), if ready && post_ready.is_none() && health.enabled() => {
                    match h {
                        Some(reason) => self.shared.update(&name, |s| { s.state = ServiceState::Unhealthy; s.message = reason; }),
                        None => self.shared.update(&name, |s| { s.state = ServiceState::Ready; s.message = String::new(); }),
                    }
                }
                c = self.ctl.recv() => {
                    break match c {
                        Some(Ctl::Stop(reply)) => Outcome::Stop(Some(reply)),
                        Some(Ctl::Restart | Ctl::Rebuild) => Outcome::Restart,
                        None => Outcome::Stop(None),
                    };
                }
            }
        };

        // Dropped (killed, as the `up` it belongs to would) when the process ends first.
        drop(post_ready);
        if matches!(outcome, Outcome::Restart) {
            // Asked to restart a running process: its `preStop` first (a failure is
            // logged by the hook; the restart goes on, as a stop does).
            if let Err(f) = self.hooks.run(HookPoint::PreStop, false).await {
                tracing::warn!(service = %name, error = %f, "preStop hook failed; restarting it anyway");
            }
        }
        if matches!(
            outcome,
            Outcome::Stop(_) | Outcome::Restart | Outcome::ProbeFailed(_) | Outcome::HookFailed(..)
        ) {
            self.shared.update(&name, |s| {
                s.state = ServiceState::Stopping;
                s.message = "stopping".into();
            });
            self.shared.logs.push(&svc_name, Stream::System, "stopping");
            terminate(&leader, &mut child).await;
            // Forgotten before the reap: the guardian must never hold a group id
            // that may already belong to someone else.
            self.shared.guardian.forget(pid);
            let _ = child.wait().await;
        }
        // Output still in the pipes belongs to this run; bounded, since the group is gone.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            while readers.join_next().await.is_some() {}
        })
        .await;
        readers.abort_all();
        if let Outcome::Exited(_, why) = &outcome {
            self.shared.logs.push(&svc_name, Stream::System, why);
        }
        outcome
    }

    /// The service's environment: the client's environment (what the user's shell
    /// has), the service's own `env`, and devenv's markers.
    fn process_env(&self) -> std::collections::BTreeMap<String, String> {
        let mut env: std::collections::BTreeMap<String, String> = self
            .vars
            .iter()
            .filter(|(k, _)| k.as_str() != process::MARKER_VAR)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.extend(self.svc.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        env.insert("DEVENV_SERVICE".into(), self.svc.name.clone());
        env.insert("DEVENV_ENVIRONMENT".into(), self.shared.name.clone());
        env.insert(
            process::MARKER_VAR.into(),
            self.shared.marker(&self.svc.name),
        );
        env
    }
}

/// Stops the group of `leader` (SIGTERM, SIGKILL after the grace), signalling it
/// only while the leader is unreaped (see [`process::group`]); leaves the reaping
/// to the caller.
async fn terminate(leader: &process::Leader, child: &mut tokio::process::Child) {
    let pgid = leader.pid();
    if !process::signal_group(pgid, Signal::SIGTERM) {
        return;
    }
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    if tokio::time::timeout_at(deadline, leader.exited(child))
        .await
        .is_err()
    {
        process::signal_group(pgid, Signal::SIGKILL);
        leader.exited(child).await;
        return;
    }
    // The leader may be a wrapper (`sh -c`, `npm run`) that exits at once while the
    // real server is still shutting down: it gets the rest of the grace too.
    if !process::group_gone_by(pgid, deadline).await {
        process::signal_group(pgid, Signal::SIGKILL);
    }
}

fn describe_exit(st: std::process::ExitStatus) -> (Option<i32>, String) {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => (Some(c), format!("exited with code {c}")),
        (None, Some(sig)) => {
            let name = Signal::try_from(sig)
                .map(|s| s.as_str().to_string())
                .unwrap_or_else(|_| sig.to_string());
            (None, format!("killed by {name}"))
        }
        _ => (None, "exited".into()),
    }
}

/// What a runner (a local process's or a container's) does after its process exited
/// and the board says so: wait to be told ([`idle_until_told`]), or run it again
/// after a back-off ([`back_off`]).
pub(super) enum AfterExit {
    Idle,
    RetryIn(Duration),
}

/// Records an exit (`code`, `why`) of `name` on the board and decides by its restart
/// `policy` (never again when `may_retry` is false); counts `(failures, restarts)`:
/// a run longer than [`STABLE_RUN`] resets the back-off.
pub(super) fn settle_exit(
    shared: &Shared,
    name: &str,
    policy: RestartPolicy,
    may_retry: bool,
    (code, why): (Option<i32>, String),
    ran: Duration,
    (failures, restarts): (&mut u32, &mut u32),
) -> AfterExit {
    let success = code == Some(0);
    let again = may_retry
        && match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Never => false,
        };
    let lines = if success {
        Vec::new()
    } else {
        shared.logs.last_lines(name, FAILURE_LINES)
    };
    if !again {
        shared.update(name, |s| {
            s.state = if success {
                ServiceState::Completed
            } else {
                ServiceState::Failed
            };
            s.pid = None;
            s.exit_code = code;
            s.message = why;
            s.last_lines = lines;
        });
        return AfterExit::Idle;
    }
    *failures = if ran > STABLE_RUN { 0 } else { *failures + 1 };
    let delay = backoff(*failures);
    *restarts += 1;
    let restarts = *restarts;
    shared.update(name, |s| {
        s.state = ServiceState::Starting;
        s.pid = None;
        s.exit_code = code;
        s.restarts = restarts;
        s.crashes += 1;
        s.message = format!(
            "{why}; restarting in {:.1}s (restart {restarts})",
            delay.as_secs_f64()
        );
        s.last_lines = lines;
    });
    AfterExit::RetryIn(delay)
}

/// Waits out a restart back-off: true to run again (also at once when a restart is
/// asked for, which starts the back-off over), false when told to stop.
pub(super) async fn back_off(
    ctl: &mut mpsc::Receiver<Ctl>,
    shared: &Shared,
    name: &str,
    delay: Duration,
    failures: &mut u32,
) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        c = ctl.recv() => match c {
            Some(Ctl::Restart | Ctl::Rebuild) => {
                *failures = 0;
                true
            }
            Some(Ctl::Stop(reply)) => {
                shared.update(name, |s| {
                    s.state = ServiceState::Stopped;
                    s.message = "stopped".into();
                });
                let _ = reply.send(());
                false
            }
            None => false,
        }
    }
}

/// What [`settle_exit`] decided, carried out: wait to be told (a restart counts) or
/// back off before the next run. False: the runner ends.
pub(super) async fn after_exit(
    next: AfterExit,
    ctl: &mut mpsc::Receiver<Ctl>,
    shared: &Shared,
    name: &str,
    (failures, restarts): (&mut u32, &mut u32),
) -> bool {
    match next {
        AfterExit::Idle => {
            let again = idle_until_told(ctl, shared, name).await;
            if again {
                *restarts += 1;
            }
            again
        }
        AfterExit::RetryIn(delay) => back_off(ctl, shared, name, delay, failures).await,
    }
}

/// A final failure: the board says why (`message`, the last lines), then
/// [`idle_until_told`].
pub(super) async fn fail_until_told(
    ctl: &mut mpsc::Receiver<Ctl>,
    shared: &Shared,
    name: &str,
    message: String,
    last_lines: Vec<String>,
) -> bool {
    shared.update(name, |s| {
        s.state = ServiceState::Failed;
        s.pid = None;
        s.message = message;
        s.last_lines = last_lines;
    });
    idle_until_told(ctl, shared, name).await
}

/// After a final failure or completion: wait for a restart (true) or stop (false).
pub(super) async fn idle_until_told(
    ctl: &mut mpsc::Receiver<Ctl>,
    shared: &Shared,
    name: &str,
) -> bool {
    match ctl.recv().await {
        Some(Ctl::Restart | Ctl::Rebuild) => true,
        Some(Ctl::Stop(reply)) => {
            shared.update(name, |s| {
                s.state = ServiceState::Stopped;
                s.message = "stopped".into();
            });
            let _ = reply.send(());
            false
        }
        None => false,
    }
}

fn backoff(failures: u32) -> Duration {
    let ms = 100u64.saturating_mul(1u64 << failures.min(16));
    Duration::from_millis(ms).min(MAX_BACKOFF)
}

/// Whose listener a probe's port must be: the service's process group, or a process
/// carrying its marker.
struct Owner {
    pgid: i32,
    marker: String,
}

/// Resolves when the readiness probe first passes, on a port served by the service
/// itself; `Err` with the reason when it does not pass within `timeoutSeconds`.
async fn wait_ready(
    readiness: Option<Readiness>,
    ctx: ExecContext,
    follower: Option<crate::logs::Follower>,
    service: Arc<str>,
    logs: crate::logs::LogHub,
    owner: Owner,
) -> Result<(), String> {
    let Some(r) = readiness else { return Ok(()) };
    let deadline = tokio::time::Instant::now() + r.deadline();
    tokio::time::sleep(r.initial_delay).await;
    if let (Probe::Log { pattern: re }, Some(mut follower)) = (&r.probe, follower) {
        let seen = async {
            while let Some(item) = follower.recv().await {
                match item {
                    Received::Lines(lines) => {
                        if lines.iter().any(|l| {
                            l.service == service
                                && l.stream != Stream::System
                                && re.is_match(&l.text)
                        }) {
                            return Ok(());
                        }
                    }
                    // Lines gone before they were read (retention or no disk log):
                    // the line may have gone by.
                    Received::Missed(_) => {
                        if logs
                            .last_lines(&service, 1000)
                            .iter()
                            .any(|l| re.is_match(l))
                        {
                            return Ok(());
                        }
                    }
                }
            }
            Err("log stream closed".to_string())
        };
        return match tokio::time::timeout_at(deadline, seen).await {
            Ok(r) => r,
            Err(_) => Err(format!(
                "no output line matched /{re}/ within {}s",
                r.timeout.as_secs_f64()
            )),
        };
    }
    let mut backoff = Backoff::new(r.period);
    let mut last_err;
    loop {
        let limit = r.period.max(Duration::from_secs(1));
        match probe::check(&r.probe, &ctx, limit).await {
            Ok(()) => match super::portcheck::probe_port(&r.probe) {
                None => return Ok(()),
                Some(port) => {
                    match super::portcheck::served_by_service(
                        port,
                        owner.pgid,
                        owner.marker.clone(),
                    )
                    .await
                    {
                        Ok(()) => return Ok(()),
                        Err(e) => last_err = e,
                    }
                }
            },
            Err(e) => last_err = e.to_string(),
        }
        let next = tokio::time::Instant::now() + backoff.next_delay();
        if next >= deadline {
            return Err(format!(
                "readiness probe did not pass within {}s: {last_err}",
                r.timeout.as_secs_f64()
            ));
        }
        tokio::time::sleep_until(next).await;
    }
}

/// After ready: probes every `period`; `failureThreshold` consecutive failures
/// make the service unhealthy, one success makes it ready again.
struct HealthMonitor {
    readiness: Option<Readiness>,
    failures: u32,
    unhealthy: bool,
}

impl HealthMonitor {
    fn new(readiness: Option<&Readiness>) -> Self {
        let readiness = readiness
            .filter(|r| !matches!(r.probe, Probe::Log { .. }))
            .cloned();
        Self {
            readiness,
            failures: 0,
            unhealthy: false,
        }
    }

    fn enabled(&self) -> bool {
        self.readiness.is_some()
    }

    /// Waits for the next change of health: `Some(reason)` unhealthy, `None` healthy again.
    async fn next(&mut self, ctx: &ExecContext) -> Option<String> {
        let Some(r) = self.readiness.clone() else {
            return std::future::pending().await;
        };
        loop {
            tokio::time::sleep(r.period).await;
            match probe::check(&r.probe, ctx, r.period.max(Duration::from_secs(1))).await {
                Ok(()) => {
                    self.failures = 0;
                    if self.unhealthy {
                        self.unhealthy = false;
                        return None;
                    }
                }
                Err(e) => {
                    self.failures += 1;
                    if !self.unhealthy && self.failures >= r.failure_threshold {
                        self.unhealthy = true;
                        return Some(format!("probe failing {} times: {e}", self.failures));
                    }
                }
            }
        }
    }
}
