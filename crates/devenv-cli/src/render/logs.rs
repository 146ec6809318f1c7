//! Log lines: `service | line`, the name padded and coloured per service, the line
//! coloured by its level (errors red, warnings yellow, debug and trace dim) unless it
//! carries colours of its own; or JSON lines. Written to a buffered sink: this path
//! must keep up with 500k lines/s.

use std::collections::HashMap;
use std::io::{self, Write};

use devenv_api::pb::{self, LogLevel, LogStream};
use serde::Serialize;

use super::color::{paint, service_color, DIM, RED, YELLOW};
use super::time::to_system_time;

pub struct LogWriter<W: Write> {
    out: W,
    json: bool,
    color: bool,
    timestamps: bool,
    width: usize,
    /// Rendered `name | ` per (service, stream marker), rebuilt when `width` grows.
    prefixes: HashMap<String, [Vec<u8>; 2]>,
}

#[derive(Serialize)]
struct LineJson<'a> {
    time: String,
    service: &'a str,
    stream: &'static str,
    line: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    level: Option<&'static str>,
    #[serde(skip_serializing_if = "is_zero")]
    missed: u64,
    #[serde(skip_serializing_if = "is_zero")]
    position: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

pub fn level_label(l: LogLevel) -> Option<&'static str> {
    Some(match l {
        LogLevel::Unspecified => return None,
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
        LogLevel::Fatal => "fatal",
    })
}

/// The colour of a line at level `l`; none for info and lines without a level.
fn level_code(l: LogLevel) -> Option<&'static str> {
    match l {
        LogLevel::Error | LogLevel::Fatal => Some(RED),
        LogLevel::Warn => Some(YELLOW),
        LogLevel::Debug | LogLevel::Trace => Some(DIM),
        LogLevel::Info | LogLevel::Unspecified => None,
    }
}

pub fn stream_label(s: LogStream) -> &'static str {
    match s {
        LogStream::Stdout => "stdout",
        LogStream::Stderr => "stderr",
        LogStream::System => "system",
        LogStream::Unspecified => "unknown",
    }
}

impl<W: Write> LogWriter<W> {
    /// `names`: the services expected, so that columns line up from the first line.
    pub fn new(out: W, json: bool, color: bool, timestamps: bool, names: &[String]) -> Self {
        let width = names.iter().map(String::len).max().unwrap_or(0);
        Self {
            out,
            json,
            color,
            timestamps,
            width,
            prefixes: HashMap::new(),
        }
    }

    pub fn write(&mut self, e: &pb::LogEntry) -> io::Result<()> {
        if self.json {
            return self.write_json(e);
        }
        // A marker for lines dropped across services carries no service name.
        let service = if e.service.is_empty() {
            "devenv"
        } else {
            e.service.as_str()
        };
        if service.len() > self.width {
            self.width = service.len();
            self.prefixes.clear();
        }
        if self.timestamps {
            let t = e.time.as_ref().and_then(to_system_time);
            let t = t
                .map(|t| humantime::format_rfc3339_millis(t).to_string())
                .unwrap_or_default();
            let t = paint(self.color, DIM, &t);
            self.out.write_all(t.as_bytes())?;
            self.out.write_all(b" ")?;
        }
        let stream = e.stream();
        let is_err = stream == LogStream::Stderr;
        if !self.prefixes.contains_key(service) {
            let p = [self.prefix(service, false), self.prefix(service, true)];
            self.prefixes.insert(service.to_string(), p);
        }
        let prefix = &self.prefixes[service][usize::from(is_err)];
        self.out.write_all(prefix)?;
        if e.missed > 0 {
            let why = if e.line.is_empty() {
                "client too slow"
            } else {
                e.line.as_str()
            };
            let note = format!("... {} lines skipped ({why})", e.missed);
            self.out
                .write_all(paint(self.color, DIM, &note).as_bytes())?;
        } else if stream == LogStream::System && self.color {
            self.out.write_all(paint(true, DIM, &e.line).as_bytes())?;
        } else if let Some(code) =
            level_code(e.level()).filter(|_| self.color && !e.line.contains('\x1b'))
        {
            self.out.write_all(paint(true, code, &e.line).as_bytes())?;
        } else {
            self.out.write_all(e.line.as_bytes())?;
        }
        self.out.write_all(b"\n")
    }

