//! Shared harness for end-to-end tests: the real `devenvd` and `devenv` binaries, each
//! test in its own temp dir with its own HOME, runtime dir, socket and data dir.
//!
//! Nothing here sleeps to synchronise: [`wait_until`] polls a condition with backoff
//! under a deadline. Dropping a [`TestEnv`] stops its daemon and kills anything that
//! still carries the env's id, so a failing test leaves no process behind.

pub mod bench;
mod bins;
pub mod docker;
pub mod kube;
mod procs;
pub mod pty;
mod run;
mod users;
pub mod vault;
pub mod web;

pub use bins::{workspace_root, Bins, Profile};
pub use procs::{
    alive, env_pids, find_grpcurl, find_helm, free_ports, http_get, http_post, port_open,
    read_cpu_ticks, read_hwm_kib, read_rss_kib, wait_until, HttpResponse,
};
pub use run::{CmdOutput, RunOpts};
pub use users::{chmod, other_user, OTHER_USER};

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// Environment variable carried by every process a [`TestEnv`] starts (the CLI, the
/// daemon it auto-starts, the services the daemon spawns): lets Drop find leftovers.
pub const ID_VAR: &str = "DEVENV_E2E_ID";

/// Variable the daemon sets on every service process (see crates/core process.rs).
pub const MARKER_VAR: &str = "DEVENV_MARKER";

/// Default bound for one CLI invocation; `up` of the example takes a few seconds.
pub const CMD_TIMEOUT: Duration = Duration::from_secs(90);

/// One isolated devenv world.
pub struct TestEnv {
    /// Kept for its Drop: removes everything below.
    root: tempfile::TempDir,
    pub home: PathBuf,
    /// `$XDG_RUNTIME_DIR`, 0700.
    pub runtime_dir: PathBuf,
    /// `$DEVENV_SOCKET`; its directory is left for the daemon to create.
    pub socket: PathBuf,
    pub data_dir: PathBuf,
    /// Working directory for commands; holds the project once one is copied or written.
    pub project: PathBuf,
    /// Unique value of [`ID_VAR`] for this env.
    pub id: String,
    pub bins: &'static Bins,
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for TestEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestEnv")
            .field("root", &self.root.path())
            .field("id", &self.id)
            .finish()
    }
}

impl TestEnv {
    /// A fresh env using the debug binaries (built on first use when missing).
    pub fn new() -> Self {
        Self::with_bins(Bins::get(Profile::Debug))
    }

