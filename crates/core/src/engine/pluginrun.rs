//! A service-type plugin's node (`type: <plugin>`): runs `devenv-service-<plugin>` and
//! speaks protocol version [`PROTOCOL`] with it over stdin/stdout, one JSON object per
//! line (docs/plugins.md): hello, validate, up (progress, then ready or failed),
//! status and log messages while it runs, down. Its stderr goes to the service's log.
//!
//! The plugin is untrusted input: each line is bounded ([`MAX_LINE`]), each step has a
//! deadline, and a plugin that exits, hangs or writes something that is not the
//! protocol fails its own service with a message saying what happened; the daemon
//! only kills its process group.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::mpsc;

use super::board::Shared;
use super::supervisor::{Ctl, Supervisor};
use crate::config::{PluginService, Service};
use crate::logs::{self, Stream};
use crate::process;
use crate::status::ServiceState;

/// The protocol version devenv speaks.
pub const PROTOCOL: u64 = 1;
/// The longest line either side may write (bytes, without the newline).
pub const MAX_LINE: usize = 64 * 1024;
/// How long `hello`, `validate` and `down` may take.
const STEP: Duration = Duration::from_secs(10);

/// Why a plugin's service failed; the message names the plugin.
#[derive(Debug, thiserror::Error)]
enum PluginError {
    #[error("no plugin `{executable}` in .devenv/plugins, ~/.devenv/plugins or on PATH; install the plugin or fix `type`")]
    Missing { executable: String },
    #[error("cannot run plugin {}: {source}", .path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin `{kind}` exited during {during}{}", exit_suffix(.code))]
    Exited {
        kind: String,
        during: &'static str,
        code: Option<i32>,
    },
    #[error("plugin `{kind}` broke the protocol during {during}: {what}")]
    Garbage {
        kind: String,
        during: &'static str,
        what: String,
    },
    #[error("plugin `{kind}` did not answer {during} within {}s", .seconds)]
    Silent {
        kind: String,
        during: &'static str,
        seconds: u64,
    },
    #[error("plugin `{kind}` speaks protocol {theirs}; this devenv speaks {PROTOCOL}")]
    Version { kind: String, theirs: u64 },
    #[error("plugin `{kind}` refused the settings: {errors}")]
    Invalid { kind: String, errors: String },
    #[error("plugin `{kind}`: {message}")]
    Failed { kind: String, message: String },
}

fn exit_suffix(code: &Option<i32>) -> String {
    match code {
        Some(c) => format!(" (exit code {c})"),
        None => " (killed by a signal)".into(),
    }
}

/// One line from the plugin, read.
enum Line {
    Msg(Value),
    /// Not a JSON object, or too long: what it was.
    Bad(String),
    Eof,
}

/// Reads lines of at most [`MAX_LINE`] bytes; the rest of a longer one is not read.
async fn read_line(out: &mut BufReader<ChildStdout>) -> Line {
    let mut buf = Vec::new();
    let mut limited = (&mut *out).take(MAX_LINE as u64 + 1);
    match limited.read_until(b'\n', &mut buf).await {
        Ok(0) => Line::Eof,
        Ok(_) if !buf.ends_with(b"\n") && buf.len() > MAX_LINE => {
            Line::Bad(format!("a line longer than {} KiB", MAX_LINE / 1024))
        }
        Ok(_) => match serde_json::from_slice::<Value>(&buf) {
            Ok(v @ Value::Object(_)) if v.get("type").and_then(Value::as_str).is_some() => {
                Line::Msg(v)
            }
            _ => {
                let shown: String = String::from_utf8_lossy(&buf).chars().take(80).collect();
                Line::Bad(format!(
                    "`{}` is not a protocol message (a JSON object with a `type`)",
                    shown.trim_end()
                ))
            }
        },
        Err(e) => Line::Bad(format!("cannot read its output: {e}")),
    }
}

