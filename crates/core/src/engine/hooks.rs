//! Lifecycle hooks at run time: `up` and `down` run them (up.rs, down.rs) as nodes of
//! the graph. Each hook point shows on the status board as `hook/<name>` (runtime
//! `hook`: running = `starting`, ok = `completed`, failed = `failed`, with its
//! duration), and its output goes to the log hub under the same name, so `devenv
//! status`, `up`'s progress and `devenv logs` show it like a service.
//!
//! A host hook runs like a local service: its own process group, told to the
//! guardian (so it dies with a killed daemon), a marker in its environment (so a
//! restarted daemon kills what is left), killed as a group on its timeout or when the
//! `up`/`down` it belongs to is dropped. An `exec` hook runs in a ready pod of its
//! kubernetes service; on a timeout devenv closes the exec stream (Kubernetes has no
//! way to signal the remote process). In a container service's container it runs
//! through the engine's exec, and on a timeout it is hung up, then killed.
//!
//! Crash safety of `post*` hooks (`postUp`, `postReady`): a run is recorded in the
//! environment's wanted record (state, flushed) *before* the hook starts, under the
//! id of the `up` it belongs to. Recovery after a crash repeats that same `up` (same
//! id) and skips the hooks recorded: at most once per transition, so a hook the crash
//! interrupted is not run again either (it may have done its work; running a
//! migration's follow-up twice is the worse failure). A new `devenv up` is a new
//! transition with a new id. `pre*` hooks prepare what recovery starts again, so they
//! run again. `down` forgets the wanted record before it starts and nothing repeats
//! a `down`: the `postDown` of a down the daemon's death interrupted does not run;
//! the next `devenv down` runs `preDown` and `postDown` again.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use tokio::task::JoinSet;

pub use super::board::hook_name;
pub use super::board::{is_hook, HOOK_RUNTIME};
pub use super::error::HookFailed;
use super::runtime::LiveEnv;
use super::supervisor::{HookPoint, RunHooks, ServiceHooks};
use crate::config::{Command, Environment, Hook, HookRun, OnError, RuntimeKind, Service};
use crate::logs::{self, Stream};
use crate::process;
use crate::status::ServiceState;

/// Lines of a failed hook's output kept in its status and error.
const FAILURE_LINES: usize = 10;
/// Output still in the pipes after the hook exited, waited for at most this long
/// (something it started in the background may hold them open).
const DRAIN_LIMIT: Duration = Duration::from_secs(1);

/// What runs one hook point: whose hooks, where, with which variables.
pub(super) struct Site<'a> {
    pub env: &'a Environment,
    pub vars: &'a BTreeMap<String, String>,
    /// The service of a service hook.
    pub service: Option<&'a Service>,
    /// `preUp`, `postReady`, ...
    pub point: &'a str,
}

impl Site<'_> {
    fn short_name(&self) -> String {
        match self.service {
            Some(s) => format!("{}.{}", s.name, self.point),
            None => self.point.to_string(),
        }
    }

    fn workdir(&self) -> PathBuf {
        match self.service {
            Some(s) => s.workdir.clone(),
            None => self.env.project_dir.clone(),
        }
    }
}

/// A service's hooks as its runner runs them (supervisor.rs's [`ServiceHooks`]):
/// over [`LiveEnv::run_hooks`], holding the environment weakly (it holds the runner).
struct RunnerHooks {
    live: Weak<LiveEnv>,
    env: Arc<Environment>,
    svc: Service,
    vars: Arc<BTreeMap<String, String>>,
}