    fn prefix(&self, service: &str, stderr: bool) -> Vec<u8> {
        let code = service_color(service).to_string();
        let name = paint(self.color, &code, &format!("{service:w$}", w = self.width));
        // Stderr is marked by a red bar, only where colour shows it.
        let bar = if stderr {
            paint(self.color, RED, "|")
        } else {
            paint(self.color, DIM, "|")
        };
        format!("{name} {bar} ").into_bytes()
    }

    fn write_json(&mut self, e: &pb::LogEntry) -> io::Result<()> {
        let doc = LineJson {
            time: super::time::rfc3339(e.time.as_ref()),
            service: &e.service,
            stream: stream_label(e.stream()),
            line: &e.line,
            level: level_label(e.level()),
            missed: e.missed,
            position: e.position,
        };
        serde_json::to_writer(&mut self.out, &doc)?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(service: &str, stream: LogStream, line: &str) -> pb::LogEntry {
        pb::LogEntry {
            time: Some(prost_types::Timestamp {
                seconds: 1_700_000_000,
                nanos: 0,
            }),
            service: service.into(),
            stream: stream as i32,
            line: line.into(),
            missed: 0,
            level: 0,
            position: 0,
        }
    }

    fn render(json: bool, entries: &[pb::LogEntry]) -> String {
        render_with(json, false, entries)
    }

    fn render_with(json: bool, color: bool, entries: &[pb::LogEntry]) -> String {
        let mut w = LogWriter::new(Vec::new(), json, color, false, &["api".to_string()]);
        for e in entries {
            w.write(e).unwrap();
        }
        String::from_utf8(w.out).unwrap()
    }

    #[test]
    fn plain_lines_are_padded_and_grow() {
        let out = render(
            false,
            &[
                entry("api", LogStream::Stdout, "listening"),
                entry("worker", LogStream::Stderr, "boom"),
                entry("api", LogStream::Stdout, "GET /"),
                pb::LogEntry {
                    missed: 42,
                    ..entry(
                        "api",
                        LogStream::System,
                        "removed by disk retention before they were read",
                    )
                },
                pb::LogEntry {
                    missed: 7,
                    ..entry("", LogStream::System, "")
                },
            ],
        );
        assert_eq!(
            out,
            "api | listening\nworker | boom\napi    | GET /\n\
             api    | ... 42 lines skipped (removed by disk retention before they were read)\n\
             devenv | ... 7 lines skipped (client too slow)\n"
        );
    }

    #[test]
    fn json_lines() {
        let out = render(
            true,
            &[entry("api", LogStream::Stderr, "a \"quoted\" line")],
        );
        assert_eq!(
            out,
            "{\"time\":\"2023-11-14T22:13:20.000Z\",\"service\":\"api\",\"stream\":\"stderr\",\
             \"line\":\"a \\\"quoted\\\" line\"}\n"
        );
    }

    #[test]
    fn levels_colour_lines_and_show_in_json() {
        let at = |level: LogLevel, line: &str| pb::LogEntry {
            level: level as i32,
            ..entry("api", LogStream::Stdout, line)
        };
        let out = render_with(
            false,
            true,
            &[
                at(LogLevel::Error, "ERROR boom"),
                at(LogLevel::Warn, "WARN hot"),
                at(LogLevel::Info, "INFO fine"),
                at(LogLevel::Debug, "DEBUG x"),
                at(LogLevel::Error, "\x1b[31mERROR\x1b[0m own colours"),
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].ends_with("\x1b[31mERROR boom\x1b[0m"), "{lines:?}");
        assert!(lines[1].ends_with("\x1b[33mWARN hot\x1b[0m"), "{lines:?}");
        assert!(lines[2].ends_with("|\x1b[0m INFO fine"), "{lines:?}");
        assert!(lines[3].ends_with("\x1b[2mDEBUG x\x1b[0m"), "{lines:?}");
        assert!(
            lines[4].ends_with("|\x1b[0m \x1b[31mERROR\x1b[0m own colours"),
            "{lines:?}"
        );
        // No colour (NO_COLOR, --no-color, a pipe): the line as it came.
        let plain = render(false, &[at(LogLevel::Error, "ERROR boom")]);
        assert_eq!(plain, "api | ERROR boom\n");
        let json = render(true, &[at(LogLevel::Warn, "WARN hot")]);
        assert!(json.contains(",\"level\":\"warn\"}"), "{json}");
    }
}