/// The conversation with one running plugin process.
struct Conn {
    kind: String,
    name: Arc<str>,
    shared: Arc<Shared>,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    _group: process::GroupGuard,
}

impl Conn {
    async fn send(&mut self, msg: Value, during: &'static str) -> Result<(), PluginError> {
        let mut line = msg.to_string();
        line.push('\n');
        if self.stdin.write_all(line.as_bytes()).await.is_err() {
            return Err(self.exited(during).await);
        }
        let _ = self.stdin.flush().await;
        Ok(())
    }

    async fn exited(&mut self, during: &'static str) -> PluginError {
        let code = tokio::time::timeout(Duration::from_secs(2), self.child.wait())
            .await
            .ok()
            .and_then(Result::ok)
            .and_then(|s| s.code());
        PluginError::Exited {
            kind: self.kind.clone(),
            during,
            code,
        }
    }

    /// The next message; log lines on the way go to the service's log.
    async fn next(&mut self, during: &'static str) -> Result<Value, PluginError> {
        loop {
            match read_line(&mut self.stdout).await {
                Line::Eof => return Err(self.exited(during).await),
                Line::Bad(what) => {
                    return Err(PluginError::Garbage {
                        kind: self.kind.clone(),
                        during,
                        what,
                    })
                }
                Line::Msg(m) if m["type"] == "log" => {
                    let stream = if m["stream"] == "stderr" {
                        Stream::Stderr
                    } else {
                        Stream::Stdout
                    };
                    let text = m["line"].as_str().unwrap_or_default();
                    self.shared.logs.push(&self.name, stream, text);
                }
                Line::Msg(m) => return Ok(m),
            }
        }
    }

    async fn next_within(
        &mut self,
        during: &'static str,
        limit: Duration,
    ) -> Result<Value, PluginError> {
        match tokio::time::timeout(limit, self.next(during)).await {
            Ok(r) => r,
            Err(_) => Err(PluginError::Silent {
                kind: self.kind.clone(),
                during,
                seconds: limit.as_secs(),
            }),
        }
    }

    fn unexpected(&self, during: &'static str, m: &Value) -> PluginError {
        PluginError::Garbage {
            kind: self.kind.clone(),
            during,
            what: format!("unexpected message `{}`", m["type"].as_str().unwrap_or("?")),
        }
    }
}

struct Run {
    shared: Arc<Shared>,
    svc: Service,
    plugin: PluginService,
    env: BTreeMap<String, String>,
    /// The client's variables (PATH, HOME decide where plugins are found).
    vars: Arc<BTreeMap<String, String>>,
    /// Only hello and validate (`devenv validate`): nothing on the board or in the
    /// service's log.
    check_only: bool,
}

impl Run {
    fn find(&self) -> Result<PathBuf, PluginError> {
        let exe = self.plugin.executable();
        let mut dirs: Vec<PathBuf> = Vec::new();
        if let Some(root) = self
            .svc
            .workdir
            .ancestors()
            .find(|d| d.join(".devenv").is_dir())
        {
            dirs.push(root.join(".devenv").join("plugins"));
        }
        if let Some(home) = self.vars.get("HOME").filter(|h| !h.is_empty()) {
            dirs.push(PathBuf::from(home).join(".devenv").join("plugins"));
        }
        if let Some(path) = self.vars.get("PATH") {
            dirs.extend(std::env::split_paths(path));
        }
        process::find_program(&[exe.as_str()], dirs).ok_or(PluginError::Missing { executable: exe })
    }

    fn status(&self, state: ServiceState, message: String) {
        self.shared.update(&self.svc.name, |s| {
            s.state = state;
            s.message = message;
        });
    }

