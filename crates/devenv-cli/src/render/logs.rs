//! Log lines: `service | line`, the name padded and coloured per service; or JSON
//! lines. Written to a buffered sink: this path must keep up with 500k lines/s.

use std::collections::HashMap;
use std::io::{self, Write};

use devenv_api::pb::{self, LogStream};
use serde::Serialize;

use super::color::{paint, service_color, DIM, RED};
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
    #[serde(skip_serializing_if = "is_zero")]
    missed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
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
            let note = format!("... {} lines skipped (client too slow)", e.missed);
            self.out
                .write_all(paint(self.color, DIM, &note).as_bytes())?;
        } else if stream == LogStream::System && self.color {
            self.out.write_all(paint(true, DIM, &e.line).as_bytes())?;
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
            missed: e.missed,
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
        }
    }

    fn render(json: bool, entries: &[pb::LogEntry]) -> String {
        let mut w = LogWriter::new(Vec::new(), json, false, false, &["api".to_string()]);
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
                    ..entry("api", LogStream::System, "")
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
             api    | ... 42 lines skipped (client too slow)\n\
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
}
