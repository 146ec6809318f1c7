//! A log line's level, read from the line itself: JSON logs (`level`, `severity`,
//! `lvl`, `levelname`, `log.level`; names or pino/bunyan numbers), logfmt (`level=`)
//! and the common prefixes (`ERROR`, `WARN`, `[info]`, `<warn>`, `info:`, Python's
//! `WARNING:root:`), after an optional timestamp and ANSI colours.
//!
//! Computed when lines are read, not stored: a line costs a bounded look at its first
//! [`PREFIX_BYTES`] (a JSON parse only for a line that starts with `{`), the segment
//! format stays as it was (old logs get levels too, and a better reader improves them),
//! and lines nobody reads cost nothing. docs/benchmarks.md has the measurement.
//! Hand-written rather than a regex per line for that cost.

use std::fmt;
use std::str::FromStr;

use super::Stream;

/// Bytes of a line's start searched for a prefix or a logfmt `level=`.
pub const PREFIX_BYTES: usize = 160;
/// Words of a line's start looked at (timestamps, a thread in brackets, the level).
const PREFIX_WORDS: usize = 5;
/// Longer words end the prefix (an RFC 3339 time with nanoseconds and offset is 35).
const MAX_WORD: usize = 40;

/// Severity, lowest first: `level >= Level::Warn` is "warn and above".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Fatal,
}