    pub fn with_bins(bins: &'static Bins) -> Self {
        // Short prefix under /tmp: the socket path must stay below ~100 bytes.
        let root = tempfile::Builder::new()
            .prefix("de2e-")
            .tempdir_in("/tmp")
            .expect("create temp dir under /tmp");
        let base = root.path().to_path_buf();
        let home = base.join("home");
        let runtime_dir = base.join("run");
        let data_dir = base.join("data");
        let project = base.join("project");
        for d in [&home, &runtime_dir, &project] {
            std::fs::create_dir_all(d).expect("create temp subdir");
        }
        std::fs::set_permissions(&runtime_dir, std::fs::Permissions::from_mode(0o700))
            .expect("chmod runtime dir");
        let socket = runtime_dir.join("devenv").join("devenvd.sock");
        let id = format!(
            "{}-{}",
            std::process::id(),
            base.file_name().and_then(|n| n.to_str()).unwrap_or("x")
        );
        Self {
            root,
            home,
            runtime_dir,
            socket,
            data_dir,
            project,
            id,
            bins,
            vars: BTreeMap::new(),
        }
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Sets a variable for every later command (e.g. `QUICKSTART_API_PORT`).
    pub fn set_var(&mut self, key: &str, value: impl ToString) -> &mut Self {
        self.vars.insert(key.to_string(), value.to_string());
        self
    }

    /// The full, explicit environment every command of this env runs with.
    pub fn env_vars(&self) -> Vec<(OsString, OsString)> {
        let mut vars: Vec<(OsString, OsString)> = Vec::new();
        // Only what a user's shell would have; nothing of the host's DEVENV_* leaks in.
        for key in ["PATH", "LANG", "RUST_BACKTRACE", "RUST_LOG", "TERM"] {
            if let Some(v) = std::env::var_os(key) {
                vars.push((key.into(), v));
            }
        }
        let mut set = |k: &str, v: &Path| vars.push((k.into(), v.as_os_str().to_owned()));
        set("HOME", &self.home);
        set("XDG_RUNTIME_DIR", &self.runtime_dir);
        set("DEVENV_SOCKET", &self.socket);
        set("DEVENV_DATA_DIR", &self.data_dir);
        set("DEVENVD_BIN", &self.bins.devenvd);
        vars.push(("NO_COLOR".into(), "1".into()));
        // Many daemons run at once: each takes any free port for its dashboard
        // (`TestEnv::dashboard` tells which); a test may override it with set_var.
        vars.push(("DEVENV_DASHBOARD_PORT".into(), "0".into()));
        vars.push(("DEVENV_ROUTER_PORT".into(), "0".into()));
        vars.push((ID_VAR.into(), self.id.clone().into()));
        for (k, v) in &self.vars {
            vars.push((k.into(), v.into()));
        }
        vars
    }

    /// Copies `examples/<name>` into [`TestEnv::project`].
    pub fn copy_example(&self, name: &str) -> &Path {
        let src = workspace_root().join("examples").join(name);
        assert!(src.is_dir(), "example {} does not exist", src.display());
        copy_dir(&src, &self.project).expect("copy example");
        &self.project
    }

    /// Writes `.devenv/config.yml` of the project; returns its path.
    pub fn write_config(&self, yaml: &str) -> PathBuf {
        let path = self.project.join(".devenv").join("config.yml");
        std::fs::create_dir_all(path.parent().expect("config has a parent"))
            .expect("mkdir .devenv");
        std::fs::write(&path, yaml).expect("write config");
        path
    }

    /// Picks free ports for the quickstart example and sets its port variables.
    /// Returns (db, api, web).
    pub fn quickstart(&mut self) -> (u16, u16, u16) {
        self.copy_example("quickstart");
        let p = free_ports(3);
        self.set_var("QUICKSTART_DB_PORT", p[0]);
        self.set_var("QUICKSTART_API_PORT", p[1]);
        self.set_var("QUICKSTART_WEB_PORT", p[2]);
        (p[0], p[1], p[2])
    }

    /// Runs `devenv ARGS` in the project dir, bounded by [`CMD_TIMEOUT`].
    pub fn devenv(&self, args: &[&str]) -> CmdOutput {
        self.run(&self.bins.devenv, args, RunOpts::default())
    }

    /// Runs `devenv ARGS` and panics with the full output unless it exits 0.
    pub fn devenv_ok(&self, args: &[&str]) -> CmdOutput {
        let out = self.devenv(args);
        assert_eq!(
            out.code,
            Some(0),
            "devenv {} should succeed\n{out}",
            args.join(" ")
        );
        out
    }

    /// Runs any program with this env's environment, in the project dir.
    pub fn run(&self, program: &Path, args: &[&str], opts: RunOpts) -> CmdOutput {
        run::run(program, args, &self.project, &self.env_vars(), opts)
    }

    /// `devenv status --json`, parsed; panics unless it exits 0 with JSON.
    pub fn status_json(&self) -> Value {
        let out = self.devenv_ok(&["status", "--json"]);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("status --json is not JSON ({e})\n{out}"))
    }

    /// Service name -> state, from `devenv status --json`.
    pub fn states(&self) -> BTreeMap<String, String> {
        service_states(&self.status_json())
    }