impl ServiceHooks for RunnerHooks {
    fn run(self: Arc<Self>, point: HookPoint) -> BoxFuture<'static, Result<(), HookFailed>> {
        Box::pin(async move {
            let Some(live) = self.live.upgrade() else {
                return Ok(());
            };
            let (name, hooks) = match point {
                HookPoint::PreStart => ("preStart", &self.svc.hooks.pre_start),
                HookPoint::PostReady => ("postReady", &self.svc.hooks.post_ready),
                HookPoint::PreStop => ("preStop", &self.svc.hooks.pre_stop),
            };
            let site = Site {
                env: &self.env,
                vars: &self.vars,
                service: Some(&self.svc),
                point: name,
            };
            live.run_hooks(site, hooks).await
        })
    }
}

impl LiveEnv {
    /// The hooks `svc`'s runner runs itself: those of its restarts, and of its first
    /// run when `on_first_run` (no `up` runs them). Nothing configured: none.
    pub(super) fn runner_hooks(
        self: &Arc<Self>,
        env: &Arc<Environment>,
        svc: &Service,
        vars: &Arc<BTreeMap<String, String>>,
        on_first_run: bool,
    ) -> RunHooks {
        let h = &svc.hooks;
        if h.pre_start.is_empty() && h.post_ready.is_empty() && h.pre_stop.is_empty() {
            return RunHooks::default();
        }
        RunHooks {
            hooks: Some(Arc::new(RunnerHooks {
                live: Arc::downgrade(self),
                env: env.clone(),
                svc: svc.clone(),
                vars: vars.clone(),
            })),
            on_first_run,
        }
    }
}

/// How one run of a hook ended.
enum Ran {
    Exited(Option<i32>),
    Signalled(i32),
    TimedOut,
    CannotStart(String),
}

impl LiveEnv {
    /// Runs the hooks of one point, in order. A failing hook with `onError: fail`
    /// stops there and is the error; with `continue` the rest run, with a warning in
    /// the log. Nothing configured: nothing shows.
    /// The environment's hooks at `point` (`preUp`, `postUp`) of an `up` that
    /// `cancel` ends; the error is the failure's summary.
    pub(super) async fn env_hooks(
        &self,
        env: &Environment,
        vars: &BTreeMap<String, String>,
        point: &str,
        hooks: &[Hook],
        cancel: &tokio_util::sync::CancellationToken,
    ) -> Result<(), String> {
        let site = Site {
            env,
            vars,
            service: None,
            point,
        };
        tokio::select! {
            r = self.run_hooks(site, hooks) => r.map_err(|f| f.summary()),
            _ = cancel.cancelled() => Err(format!("cancelled while the {point} hook ran")),
        }
    }