impl Level {
    pub const ALL: [Level; 6] = [
        Level::Trace,
        Level::Debug,
        Level::Info,
        Level::Warn,
        Level::Error,
        Level::Fatal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
            Level::Fatal => "fatal",
        }
    }

    /// A level's name as loggers write it, any case: `warning`, `ERR`, `Critical`...
    pub fn from_name(name: &str) -> Option<Level> {
        let mut buf = [0u8; 9];
        if name.len() < 3 || name.len() > buf.len() {
            return None;
        }
        let lower = &mut buf[..name.len()];
        lower.copy_from_slice(name.as_bytes());
        lower.make_ascii_lowercase();
        Some(match &*lower {
            b"trace" | b"trc" | b"verbose" => Level::Trace,
            b"debug" | b"dbg" => Level::Debug,
            b"info" | b"inf" | b"notice" => Level::Info,
            b"warn" | b"warning" | b"wrn" => Level::Warn,
            b"error" | b"err" | b"eror" => Level::Error,
            b"fatal" | b"critical" | b"crit" | b"panic" | b"alert" | b"emerg" | b"emergency" => {
                Level::Fatal
            }
            _ => return None,
        })
    }

    /// pino's and bunyan's numbers: 10 trace, 20 debug, 30 info, 40 warn, 50 error,
    /// 60 fatal (values between round up).
    pub fn from_number(n: f64) -> Option<Level> {
        if !(1.0..=100.0).contains(&n) {
            return None;
        }
        Some(match n {
            n if n <= 10.0 => Level::Trace,
            n if n <= 20.0 => Level::Debug,
            n if n <= 30.0 => Level::Info,
            n if n <= 40.0 => Level::Warn,
            n if n <= 50.0 => Level::Error,
            _ => Level::Fatal,
        })
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level name that is none of [`Level::ALL`] (from a client's `--level`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log level {0:?} (one of trace, debug, info, warn, error, fatal)")]
pub struct UnknownLevel(pub String);

impl FromStr for Level {
    type Err = UnknownLevel;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::from_name(s.trim()).ok_or_else(|| UnknownLevel(s.to_owned()))
    }
}

/// The level of one line of `stream`, when the line says it. Lines devenv writes
/// about a service (`System`) have none; stderr gets none for being stderr.
pub fn detect(stream: Stream, text: &str) -> Option<Level> {
    if stream == Stream::System {
        return None;
    }
    let trimmed = text.trim_start_matches([' ', '\t']);
    if trimmed.starts_with('{') {
        return from_json(trimmed);
    }
    let head = head(trimmed);
    from_prefix(head).or_else(|| from_logfmt(head))
}

/// The first [`PREFIX_BYTES`] of `text`, cut at a char boundary.
fn head(text: &str) -> &str {
    if text.len() <= PREFIX_BYTES {
        return text;
    }
    let mut end = PREFIX_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `{"level": "warn", ...}`: only the top-level keys count.
fn from_json(text: &str) -> Option<Level> {
    #[derive(serde::Deserialize)]
    struct Keys {
        level: Option<serde_json::Value>,
        severity: Option<serde_json::Value>,
        lvl: Option<serde_json::Value>,
        levelname: Option<serde_json::Value>,
        #[serde(rename = "log.level")]
        log_level: Option<serde_json::Value>,
    }
    let keys: Keys = serde_json::from_str(text.trim_end()).ok()?;
    [
        keys.level,
        keys.severity,
        keys.lvl,
        keys.levelname,
        keys.log_level,
    ]
    .into_iter()
    .flatten()
    .find_map(|v| match v {
        serde_json::Value::String(s) => Level::from_name(&s),
        serde_json::Value::Number(n) => n.as_f64().and_then(Level::from_number),
        _ => None,
    })
}

/// `level=warn`, `level="warn"` (also `lvl=`, `severity=`) as a logfmt key: at the
/// start or after a space, so `errors=0` or `xlevel=` are not it.
fn from_logfmt(head: &str) -> Option<Level> {
    let bytes = head.as_bytes();
    let mut from = 0;
    while let Some(i) = memchr_eq(&bytes[from..]) {
        let eq = from + i;
        from = eq + 1;
        let key_start = bytes[..eq]
            .iter()
            .rposition(|b| *b == b' ' || *b == b'\t')
            .map_or(0, |p| p + 1);
        let key = &head[key_start..eq];
        if !matches!(key, "level" | "lvl" | "severity") {
            continue;
        }
        let rest = &head[eq + 1..];
        let value = match rest.strip_prefix('"') {
            Some(q) => q.split('"').next().unwrap_or(""),
            None => rest.split([' ', '\t']).next().unwrap_or(""),
        };
        return Level::from_name(value)
            .or_else(|| value.parse::<f64>().ok().and_then(Level::from_number));
    }
    None
}

fn memchr_eq(bytes: &[u8]) -> Option<usize> {
    memchr::memchr(b'=', bytes)
}

/// The level word among the first few words, after timestamps and bracketed words
/// (a thread name): `2024-05-01 12:00:00,123 [main] WARN x`, `[info] x`, `INFO: x`,
/// `WARNING:root:x`, `error: x`. A bare word counts when upper case (`ERROR`), or in
/// any case when bracketed or followed by `:`.
fn from_prefix(head: &str) -> Option<Level> {
    let mut words = Words::new(head);
    for _ in 0..PREFIX_WORDS {
        let word = words.next()?;
        // No level, timestamp or thread name is this long: prose or data.
        if word.len() > MAX_WORD {
            return None;
        }
        if let Some(level) = level_word(word) {
            return Some(level);
        }
        let inner = word.trim_matches(|c: char| "[]()<>".contains(c));
        let is_time = inner.starts_with(|c: char| c.is_ascii_digit())
            && inner
                .bytes()
                .all(|b| b.is_ascii_digit() || b"-:.,/+TZ".contains(&b));
        let bracketed = word.starts_with('[') && word.ends_with(']');
        if !(is_time || bracketed) {
            return None;
        }
    }
    None
}

/// One word of a prefix as a level: see [`from_prefix`].
fn level_word(word: &str) -> Option<Level> {
    let (open, close) = match word.as_bytes().first() {
        Some(b'[') => ('[', ']'),
        Some(b'<') => ('<', '>'),
        Some(b'(') => ('(', ')'),
        _ => (' ', ' '),
    };
    if open != ' ' {
        let inner = word[1..].split(close).next()?;
        // `[INFO]`, `[info]:` and `<warn>` but not `[info` alone.
        if word[1..].len() == inner.len() {
            return None;
        }
        return Level::from_name(inner.trim());
    }
    // `INFO:`, `WARNING:root:msg`, `error:` / `ERROR`, `WARN`; a trailing `,` or `|`
    // as some formats put after the level.
    let name_end = word
        .bytes()
        .take(10)
        .position(|b| matches!(b, b':' | b',' | b'|'))
        .unwrap_or(word.len());
    let name = &word[..name_end];
    let level = Level::from_name(name)?;
    let colon = word[name_end..].starts_with(':');
    let upper = name.bytes().all(|b| b.is_ascii_uppercase());
    (colon || upper).then_some(level)
}

/// Words split on spaces and tabs, with ANSI colour sequences (`ESC [ ... m`) taken
/// as spaces: a coloured `\x1b[32mINFO\x1b[0m` is the word `INFO`.
struct Words<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Words<'a> {
    fn new(text: &'a str) -> Self {
        Self { text, at: 0 }
    }

    /// Length of a colour sequence at `i`, 0 when there is none.
    fn escape_at(&self, i: usize) -> usize {
        let b = self.text.as_bytes();
        if b.get(i) != Some(&0x1b) || b.get(i + 1) != Some(&b'[') {
            return 0;
        }
        let mut j = i + 2;
        while let Some(c) = b.get(j) {
            if *c == b'm' {
                return j + 1 - i;
            }
            if !(c.is_ascii_digit() || *c == b';') {
                return 0;
            }
            j += 1;
        }
        0
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let b = self.text.as_bytes();
        loop {
            match b.get(self.at) {
                None => return None,
                Some(b' ' | b'\t') => self.at += 1,
                Some(_) => match self.escape_at(self.at) {
                    0 => break,
                    n => self.at += n,
                },
            }
        }
        let start = self.at;
        while let Some(&c) = b.get(self.at) {
            if c == b' ' || c == b'\t' || (c == 0x1b && self.escape_at(self.at) > 0) {
                break;
            }
            self.at += 1;
        }
        Some(&self.text[start..self.at])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lvl(text: &str) -> Option<Level> {
        detect(Stream::Stdout, text)
    }

    #[test]
    fn json_logs() {
        assert_eq!(lvl(r#"{"level":"info","msg":"up"}"#), Some(Level::Info));
        assert_eq!(
            lvl(r#"  {"severity":"WARNING","message":"x"}"#),
            Some(Level::Warn)
        );
        assert_eq!(lvl(r#"{"lvl":"eror","msg":"x"}"#), Some(Level::Error));
        assert_eq!(lvl(r#"{"lvl":"Warn"}"#), Some(Level::Warn));
        assert_eq!(lvl(r#"{"level":"err"}"#), Some(Level::Error));
        assert_eq!(lvl(r#"{"level":"fatal"}"#), Some(Level::Fatal));
        assert_eq!(lvl(r#"{"levelname":"DEBUG"}"#), Some(Level::Debug));
        assert_eq!(lvl(r#"{"log.level":"trace"}"#), Some(Level::Trace));
        // pino / bunyan numbers.
        assert_eq!(
            lvl(r#"{"level":30,"time":1,"pid":7,"msg":"hi"}"#),
            Some(Level::Info)
        );
        assert_eq!(lvl(r#"{"level":40}"#), Some(Level::Warn));
        assert_eq!(lvl(r#"{"level":50}"#), Some(Level::Error));
        assert_eq!(lvl(r#"{"level":60}"#), Some(Level::Fatal));
        assert_eq!(lvl(r#"{"level":10}"#), Some(Level::Trace));
        // A nested `level` is someone else's; not JSON, no level; unknown names.
        assert_eq!(lvl(r#"{"msg":"x","ctx":{"level":"error"}}"#), None);
        assert_eq!(lvl(r#"{"level":"error""#), None);
        assert_eq!(lvl(r#"{"level":"loud"}"#), None);
        assert_eq!(lvl(r#"{"level":0}"#), None);
    }

    #[test]
    fn logfmt() {
        assert_eq!(
            lvl("time=2024-05-01T12:00:00Z level=warn msg=\"slow query\""),
            Some(Level::Warn)
        );
        assert_eq!(lvl("level=info msg=started"), Some(Level::Info));
        assert_eq!(lvl("ts=1 level=\"error\" msg=x"), Some(Level::Error));
        assert_eq!(lvl("t=1 lvl=dbug msg=x"), None, "dbug is not a level name");
        assert_eq!(lvl("t=1 lvl=debug msg=x"), Some(Level::Debug));
        // Keys that only end like one.
        assert_eq!(lvl("requests=10 errors=0 warnings=2"), None);
        assert_eq!(lvl("loglevel=error"), None);
    }

    #[test]
    fn prefixes() {
        let cases = [
            ("ERROR something broke", Level::Error),
            ("WARN disk almost full", Level::Warn),
            ("WARNING: deprecated", Level::Warn),
            ("INFO starting", Level::Info),
            ("DEBUG x=1", Level::Debug),
            ("TRACE enter", Level::Trace),
            ("FATAL out of memory", Level::Fatal),
            ("CRITICAL db gone", Level::Fatal),
            ("[info] listening", Level::Info),
            ("[ERROR] failed", Level::Error),
            ("[Warn]: careful", Level::Warn),
            ("<warn> careful", Level::Warn),
            ("WARNING:root:this is python", Level::Warn),
            ("ERROR:app.db:connection lost", Level::Error),
            (
                "INFO:     Uvicorn running on http://127.0.0.1:8000",
                Level::Info,
            ),
            ("error: could not compile", Level::Error),
            ("warning: unused variable", Level::Warn),
            ("Error: ENOENT", Level::Error),
            // After timestamps, a thread in brackets, colours.
            ("2024-05-01T12:00:00.123Z ERROR api: boom", Level::Error),
            ("2024-05-01 12:00:00,123 WARNING x", Level::Warn),
            ("2024/05/01 12:00:00 [WARN] retrying", Level::Warn),
            ("[2024-05-01 12:00:00] [error] no", Level::Error),
            ("12:00:00.123 [main] INFO com.example.App - up", Level::Info),
            (
                "2024-05-01T12:00:00.000000Z  INFO devenvd: listening",
                Level::Info,
            ),
            (
                "\x1b[2m2024-05-01T12:00:00Z\x1b[0m \x1b[32m INFO\x1b[0m devenvd: up",
                Level::Info,
            ),
            ("\x1b[31mERROR\x1b[0m bad", Level::Error),
            ("  \tWARN indented", Level::Warn),
        ];
        for (text, want) in cases {
            assert_eq!(lvl(text), Some(want), "{text:?}");
        }
    }

    #[test]
    fn no_false_positives() {
        for text in [
            "INFORMATION about the release",
            "errors=0 warnings=0",
            "Errors: none",
            "error handling is done in a later step",
            "info about the user",
            "Warning signs are posted",
            "GET /api/error 200",
            "the ERROR count is 0",
            "[main] something INFO later",
            "connected to db at 10.0.0.1 INFO",
            "",
            "{",
            "[info",
            "WARNINGS: 3",
            "ÉRROR ünicode",
        ] {
            assert_eq!(lvl(text), None, "{text:?}");
        }
    }

    #[test]
    fn streams() {
        assert_eq!(detect(Stream::Stderr, "plain stderr text"), None);
        assert_eq!(
            detect(Stream::Stderr, "ERROR on stderr"),
            Some(Level::Error)
        );
        assert_eq!(detect(Stream::System, "ERROR looks like one"), None);
    }

    #[test]
    fn a_level_word_far_into_a_long_line_is_not_looked_for() {
        let long = format!("{} level=error", "x".repeat(PREFIX_BYTES));
        assert_eq!(lvl(&long), None);
        let multibyte = format!("level=warn {}", "é".repeat(PREFIX_BYTES));
        assert_eq!(lvl(&multibyte), Some(Level::Warn));
    }

    #[test]
    fn names_parse_and_order() {
        assert_eq!("warn".parse::<Level>(), Ok(Level::Warn));
        assert_eq!("WARNING".parse::<Level>(), Ok(Level::Warn));
        assert!("loud".parse::<Level>().is_err());
        assert!(Level::Warn < Level::Error && Level::Trace < Level::Debug);
        for l in Level::ALL {
            assert_eq!(l.as_str().parse::<Level>(), Ok(l));
        }
    }
}