    async fn open(&self) -> Result<Conn, PluginError> {
        let path = self.find()?;
        let mut cmd = tokio::process::Command::new(&path);
        cmd.current_dir(&self.svc.workdir)
            .env_clear()
            .envs(self.vars.iter())
            .env("DEVENV_SERVICE", &self.svc.name)
            .env("DEVENV_PROTOCOL", PROTOCOL.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(if self.check_only {
                std::process::Stdio::null()
            } else {
                std::process::Stdio::piped()
            })
            .kill_on_drop(true);
        let mut child =
            self.shared
                .spawner
                .spawn(cmd)
                .await
                .map_err(|source| PluginError::Spawn {
                    path: path.clone(),
                    source,
                })?;
        let group = process::GroupGuard::new(
            process::Leader::of(&child).pid(),
            Some(self.shared.guardian.clone()),
        );
        if !self.check_only {
            self.shared.update(&self.svc.name, |s| s.pid = child.id());
        }
        let name: Arc<str> = Arc::from(self.svc.name.as_str());
        if let Some(err) = child.stderr.take() {
            // Ends with the process (its stderr closes); owned by the runtime's
            // tasks only as long as the plugin lives.
            tokio::spawn(logs::copy_pipe(
                self.shared.logs.clone(),
                err,
                name.clone(),
                Stream::Stderr,
            ));
        }
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(PluginError::Spawn {
                path,
                source: std::io::Error::other("no pipes"),
            });
        };
        Ok(Conn {
            kind: self.plugin.kind.clone(),
            name,
            shared: self.shared.clone(),
            child,
            stdin,
            stdout: BufReader::new(stdout),
            _group: group,
        })
    }

    /// hello, validate, up: the connection once the plugin said `ready`.
    async fn start(&self) -> Result<Conn, PluginError> {
        self.status(
            ServiceState::Starting,
            format!("starting plugin `{}`", self.plugin.kind),
        );
        let mut c = self.open().await?;
        self.handshake(&mut c).await?;
        let svc = self.svc.name.clone();
        let state_dir = self
            .shared
            .state
            .env_dir(&self.shared.id)
            .join("plugins")
            .join(&self.svc.name);
        let _ = tokio::fs::create_dir_all(&state_dir).await;
        c.send(
            json!({
                "type": "up",
                "service": svc,
                "environment": self.shared.name,
                "settings": self.plugin.settings,
                "env": self.env,
                "stateDir": state_dir,
            }),
            "up",
        )
        .await?;
        let limit = self.svc.start_deadline();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let m = c.next_within("up", left).await?;
            let message = m["message"].as_str().unwrap_or_default().to_owned();
            match m["type"].as_str() {
                Some("progress") => self.status(ServiceState::Starting, message),
                Some("ready") => {
                    self.status(ServiceState::Ready, message);
                    return Ok(c);
                }
                Some("failed") => {
                    return Err(PluginError::Failed {
                        kind: c.kind.clone(),
                        message,
                    })
                }
                _ => return Err(c.unexpected("up", &m)),
            }
        }
    }

    /// hello and validate.
    async fn handshake(&self, c: &mut Conn) -> Result<(), PluginError> {
        c.send(json!({"type": "hello", "protocol": PROTOCOL}), "hello")
            .await?;
        let hello = c.next_within("hello", STEP).await?;
        if hello["type"] != "hello" {
            return Err(c.unexpected("hello", &hello));
        }
        let theirs = hello["protocol"].as_u64().unwrap_or(0);
        if theirs != PROTOCOL {
            return Err(PluginError::Version {
                kind: c.kind.clone(),
                theirs,
            });
        }
        c.send(
            json!({"type": "validate", "service": self.svc.name, "settings": self.plugin.settings}),
            "validate",
        )
        .await?;
        let v = c.next_within("validate", STEP).await?;
        match v["type"].as_str() {
            Some("valid") => {}
            Some("invalid") => {
                let errors = v["errors"]
                    .as_array()
                    .map(|e| {
                        e.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join("; ")
                    })
                    .unwrap_or_default();
                return Err(PluginError::Invalid {
                    kind: c.kind.clone(),
                    errors,
                });
            }
            _ => return Err(c.unexpected("validate", &v)),
        }
        Ok(())
    }

    /// While it runs: status messages move the board; anything else ends it.
    async fn follow(&self, c: &mut Conn) -> PluginError {
        loop {
            let m = match c.next("its run").await {
                Ok(m) => m,
                Err(e) => return e,
            };
            let message = m["message"].as_str().unwrap_or_default().to_owned();
            match (m["type"].as_str(), m["state"].as_str()) {
                (Some("status"), Some("ready")) => self.status(ServiceState::Ready, message),
                (Some("status"), Some("unhealthy")) => {
                    self.status(ServiceState::Unhealthy, message)
                }
                (Some("failed"), _) => {
                    return PluginError::Failed {
                        kind: c.kind.clone(),
                        message,
                    }
                }
                _ => return c.unexpected("its run", &m),
            }
        }
    }

    /// `down`, then the process ends (killed after [`STEP`]).
    async fn stop(&self, mut c: Conn) {
        self.status(ServiceState::Stopping, "stopping".into());
        if c.send(json!({"type": "down"}), "down").await.is_ok() {
            let _ = tokio::time::timeout(STEP, async {
                while let Ok(m) = c.next("down").await {
                    if m["type"] == "stopped" {
                        break;
                    }
                }
            })
            .await;
        }
        drop(c.stdin);
        let _ = tokio::time::timeout(STEP, c.child.wait()).await;
        // The group guard kills whatever is left.
    }

    fn failed(&self, e: &PluginError) {
        let msg = e.to_string();
        self.shared
            .logs
            .push(&Arc::from(self.svc.name.as_str()), Stream::System, &msg);
        let lines = self.shared.logs.last_lines(&self.svc.name, 10);
        self.shared.update(&self.svc.name, |s| {
            s.state = ServiceState::Failed;
            s.message = msg;
            s.pid = None;
            s.last_lines = lines;
        });
    }

    fn stopped(&self) {
        self.shared.update(&self.svc.name, |s| {
            s.state = ServiceState::Stopped;
            s.message = "stopped".into();
            s.pid = None;
        });
    }
}