    pub(super) async fn run_hooks(&self, site: Site<'_>, hooks: &[Hook]) -> Result<(), HookFailed> {
        if hooks.is_empty() {
            return Ok(());
        }
        let short = site.short_name();
        let name = hook_name(site.service.map(|s| s.name.as_str()), site.point);
        let log: Arc<str> = Arc::from(name.as_str());
        self.shared.ensure_hook(&name);
        let started = Instant::now();
        let mut warnings = Vec::new();
        for (i, hook) in hooks.iter().enumerate() {
            let shown = match &hook.run {
                HookRun::Host(c) => c.display(),
                HookRun::Exec(c) => format!("exec {}", c.display()),
            };
            let counter = if hooks.len() > 1 {
                format!(" ({}/{})", i + 1, hooks.len())
            } else {
                String::new()
            };
            self.shared.update(&name, |s| {
                s.state = ServiceState::Starting;
                s.exit_code = None;
                s.last_lines.clear();
                s.message = format!("running `{shown}`{counter}");
            });
            self.shared
                .logs
                .push(&log, Stream::System, &format!("running `{shown}`{counter}"));
            // This run's output, for a failure report (the hub's ring also holds
            // earlier runs' lines).
            let tail = Tail::default();
            let one = Instant::now();
            let ran = match &hook.run {
                HookRun::Host(cmd) => {
                    self.run_host(&site, &name, (&log, &tail), cmd, hook.timeout)
                        .await
                }
                HookRun::Exec(cmd) => self.run_exec(&site, (&log, &tail), cmd, hook.timeout).await,
            };
            let took = one.elapsed().as_secs_f64();
            let (code, reason) = match ran {
                Ran::Exited(Some(0)) => {
                    self.shared.logs.push(
                        &log,
                        Stream::System,
                        &format!("`{shown}` exited with code 0 in {took:.2}s"),
                    );
                    continue;
                }
                Ran::Exited(Some(code)) => (
                    Some(code),
                    format!("`{shown}` exited with code {code} after {took:.2}s"),
                ),
                Ran::Exited(None) => (None, format!("`{shown}` failed after {took:.2}s")),
                Ran::Signalled(sig) => (None, format!("`{shown}` was killed by signal {sig}")),
                Ran::TimedOut => (
                    None,
                    format!(
                        "`{shown}` did not finish within {}s (timeoutSeconds): killed",
                        hook.timeout.as_secs_f64()
                    ),
                ),
                Ran::CannotStart(why) => (None, why),
            };
            let last_lines = tail.lines();
            match hook.on_error {
                OnError::Continue => {
                    let warning = format!("{reason} (onError: continue, going on)");
                    self.shared.logs.push(&log, Stream::System, &warning);
                    warnings.push(warning);
                }
                OnError::Fail => {
                    self.shared.logs.push(&log, Stream::System, &reason);
                    self.shared.update(&name, |s| {
                        s.state = ServiceState::Failed;
                        s.exit_code = code;
                        s.message = reason.clone();
                        s.last_lines = last_lines.clone();
                    });
                    return Err(HookFailed {
                        name: short,
                        reason,
                        exit_code: code,
                        last_lines,
                    });
                }
            }
        }
        let took = started.elapsed().as_secs_f64();
        self.shared.update(&name, |s| {
            s.exit_code = None;
            if warnings.is_empty() {
                s.state = ServiceState::Completed;
                s.message = format!("ok in {took:.2}s");
            } else {
                s.state = ServiceState::Failed;
                s.message = warnings.join("; ");
            }
        });
        Ok(())
    }

