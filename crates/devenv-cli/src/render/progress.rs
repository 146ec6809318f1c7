//! `devenv up` progress: a spinner line per service on a terminal, a plain line per
//! change otherwise, or one JSON object per event.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use devenv_api::pb::{self, ServiceState as S};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::color::{paint, state_code, GREEN, RED};
use super::status::ServiceJson;
use super::time::short_duration;

const MIN_WIDTH: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tty,
    Plain,
    Json,
    /// `-q`: only the outcome.
    Quiet,
}

/// What the renderer remembers per service.
struct Seen {
    first: Instant,
    started: Option<Instant>,
    last: pb::ServiceStatus,
    bar: Option<ProgressBar>,
}

pub struct UpProgress {
    mode: Mode,
    color: bool,
    width: usize,
    order: Vec<String>,
    seen: HashMap<String, Seen>,
    multi: Option<MultiProgress>,
    began: Instant,
}

impl UpProgress {
    pub fn new(mode: Mode, color: bool) -> Self {
        let multi = (mode == Mode::Tty)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Self {
            mode,
            color,
            width: MIN_WIDTH,
            order: Vec::new(),
            seen: HashMap::new(),
            multi,
            began: Instant::now(),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.began.elapsed()
    }

    /// The latest status of each service, in the order they first appeared.
    pub fn last(&self) -> impl Iterator<Item = &pb::ServiceStatus> {
        self.order
            .iter()
            .filter_map(|n| self.seen.get(n))
            .map(|s| &s.last)
    }

    pub fn last_of(&self, name: &str) -> Option<&pb::ServiceStatus> {
        self.seen.get(name).map(|s| &s.last)
    }

    pub fn service(&mut self, s: &pb::ServiceStatus) {
        if self.mode == Mode::Json {
            outln!(
                "{}",
                event_json(&EventJson::Service(ServiceEventJson::from(s)))
            );
            return;
        }
        let now = Instant::now();
        if !self.seen.contains_key(&s.name) {
            self.order.push(s.name.clone());
            self.seen.insert(
                s.name.clone(),
                Seen {
                    first: now,
                    started: None,
                    last: s.clone(),
                    bar: None,
                },
            );
            if s.name.len() > self.width {
                self.width = s.name.len();
                self.repad();
            }
        } else {
            let prev = &self.seen[&s.name].last;
            if prev.state == s.state && prev.message == s.message && prev.degraded == s.degraded {
                return;
            }
        }
        let seen = self.seen.get_mut(&s.name).expect("inserted above");
        seen.last = s.clone();
        if s.state() == S::Starting && seen.started.is_none() {
            seen.started = Some(now);
        }
        let took = now - seen.started.unwrap_or(seen.first);
        let text = describe(s, took, self.color);
        match self.mode {
            Mode::Quiet => {}
            Mode::Plain => outln!("{:w$} {text}", s.name, w = self.width),
            Mode::Tty => {
                let multi = self.multi.as_ref().expect("tty mode has a MultiProgress");
                let bar = seen.bar.get_or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_prefix(format!("{:w$}", s.name, w = self.width));
                    bar
                });
                if is_settled(s.state()) {
                    bar.set_style(done_style());
                    bar.finish_with_message(text);
                } else {
                    if bar.is_finished() {
                        bar.reset();
                    }
                    bar.set_style(spinner_style());
                    bar.enable_steady_tick(Duration::from_millis(100));
                    bar.set_message(text);
                }
            }
            Mode::Json => unreachable!("handled above"),
        }
    }

    fn repad(&self) {
        for seen in self.seen.values() {
            if let Some(bar) = &seen.bar {
                bar.set_prefix(format!("{:w$}", seen.last.name, w = self.width));
            }
        }
    }

    /// Stops spinners that are still going (the stream ended).
    pub fn finish(&mut self) {
        for seen in self.seen.values() {
            if let Some(bar) = seen.bar.as_ref().filter(|b| !b.is_finished()) {
                bar.abandon();
            }
        }
    }

    pub fn result_json(&self, r: &pb::UpResult) {
        outln!(
            "{}",
            event_json(&EventJson::Result {
                ok: r.ok,
                failed: &r.failed,
                message: &r.message
            })
        );
    }

    pub fn invalid_json(&self, v: &pb::ValidateResponse) {
        let errors: Vec<_> = v
            .errors
            .iter()
            .map(super::config_errors::ErrorJson::from)
            .collect();
        outln!("{}", event_json(&EventJson::Invalid { errors }));
    }
}

fn is_settled(state: S) -> bool {
    matches!(state, S::Ready | S::Failed | S::Completed | S::Stopped)
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {prefix} {msg}")
        .expect("static template")
        .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
}

fn done_style() -> ProgressStyle {
    ProgressStyle::with_template("  {prefix} {msg}").expect("static template")
}

