//! The on-disk form of log segments, and reading them back: a line is
//! `<unix nanos> <o|e|s> <text>\n`; text never holds `\n` (lines are split on it), so
//! any text survives. A torn last line (crash or failed write mid-line) is skipped.
//! Each batch is preceded by a mark `#<seq> <line>\n`: the hub's sequence number of
//! its first line and that line's number among the service's lines, so a follower
//! can find its place on disk and rejoin memory exactly (segments written before
//! marks existed have none: their lines read back without a place, and readers of
//! older versions skip marks as unparsable lines). Files and directories are named
//! here too.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{from_unix_nanos, LogLine, Stream};

/// Segment files to read, oldest first, with how much of each: a snapshot of the
/// store's state that can be read without its lock.
#[derive(Debug, Clone)]
pub(in crate::logs) struct ReadPlan {
    service: Arc<str>,
    files: Vec<(PathBuf, u64)>,
}

impl ReadPlan {
    pub(super) fn new(service: Arc<str>, files: Vec<(PathBuf, u64)>) -> Self {
        Self { service, files }
    }
}

impl ReadPlan {
    /// Reads lines back, newest segment first (each segment's lines in order), at
    /// most `max_bytes` from the end; `visit` returns false to stop.
    pub fn read_back(&self, max_bytes: u64, mut visit: impl FnMut(Vec<LogLine>) -> bool) {
        self.read_back_parsed(max_bytes, |lines| {
            visit(lines.into_iter().map(|p| p.line).collect())
        });
    }

    /// [`Self::read_back`] with each line's place, where known.
    pub fn read_back_parsed(&self, max_bytes: u64, mut visit: impl FnMut(Vec<Parsed>) -> bool) {
        let mut budget = max_bytes;
        for (path, len) in self.files.iter().rev() {
            if budget == 0 {
                return;
            }
            let take = (*len).min(budget);
            budget -= take;
            let data = match read_range(path, len - take, take) {
                Ok(d) => d,
                // Deleted by rotation meanwhile: older lines are gone.
                Err(e) if e.kind() == io::ErrorKind::NotFound => return,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "reading a log segment");
                    return;
                }
            };
            // Started mid-file: the first (partial) line is not ours to parse.
            let data = if take < *len {
                match data.iter().position(|b| *b == b'\n') {
                    Some(i) => &data[i + 1..],
                    None => &[][..],
                }
            } else {
                &data[..]
            };
            if !visit(parse(&self.service, data)) {
                return;
            }
        }
    }
}

fn read_range(path: &Path, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut data = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut data)?;
    Ok(data)
}

/// A line read back, with its number among the service's lines when a mark before
/// it says (its sequence number is in `line.seq`, 0 when unknown).
#[derive(Debug, Clone)]
pub(in crate::logs) struct Parsed {
    pub line: LogLine,
    pub line_no: Option<u64>,
}

/// The complete lines of `data` (a torn last line has no `\n` and is left out).
pub(super) fn parse(service: &Arc<str>, data: &[u8]) -> Vec<Parsed> {
    let complete = data
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(&[][..], |i| &data[..i]);
    let mut lines = Vec::new();
    let mut place = None;
    parse_into(service, complete, &mut place, &mut lines);
    lines
}

/// Parses whole lines (`data` without its last `\n`), numbering them from `place`
/// (the next line's `(seq, line)`, set by marks).
pub(super) fn parse_into(
    service: &Arc<str>,
    data: &[u8],
    place: &mut Option<(u64, u64)>,
    out: &mut Vec<Parsed>,
) {
    for raw in data.split(|b| *b == b'\n') {
        if let Some(mark) = raw.strip_prefix(b"#") {
            *place = parse_mark(mark);
            continue;
        }
        if let Some(mut line) = parse_line(service, raw) {
            let line_no = place.map(|(seq, no)| {
                line.seq = seq;
                *place = Some((seq + 1, no + 1));
                no
            });
            out.push(Parsed { line, line_no });
        }
    }
}

fn parse_mark(mark: &[u8]) -> Option<(u64, u64)> {
    let s = std::str::from_utf8(mark).ok()?;
    let (seq, line) = s.split_once(' ')?;
    Some((seq.parse().ok()?, line.parse().ok()?))
}

/// The mark written before a batch whose first line is `seq`, the service's `line`th.
pub(super) fn mark(seq: u64, line: u64) -> String {
    format!("#{seq} {line}\n")
}

/// The mark at the start of a segment file: the place of its first line.
pub(super) fn first_mark(path: &Path) -> Option<(u64, u64)> {
    let mut head = [0u8; 64];
    let mut f = File::open(path).ok()?;
    let n = f.read(&mut head).ok()?;
    let head = &head[..n];
    let end = head.iter().position(|b| *b == b'\n')?;
    parse_mark(head[..end].strip_prefix(b"#")?)
}

/// The first line of a segment file (for the oldest retained line's time).
pub(in crate::logs) fn first_line(service: &Arc<str>, path: &Path) -> Option<LogLine> {
    let data = read_range(path, 0, 64 * 1024 + 64).ok()?;
    parse(service, &data).into_iter().next().map(|p| p.line)
}

fn parse_line(service: &Arc<str>, raw: &[u8]) -> Option<LogLine> {
    let sp = raw.iter().position(|b| *b == b' ')?;
    let time: i64 = std::str::from_utf8(&raw[..sp]).ok()?.parse().ok()?;
    let rest = &raw[sp + 1..];
    let stream = Stream::from_code(*rest.first()?)?;
    if rest.get(1) != Some(&b' ') {
        return None;
    }
    let text = String::from_utf8_lossy(&rest[2..]).into_owned();
    Some(LogLine {
        seq: 0,
        time: from_unix_nanos(time),
        service: service.clone(),
        stream,
        text,
    })
}

pub(super) fn segment_name(index: u64) -> String {
    format!("{index:08}.log")
}

/// Service names are DNS labels; anything else is escaped to stay one path component.
pub(super) fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

pub(super) fn decode_name(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A stable directory name for an environment id (FNV-1a, 64 bits).
pub(super) fn env_dir_name(id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub(super) fn itoa_buf() -> [u8; 20] {
    [0; 20]
}

/// Decimal digits of a non-negative `n` (negative times are written as 0).
pub(super) fn format_i64(buf: &mut [u8; 20], n: i64) -> &[u8] {
    let mut n = u64::try_from(n).unwrap_or(0);
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}
