//! Helpers for the orchestration tests (graph, restart policy, crash during up):
//! the daemon's system log lines as ordered events, services from `status --json`,
//! `devenv` in the background, and processes found by where they run.
//!
//! Not a module of the shared harness: test files include it with
//! `#[path = "../src/graph_support.rs"] mod graph_support;`.

#![allow(dead_code, reason = "each test file uses a different part")]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use devenv_e2e::TestEnv;
use serde_json::Value;

/// The YAML head of a test project's config; services follow, indented by four.
pub fn config_head(name: &str) -> String {
    format!(
        "apiVersion: devenv/v1\nkind: Environment\nmetadata:\n  name: {name}\nspec:\n  services:\n"
    )
}

/// One system log line of the daemon (`started (pid N)`, `ready`, `exited with ...`),
/// with its place in the daemon's log (the hub's order, which is causal) and its time.
#[derive(Debug, Clone)]
pub struct Event {
    pub index: usize,
    pub millis: u64,
    pub service: String,
    pub line: String,
}

/// Every system line of the environment, in the daemon's order, from `devenv --json logs`.
pub fn system_events(env: &TestEnv) -> Vec<Event> {
    let out = env.devenv_ok(&["--json", "logs"]);
    let mut events = Vec::new();
    for (index, raw) in out.stdout.lines().enumerate() {
        let v: Value = serde_json::from_str(raw)
            .unwrap_or_else(|e| panic!("logs --json line is not JSON ({e}): {raw}\n{out}"));
        if v["stream"] != "system" {
            continue;
        }
        let time = v["time"].as_str().unwrap_or_default();
        let millis = rfc3339_millis(time)
            .unwrap_or_else(|| panic!("logs --json time is not RFC 3339: {raw}"));
        events.push(Event {
            index,
            millis,
            service: v["service"].as_str().unwrap_or_default().to_string(),
            line: v["line"].as_str().unwrap_or_default().to_string(),
        });
    }
    events
}

/// The first event of `service` whose line satisfies `pred`.
pub fn first<'a>(
    events: &'a [Event],
    service: &str,
    pred: impl Fn(&str) -> bool,
) -> Option<&'a Event> {
    events
        .iter()
        .find(|e| e.service == service && pred(&e.line))
}

pub fn is_started(line: &str) -> bool {
    line.starts_with("started (pid ")
}

/// `ready`, or a one-shot's successful end: what lets dependents start.
pub fn is_ready_or_done(line: &str) -> bool {
    line == "ready" || line == "exited with code 0"
}

/// Milliseconds since the epoch of `2026-11-22T21:47:15.456Z` (UTC, `Z` only; any
/// number of fraction digits). `None` when it is not of that shape.
pub fn rfc3339_millis(s: &str) -> Option<u64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let frac_ms: i64 = format!("{frac:0<3}")[..3].parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    u64::try_from(secs * 1000 + frac_ms).ok()
}

/// The service `name` of a parsed `status --json`; panics naming what is there.
pub fn service<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("{name} is not in status:\n{status:#}"))
}

/// Service name -> state, for messages.
pub fn states_of(status: &Value) -> BTreeMap<String, String> {
    devenv_e2e::service_states(status)
}

/// `status --json` that tolerates a failing command (e.g. while the daemon restarts).
pub fn try_status(env: &TestEnv) -> Option<Value> {
    let out = env.devenv(&["status", "--json"]);
    if out.code != Some(0) {
        return None;
    }
    serde_json::from_str(&out.stdout).ok()
}

/// `devenv ARGS` running in the background, its output going to files under the env's
/// root (no pipe to fill up). Killed on drop if still running.
pub struct Background {
    pub child: Child,
    pub stdout: std::path::PathBuf,
    pub stderr: std::path::PathBuf,
    pub started: Instant,
}

impl Background {
    pub fn spawn(env: &TestEnv, args: &[&str]) -> Self {
        let tag = args.join("_").replace(['/', ' '], "_");
        let stdout = env.root().join(format!("bg-{tag}.out"));
        let stderr = env.root().join(format!("bg-{tag}.err"));
        let child = Command::new(&env.bins.devenv)
            .args(args)
            .current_dir(&env.project)
            .env_clear()
            .envs(env.env_vars())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("create stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("create stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn devenv {}: {e}", args.join(" ")));
        Self {
            child,
            stdout,
            stderr,
            started: Instant::now(),
        }
    }

    /// Waits up to `timeout` for the exit; `None` when it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        devenv_e2e::wait_until(timeout, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        status
    }

    /// What it printed so far, for messages.
    pub fn output(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "--- stdout\n{}\n--- stderr\n{}",
            read(&self.stdout).trim_end(),
            read(&self.stderr).trim_end()
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Live processes (not zombies) whose cwd is inside `dir` or whose command line
/// mentions it, other than this process and `except`: with `dir` the test's temp
/// root, that is the services and anything they started.
pub fn processes_in(dir: &Path, except: &[u32]) -> Vec<(u32, String)> {
    let me = std::process::id();
    let dir_s = dir.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<(u32, String)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me && !except.contains(pid) && devenv_e2e::alive(*pid))
        .filter_map(|pid| {
            let cwd_inside = std::fs::read_link(format!("/proc/{pid}/cwd"))
                .map(|c| c.starts_with(dir))
                .unwrap_or(false);
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
                .unwrap_or_default();
            (cwd_inside || cmdline.contains(&dir_s)).then(|| (pid, cmdline.trim().to_string()))
        })
        .collect();
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_parsed() {
        assert_eq!(rfc3339_millis("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(rfc3339_millis("1970-01-01T00:00:01.5Z"), Some(1500));
        // date -u -d 2026-11-22T21:47:15Z +%s => 1795384035
        assert_eq!(
            rfc3339_millis("2026-11-22T21:47:15.456Z"),
            Some(1_795_384_035_456)
        );
        assert_eq!(rfc3339_millis("2026-11-22 21:47:15Z"), None);
    }
}