/// `starting  waiting for http :8000`, `ready (0.4s)`, `failed: exited with 1`.
pub fn describe(s: &pb::ServiceStatus, took: Duration, color: bool) -> String {
    let state = s.state().label();
    let mut out = paint(color, state_code(state), state);
    match s.state() {
        S::Ready | S::Completed => {
            let _ = write!(out, " ({})", short_duration(took));
        }
        S::Failed => {
            out = paint(color, RED, "failed");
        }
        _ => {}
    }
    let detail = super::status::detail(s);
    if !detail.is_empty() {
        let _ = write!(out, "  {detail}");
    }
    out
}

/// Final report of a failed `up`, for stderr: each failed service, its message and
/// the last lines of its output, indented; then whatever else the daemon said.
pub fn failure_report(r: &pb::UpResult, progress: &UpProgress, color: bool) -> String {
    let mut out = String::new();
    let error = paint(color, RED, "error");
    if r.failed.is_empty() {
        let _ = writeln!(out, "{error}: up failed");
    } else {
        let _ = writeln!(out, "{error}: up failed: {}", r.failed.join(", "));
    }
    for name in &r.failed {
        let status = progress.last_of(name);
        let message = status.map(|s| s.message.as_str()).filter(|m| !m.is_empty());
        let message = match (message, status.and_then(|s| s.exit_code)) {
            (Some(m), _) => m.to_string(),
            (None, Some(code)) => format!("exited with code {code}"),
            (None, None) => "failed".to_string(),
        };
        let _ = writeln!(
            out,
            "  {}: {message}",
            paint(color, super::color::BOLD, name)
        );
        for line in status.map(|s| s.last_lines.as_slice()).unwrap_or_default() {
            let _ = writeln!(out, "      {line}");
        }
    }
    // The daemon's message repeats `name: why` per failed service; keep the rest.
    for line in r.message.lines() {
        let repeated = r.failed.iter().any(|n| {
            line.strip_prefix(n.as_str())
                .is_some_and(|rest| rest.starts_with(": "))
        });
        if !repeated && !line.trim().is_empty() {
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

pub fn success_line(progress: &UpProgress, color: bool) -> String {
    let ready = progress
        .last()
        // Hooks (`hook/preUp`) show in the progress but are not services.
        .filter(|s| s.runtime != "hook")
        .filter(|s| s.ready || s.state() == S::Completed)
        .count();
    format!(
        "{} {ready} service{} ready in {}",
        paint(color, GREEN, "✓"),
        if ready == 1 { "" } else { "s" },
        short_duration(progress.elapsed())
    )
}

#[derive(Serialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum EventJson<'a> {
    Service(ServiceEventJson<'a>),
    Result {
        ok: bool,
        failed: &'a [String],
        message: &'a str,
    },
    Invalid {
        errors: Vec<super::config_errors::ErrorJson<'a>>,
    },
}

#[derive(Serialize)]
struct ServiceEventJson<'a> {
    #[serde(flatten)]
    status: ServiceJson<'a>,
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    last_lines: &'a [String],
}

impl<'a> From<&'a pb::ServiceStatus> for ServiceEventJson<'a> {
    fn from(s: &'a pb::ServiceStatus) -> Self {
        Self {
            status: ServiceJson::from(s),
            exit_code: s.exit_code,
            last_lines: &s.last_lines,
        }
    }
}

fn event_json(e: &EventJson<'_>) -> String {
    serde_json::to_string(e).expect("always serialisable")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, state: S, message: &str) -> pb::ServiceStatus {
        pb::ServiceStatus {
            name: name.into(),
            state: state as i32,
            ready: state == S::Ready,
            message: message.into(),
            ..Default::default()
        }
    }

    #[test]
    fn plain_descriptions() {
        let d = Duration::from_millis(400);
        assert_eq!(
            describe(&status("api", S::Starting, ""), d, false),
            "starting"
        );
        assert_eq!(
            describe(&status("api", S::Ready, ""), d, false),
            "ready (0.4s)"
        );
        assert_eq!(
            describe(&status("api", S::Failed, "exited with 1"), d, false),
            "failed  exited with 1"
        );
    }

    #[test]
    fn failure_report_names_services_with_last_lines() {
        let mut p = UpProgress::new(Mode::Plain, false);
        let mut failed = status("db", S::Failed, "exited with 1");
        failed.exit_code = Some(1);
        failed.last_lines = vec!["FATAL: bad config".into()];
        p.seen.insert(
            "db".into(),
            Seen {
                first: Instant::now(),
                started: None,
                last: failed,
                bar: None,
            },
        );
        let r = pb::UpResult {
            ok: false,
            failed: vec!["db".into()],
            message: "db: exited with 1\nstopped what this up started".into(),
        };
        assert_eq!(
            failure_report(&r, &p, false),
            "error: up failed: db\n  db: exited with 1\n      FATAL: bad config\n\
             stopped what this up started\n"
        );
    }

    #[test]
    fn json_events_are_tagged() {
        let s = status("api", S::Ready, "");
        let line = event_json(&EventJson::Service(ServiceEventJson::from(&s)));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "service");
        assert_eq!(v["name"], "api");
        assert_eq!(v["state"], "ready");
        assert_eq!(v["pid"], serde_json::Value::Null);
    }
}