/// Starts the node of a plugin service (`env`: its `env` and secrets).
pub(super) fn start(
    shared: Arc<Shared>,
    svc: &Service,
    vars: Arc<BTreeMap<String, String>>,
    env: BTreeMap<String, String>,
) -> Option<Supervisor> {
    let plugin = svc.plugin.clone()?;
    let (tx, mut rx) = mpsc::channel::<Ctl>(8);
    let run = Run {
        shared,
        svc: svc.clone(),
        plugin,
        env,
        vars,
        check_only: false,
    };
    let task = tokio::spawn(async move {
        loop {
            let started = tokio::select! {
                r = run.start() => r,
                ctl = rx.recv() => match ctl {
                    Some(Ctl::Restart | Ctl::Rebuild) => continue,
                    Some(Ctl::Stop(done)) => {
                        run.stopped();
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
            };
            let mut conn = match started {
                Ok(c) => c,
                Err(e) => {
                    run.failed(&e);
                    // Failed until told: `up` retries it, `down` stops it.
                    match rx.recv().await {
                        Some(Ctl::Restart | Ctl::Rebuild) => continue,
                        Some(Ctl::Stop(done)) => {
                            run.stopped();
                            let _ = done.send(());
                            return;
                        }
                        None => return,
                    }
                }
            };
            let outcome = tokio::select! {
                e = run.follow(&mut conn) => Err(e),
                ctl = rx.recv() => Ok(ctl),
            };
            let ctl = match outcome {
                Ok(ctl) => {
                    run.stop(conn).await;
                    ctl
                }
                Err(e) => {
                    run.failed(&e);
                    drop(conn);
                    rx.recv().await
                }
            };
            match ctl {
                Some(Ctl::Restart | Ctl::Rebuild) => continue,
                Some(Ctl::Stop(done)) => {
                    run.stopped();
                    let _ = done.send(());
                    return;
                }
                None => return,
            }
        }
    });
    Some(Supervisor {
        ctl: tx,
        task,
        service: svc.clone(),
        dev: false,
        secrets_revision: String::new(),
        tf_values: String::new(),
        context: Default::default(),
    })
}

/// `devenv validate` of a plugin service: the plugin's own `validate` of its
/// `settings` (hello and validate, then its stdin closes). `Err`: whether the
/// plugin refused the settings (else it is missing or broke the protocol), and the
/// message.
pub(super) async fn check(
    shared: Arc<Shared>,
    svc: &Service,
    vars: Arc<BTreeMap<String, String>>,
) -> Result<(), (bool, String)> {
    let Some(plugin) = svc.plugin.clone() else {
        return Ok(());
    };
    let run = Run {
        shared,
        svc: svc.clone(),
        plugin,
        env: BTreeMap::new(),
        vars,
        check_only: true,
    };
    let mut c = run.open().await.map_err(|e| (false, e.to_string()))?;
    let checked = run.handshake(&mut c).await;
    drop(c.stdin);
    let _ = tokio::time::timeout(Duration::from_secs(2), c.child.wait()).await;
    // The group guard kills whatever is left.
    checked.map_err(|e| (matches!(e, PluginError::Invalid { .. }), e.to_string()))
}

impl super::Engine {
    /// `devenv validate` of the plugin services of a config that checked: each
    /// plugin's own `validate` of its `settings`, a refusal located at the service's
    /// `settings` (a missing plugin or one that breaks the protocol at its `type`).
    /// Nothing is started; the plugins' processes end with the check.
    pub async fn validate_plugins(
        &self,
        req: &super::ProjectRef,
        loaded: &crate::config::Loaded,
    ) -> Vec<crate::config::ConfigError> {
        let plugins: Vec<&Service> = loaded
            .environment
            .services
            .iter()
            .filter(|s| s.plugin.is_some())
            .collect();
        if plugins.is_empty() {
            return Vec::new();
        }
        let rt = match self.find_or_register(req) {
            Ok(rt) => rt,
            Err(e) => {
                return vec![crate::config::ConfigError {
                    file: loaded.config_file.clone(),
                    line: 0,
                    column: 0,
                    key: "spec.services".into(),
                    message: format!("cannot check the plugin services: {e}"),
                    hint: None,
                }]
            }
        };
        let vars = Arc::new(req.vars.clone());
        let mut errors = Vec::new();
        for svc in plugins {
            let Err((settings, message)) = check(rt.shared.clone(), svc, vars.clone()).await else {
                continue;
            };
            let (key, origin) = locate(
                loaded,
                &svc.name,
                if settings { "settings" } else { "type" },
            );
            errors.push(crate::config::ConfigError::at(&origin, &key, message, None));
        }
        errors
    }
}

/// The key path and origin of `spec.services[N].<key>` for the service `name` (its
/// first leaf under the key, else the service's name), for a located error.
fn locate(
    loaded: &crate::config::Loaded,
    name: &str,
    key: &str,
) -> (String, crate::config::Origin) {
    let index = loaded.values.iter().find_map(|(path, value, _)| {
        let rest = path.strip_prefix("spec.services[")?;
        let (n, field) = rest.split_once(']')?;
        (field == ".name" && value.trim().trim_matches(['"', '\'']) == name).then(|| n.to_owned())
    });
    let fallback = crate::config::Origin::File {
        file: loaded.config_file.clone(),
        line: 0,
        column: 0,
    };
    let Some(n) = index else {
        return (format!("spec.services.{name}.{key}"), fallback);
    };
    let base = format!("spec.services[{n}]");
    let path = format!("{base}.{key}");
    let origin = loaded
        .values
        .iter()
        .find(|(p, _, _)| p == &path || p.starts_with(&format!("{path}.")))
        .or_else(|| {
            loaded
                .values
                .iter()
                .find(|(p, _, _)| p == &format!("{base}.name"))
        })
        .map(|(_, _, o)| o.clone())
        .unwrap_or(fallback);
    (path, origin)
}