    async fn run_host(
        &self,
        site: &Site<'_>,
        name: &str,
        (log, tail): (&Arc<str>, &Tail),
        command: &Command,
        timeout: Duration,
    ) -> Ran {
        let mut env = self.hook_env(site, name);
        // A local service's hooks see its volumes as its process does
        // (`DEVENV_VOLUME_<NAME>`), created if this is the first thing to use them
        // (a `preStart` seeding a volume runs before the supervisor prepares it).
        if let Some(svc) = site.service.filter(|s| s.runtime == RuntimeKind::Local) {
            let volumes = crate::volumes::mounted(site.env, svc);
            if !volumes.is_empty() {
                let env_dir = self.shared.state.env_dir(&self.shared.id);
                let prepared = tokio::task::spawn_blocking(move || {
                    crate::volumes::prepare(&volumes, &env_dir)
                })
                .await;
                match prepared {
                    Ok(Ok((dirs, _notes))) => env.extend(dirs),
                    Ok(Err(e)) => return Ran::CannotStart(e.to_string()),
                    Err(e) => {
                        return Ran::CannotStart(format!("preparing the volumes failed: {e}"))
                    }
                }
            }
        }
        let workdir = site.workdir();
        let mut cmd = crate::probe::build_command(command, env.get("PATH").map(String::as_str));
        cmd.current_dir(&workdir)
            .env_clear()
            .envs(&env)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // Dropped with the `up`/`down` it belongs to: the group guard below kills
            // the rest of the group, this the leader.
            .kill_on_drop(true);
        let mut child = match self.shared.spawner.spawn(cmd).await {
            Ok(c) => c,
            Err(e) if !workdir.is_dir() => {
                let _ = e;
                return Ran::CannotStart(format!(
                    "cannot run the hook: its directory {} does not exist",
                    workdir.display()
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ran::CannotStart(format!(
                    "cannot run `{}`: not found on PATH; install it or fix the hook",
                    command.display()
                ))
            }
            Err(e) => return Ran::CannotStart(format!("cannot run `{}`: {e}", command.display())),
        };
        let leader = process::Leader::of(&child);
        let pid = leader.pid();
        self.shared.update(name, |s| s.pid = Some(pid as u32));
        // Dropped before `child` is reaped, and on cancellation: kills the group
        // while the unreaped leader still holds its id.
        let mut group = Some(process::GroupGuard::new(
            pid,
            Some(self.shared.guardian.clone()),
        ));
        let mut pipes = JoinSet::new();
        if let Some(out) = child.stdout.take() {
            pipes.spawn(logs::copy_pipe(
                self.shared.logs.clone(),
                tail.tee(out),
                log.clone(),
                Stream::Stdout,
            ));
        }
        if let Some(err) = child.stderr.take() {
            pipes.spawn(logs::copy_pipe(
                self.shared.logs.clone(),
                tail.tee(err),
                log.clone(),
                Stream::Stderr,
            ));
        }
        let exited = tokio::time::timeout(timeout, leader.exited(&mut child)).await;
        drop(group.take());
        let status = child.wait().await;
        let _ = tokio::time::timeout(DRAIN_LIMIT, async {
            while pipes.join_next().await.is_some() {}
        })
        .await;
        pipes.abort_all();
        if exited.is_err() {
            return Ran::TimedOut;
        }
        match status {
            Ok(st) => match (
                st.code(),
                std::os::unix::process::ExitStatusExt::signal(&st),
            ) {
                (Some(code), _) => Ran::Exited(Some(code)),
                (None, Some(sig)) => Ran::Signalled(sig),
                _ => Ran::Exited(None),
            },
            Err(e) => Ran::CannotStart(format!("waiting for the hook failed: {e}")),
        }
    }

    async fn run_exec(
        &self,
        site: &Site<'_>,
        (log, tail): (&Arc<str>, &Tail),
        command: &Command,
        timeout: Duration,
    ) -> Ran {
        let Some(svc) = site.service else {
            return Ran::CannotStart("an `exec` hook needs a kubernetes service".into());
        };
        let argv = match command {
            Command::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
            Command::Exec(argv) => argv.clone(),
        };
        if svc.runtime == RuntimeKind::Container {
            return self
                .run_container_exec(site, svc, (log, tail), argv, timeout)
                .await;
        }
        let conn = match self.kube_env(site.env, site.vars).await {
            Ok(c) => c,
            Err(e) => return Ran::CannotStart(e.to_string()),
        };
        let pods = self
            .shared
            .pod_sets(&site.env.name, &svc.name, &conn.namespace);
        let run = async {
            let mut exec = crate::kube::podexec::PodExec::start(&conn, pods, argv)
                .await
                .map_err(|e| e.to_string())?;
            self.shared.logs.push(
                log,
                Stream::System,
                &format!("in pod {} (container {})", exec.pod, exec.container),
            );
            let mut pipes = JoinSet::new();
            if let Some(out) = exec.stdout() {
                pipes.spawn(logs::copy_pipe(
                    self.shared.logs.clone(),
                    tail.tee(out),
                    log.clone(),
                    Stream::Stdout,
                ));
            }
            if let Some(err) = exec.stderr() {
                pipes.spawn(logs::copy_pipe(
                    self.shared.logs.clone(),
                    tail.tee(err),
                    log.clone(),
                    Stream::Stderr,
                ));
            }
            let code = exec.exit_code().await;
            while pipes.join_next().await.is_some() {}
            Ok::<_, String>(code)
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(Ok(code)) => Ran::Exited(code),
            Ok(Err(why)) => Ran::CannotStart(why),
            Err(_) => Ran::TimedOut,
        }
    }

    /// An `exec` hook in a container service's container.
    async fn run_container_exec(
        &self,
        site: &Site<'_>,
        svc: &Service,
        (log, tail): (&Arc<str>, &Tail),
        argv: Vec<String>,
        timeout: Duration,
    ) -> Ran {
        use crate::docker::{self, exec as dexec};
        let docker = match docker::connect(site.vars).await {
            Ok(d) => d,
            Err(e) => return Ran::CannotStart(e.to_string()),
        };
        let container = docker::container_name(&self.shared.id, &self.shared.name, &svc.name);
        let attached = match dexec::attach(&docker, &container, argv, false, false, None).await {
            Ok(a) => a,
            Err(e) => return Ran::CannotStart(e.to_string()),
        };
        let id = attached.id.clone();
        let (out, err, feed) = dexec::demux(attached.output);
        let run = async {
            let mut pipes = JoinSet::new();
            pipes.spawn(logs::copy_pipe(
                self.shared.logs.clone(),
                tail.tee(out),
                log.clone(),
                Stream::Stdout,
            ));
            pipes.spawn(logs::copy_pipe(
                self.shared.logs.clone(),
                tail.tee(err),
                log.clone(),
                Stream::Stderr,
            ));
            feed.await;
            while pipes.join_next().await.is_some() {}
        };
        if tokio::time::timeout(timeout, run).await.is_err() {
            let _ = dexec::end(&docker, &container, &id, HOOK_KILL_GRACE).await;
            return Ran::TimedOut;
        }
        match dexec::exit_code(&docker, &id, EXIT_REPORT).await {
            Ok(code) => Ran::Exited(code.map(|c| i32::try_from(c).unwrap_or(1))),
            Err(e) => Ran::CannotStart(e.to_string()),
        }
    }

    /// A host hook's environment: the client's variables (and for a service hook the
    /// service's secrets and `env`, as its process has them), then devenv's: `DEVENV_ENV`, `DEVENV_HOOK`, `DEVENV_SERVICE`
    /// with `DEVENV_PORT`/`DEVENV_PORTS` (service hooks), `DEVENV_PORT_<SERVICE>` for
    /// every service with a port, `DEVENV_NAMESPACE` and `KUBECONFIG` when the
    /// environment has a cluster, and the marker a restarted daemon finds it by.
    fn hook_env(&self, site: &Site<'_>, name: &str) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = site
            .vars
            .iter()
            .filter(|(k, _)| k.as_str() != process::MARKER_VAR)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Some(svc) = site.service {
            // Its secrets, then its own env over them: as its process has them.
            env.extend(site.env.secret_vars(svc));
            env.extend(svc.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        env.insert("DEVENV_ENV".into(), site.env.name.clone());
        env.insert("DEVENV_ENVIRONMENT".into(), site.env.name.clone());
        env.insert("DEVENV_HOOK".into(), site.point.to_string());
        for s in &site.env.services {
            if let Some(port) = s.ports.first() {
                env.insert(port_var(&s.name), port.to_string());
            }
        }
        if let Some(svc) = site.service {
            env.insert("DEVENV_SERVICE".into(), svc.name.clone());
            if let Some(port) = svc.ports.first() {
                env.insert("DEVENV_PORT".into(), port.to_string());
            }
            let ports: Vec<String> = svc.ports.iter().map(u16::to_string).collect();
            env.insert("DEVENV_PORTS".into(), ports.join(" "));
        }
        let has_kube = site
            .env
            .services
            .iter()
            .any(|s| s.runtime == RuntimeKind::Kubernetes);
        if site.env.cluster.is_some() || has_kube {
            let namespace = site.env.cluster.as_ref().map_or_else(
                || format!("devenv-{}", site.env.name),
                |c| c.namespace.clone(),
            );
            env.insert("DEVENV_NAMESPACE".into(), namespace);
            let paths = crate::kube::kubeconfig_paths(site.vars);
            if let Ok(joined) = std::env::join_paths(paths) {
                env.insert("KUBECONFIG".into(), joined.to_string_lossy().into_owned());
            }
        }
        env.insert(
            process::MARKER_VAR.into(),
            self.shared.marker(&name.replace('/', ".")),
        );
        env
    }
}

/// A timed-out `exec` hook in a container: between its hang-up and its kill.
const HOOK_KILL_GRACE: Duration = Duration::from_secs(2);
/// After a container exec's output ended, how long the engine may take to report its
/// exit code.
const EXIT_REPORT: Duration = Duration::from_secs(5);

/// The last bytes a hook wrote (both streams, as they came), bounded: its failure
/// report's last lines.
#[derive(Clone, Default)]
pub(super) struct Tail(Arc<std::sync::Mutex<std::collections::VecDeque<u8>>>);

/// Bytes a [`Tail`] keeps: enough for [`FAILURE_LINES`] ordinary lines.
const TAIL_BYTES: usize = 4096;

impl Tail {
    fn push(&self, bytes: &[u8]) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let bytes = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
        let over = (t.len() + bytes.len()).saturating_sub(TAIL_BYTES);
        t.drain(..over);
        t.extend(bytes);
    }

    /// The last [`FAILURE_LINES`] complete or partial lines (the first, possibly cut,
    /// dropped when the tail is full).
    pub(super) fn lines(&self) -> Vec<String> {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let bytes: Vec<u8> = t.iter().copied().collect();
        let text = String::from_utf8_lossy(&bytes);
        let mut lines: Vec<&str> = text.lines().collect();
        if bytes.len() >= TAIL_BYTES && !lines.is_empty() {
            lines.remove(0);
        }
        lines[lines.len().saturating_sub(FAILURE_LINES)..]
            .iter()
            .map(|l| l.to_string())
            .collect()
    }

    /// `pipe`, with what is read from it also kept here.
    pub(super) fn tee<R: tokio::io::AsyncRead + Unpin>(&self, pipe: R) -> Teed<R> {
        Teed {
            inner: pipe,
            tail: self.clone(),
        }
    }
}

pub(super) struct Teed<R> {
    inner: R,
    tail: Tail,
}

impl<R: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Teed<R> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        if let std::task::Poll::Ready(Ok(())) = &r {
            let new = &buf.filled()[before..];
            self.tail.push(new);
        }
        r
    }
}

/// `DEVENV_PORT_<SERVICE>`: the service's name upper-cased, `-` as `_`.
fn port_var(service: &str) -> String {
    format!(
        "DEVENV_PORT_{}",
        service.to_ascii_uppercase().replace('-', "_")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_port_variables() {
        assert_eq!(hook_name(None, "preUp"), "hook/preUp");
        assert_eq!(hook_name(Some("api"), "postReady"), "hook/api.postReady");
        assert_eq!(port_var("web-ui"), "DEVENV_PORT_WEB_UI");
    }

    #[test]
    fn the_tail_keeps_the_last_lines_bounded() {
        let tail = Tail::default();
        tail.push(b"one\ntwo\nthr");
        tail.push(b"ee\n");
        assert_eq!(tail.lines(), ["one", "two", "three"]);
        for i in 0..2000 {
            tail.push(format!("line {i}\n").as_bytes());
        }
        let lines = tail.lines();
        assert_eq!(lines.len(), FAILURE_LINES);
        assert_eq!(lines.last().map(String::as_str), Some("line 1999"));
        assert!(tail.0.lock().unwrap().len() <= TAIL_BYTES);
    }

    #[test]
    fn a_failure_says_which_hook_why_and_its_last_lines() {
        let f = HookFailed {
            name: "preUp".into(),
            reason: "`./migrate.sh` exited with code 3 after 0.10s".into(),
            exit_code: Some(3),
            last_lines: vec!["no database".into()],
        };
        assert_eq!(
            f.to_string(),
            "hook preUp failed: `./migrate.sh` exited with code 3 after 0.10s; last output:\n  no database"
        );
    }
}