    /// The daemon's pid, from `devenv daemon status --json` (starts nothing: panics
    /// when no daemon runs).
    /// SIGKILLs the daemon and waits (bounded) until it is gone; returns its pid.
    pub fn kill_daemon_hard(&self) -> u32 {
        let daemon = self.daemon_pid();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(daemon as i32),
            nix::sys::signal::SIGKILL,
        )
        .expect("kill -9 the daemon");
        // A killed multi-threaded process shows as a zombie while its other threads
        // are still exiting, and its files (the listening socket) close only when the
        // last one is gone: wait for the leader to be its only task, or a client could
        // still connect to the dying daemon.
        assert!(
            wait_until(Duration::from_secs(5), || !alive(daemon)
                && std::fs::read_dir(format!("/proc/{daemon}/task"))
                    .map_or(true, |d| d.count() <= 1)),
            "daemon {daemon} survived kill -9"
        );
        daemon
    }

    /// Starts `devenv ARGS` in the background with this env's environment, stdout
    /// piped, stderr discarded (e.g. a `logs -f` client).
    pub fn spawn_devenv(&self, args: &[&str]) -> std::process::Child {
        std::process::Command::new(&self.bins.devenv)
            .args(args)
            .current_dir(&self.project)
            .env_clear()
            .envs(self.env_vars())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn devenv {}: {e}", args.join(" ")))
    }

    /// Like [`TestEnv::spawn_devenv`], with stdout and stderr going to `log` (a
    /// long-running client whose output nobody reads must not fill a pipe).
    pub fn spawn_devenv_logged(&self, args: &[&str], log: &Path) -> std::process::Child {
        let out = std::fs::File::create(log).expect("create the client's log");
        let err = out.try_clone().expect("clone the log file");
        std::process::Command::new(&self.bins.devenv)
            .args(args)
            .current_dir(&self.project)
            .env_clear()
            .envs(self.env_vars())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn devenv {}: {e}", args.join(" ")))
    }

    pub fn daemon_pid(&self) -> u32 {
        let out = self.devenv_ok(&["daemon", "status", "--json"]);
        let v: Value = serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("daemon status --json is not JSON ({e})\n{out}"));
        find_key(&v, "pid")
            .and_then(Value::as_u64)
            .and_then(|p| u32::try_from(p).ok())
            .filter(|p| *p > 0)
            .unwrap_or_else(|| panic!("daemon status --json has no pid\n{out}"))
    }

    /// Processes started for this env that carry the service marker: the services.
    pub fn service_pids(&self) -> Vec<u32> {
        env_pids(&self.id, Some(MARKER_VAR))
    }

    /// Every process carrying this env's id: the daemon, its helpers, the services.
    pub fn all_pids(&self) -> Vec<u32> {
        env_pids(&self.id, None)
    }

    /// Stops the daemon (gracefully, then by force) and kills every leftover process.
    pub fn teardown(&self) {
        if self.socket.exists() {
            let opts = RunOpts {
                timeout: Duration::from_secs(20),
                ..RunOpts::default()
            };
            let _ = self.run(&self.bins.devenv, &["daemon", "stop"], opts);
        }
        for pid in self.all_pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let gone = wait_until(Duration::from_secs(5), || self.all_pids().is_empty());
        if !gone {
            eprintln!(
                "warning: processes of {} survived SIGKILL: {:?}",
                self.id,
                self.all_pids()
            );
        }
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.teardown();
        if std::env::var_os("DEVENV_E2E_KEEP").is_some() {
            let path = std::mem::replace(&mut self.root, tempfile::tempdir().expect("tempdir"));
            eprintln!("DEVENV_E2E_KEEP: left {}", path.keep().display());
        }
    }
}

/// Service name -> state from a parsed `status --json`.
pub fn service_states(status: &Value) -> BTreeMap<String, String> {
    status["services"]
        .as_array()
        .map(|services| {
            services
                .iter()
                .map(|s| {
                    let name = s["name"].as_str().unwrap_or_default().to_string();
                    let state = s["state"].as_str().unwrap_or_default().to_string();
                    (name, state)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Depth-first search for the first value under `key` in a JSON document.
pub fn find_key<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(map) => map
            .get(key)
            .or_else(|| map.values().find_map(|child| find_key(child, key))),
        Value::Array(items) => items.iter().find_map(|child| find_key(child, key)),
        _ => None,
    }
}

fn copy_dir(src: &Path, dst: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dst)?;
    for entry in std::fs::read_dir(src)? {
        let entry = entry?;
        let to = dst.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            if entry.file_name() == "__pycache__" {
                continue;
            }
            copy_dir(&entry.path(), &to)?;
        } else {
            std::fs::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

type TypeCheck = fn(&Value) -> bool;

/// Checks `status --json` against the documented shape: `{"environment", "project",
/// "services": [{"name", "runtime", "state", "ready", "pid", "ports", "restarts",
/// "message"}]}` with the documented JSON types. Panics naming what is off.
pub fn assert_status_shape(status: &Value) {
    let pretty = serde_json::to_string_pretty(status).unwrap_or_default();
    assert!(
        status["environment"].is_string(),
        "status.environment is not a string:\n{pretty}"
    );
    assert!(
        status["project"].is_string(),
        "status.project is not a string:\n{pretty}"
    );
    let services = status["services"]
        .as_array()
        .unwrap_or_else(|| panic!("status.services is not an array:\n{pretty}"));
    for s in services {
        let checks: [(&str, TypeCheck); 8] = [
            ("name", Value::is_string),
            ("runtime", Value::is_string),
            ("state", Value::is_string),
            ("ready", Value::is_boolean),
            // 0 or null when not running.
            ("pid", |v| v.is_u64() || v.is_null()),
            ("ports", |v| {
                v.as_array().is_some_and(|a| a.iter().all(Value::is_u64))
            }),
            ("restarts", Value::is_u64),
            ("message", |v| v.is_string() || v.is_null()),
        ];
        for (key, ok) in checks {
            let v = s
                .get(key)
                .unwrap_or_else(|| panic!("service has no `{key}`:\n{pretty}"));
            assert!(ok(v), "service `{key}` has the wrong type ({v}):\n{pretty}");
        }
    }
}

/// `(line, column)` of every `FILE_NAME:LINE:COL` in `text`, e.g. `config.yml:11:7`.
pub fn locations(text: &str, file_name: &str) -> Vec<(u32, u32)> {
    let pat = format!("{file_name}:");
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&pat) {
        rest = &rest[i + pat.len()..];
        let line: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let after = &rest[line.len()..];
        let Some(after) = after.strip_prefix(':') else {
            continue;
        };
        let col: String = after.chars().take_while(char::is_ascii_digit).collect();
        if let (Ok(l), Ok(c)) = (line.parse(), col.parse()) {
            found.push((l, c));
        }
    }
    found
}

/// Every file under `dir` whose bytes contain `needle`: where a secret value must not be.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_parsed() {
        let text = "/p/.devenv/config.yml:11:7: spec.services[1].dependecies: unknown key\n\
                    config.yml:3 no column, config.yml:x:1, a/config.yml:2:15";
        assert_eq!(locations(text, "config.yml"), vec![(11, 7), (2, 15)]);
    }

    #[test]
    fn find_key_searches_nested() {
        let v: Value = serde_json::json!({"daemon": {"version": "1", "pid": 42}});
        assert_eq!(find_key(&v, "pid").and_then(Value::as_u64), Some(42));
        assert!(find_key(&v, "nope").is_none());
    }

    #[test]
    fn status_shape_accepts_documented_and_rejects_wrong_types() {
        let good = serde_json::json!({"environment": "e", "project": "/p", "services": [
            {"name": "a", "runtime": "local", "state": "ready", "ready": true, "pid": 7,
             "ports": [1], "restarts": 0, "message": ""}]});
        assert_status_shape(&good);
        let mut bad = good.clone();
        bad["services"][0]["ready"] = serde_json::json!("yes");
        assert!(std::panic::catch_unwind(|| assert_status_shape(&bad)).is_err());
    }

    #[test]
    fn wait_until_polls_until_true_and_times_out() {
        let mut n = 0;
        assert!(wait_until(Duration::from_secs(5), || {
            n += 1;
            n >= 3
        }));
        assert!(!wait_until(Duration::from_millis(30), || false));
    }

    #[test]
    fn free_ports_are_distinct_and_closed() {
        let ports = free_ports(3);
        assert_eq!(
            ports
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            3
        );
        assert!(ports.iter().all(|p| !port_open(*p)));
    }

    #[test]
    fn proc_helpers_see_this_process() {
        let me = std::process::id();
        assert!(alive(me));
        assert!(read_rss_kib(me).is_some_and(|k| k > 0));
        assert!(read_cpu_ticks(me).is_some());
    }
}
