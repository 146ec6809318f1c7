//! Lines travel in batches: one allocation of text and a small index per pipe read,
//! shared (behind an `Arc`) by the ring, every follower and the disk writer.

use std::sync::Arc;
use std::time::SystemTime;

use super::{from_unix_nanos, LogLine, Stream, MAX_LINE_BYTES};

/// Lines of one service, in order. Its lines are numbered from `first_seq` by the hub.
#[derive(Debug, Clone)]
pub struct Batch {
    pub service: Arc<str>,
    pub(super) first_seq: u64,
    /// The number of its first line among the service's lines (set by the hub).
    pub(super) first_line: u64,
    text: String,
    lines: Vec<Entry>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// End of the line's text in `Batch::text`; it starts where the previous one ends.
    end: u32,
    stream: Stream,
    /// Unix nanoseconds.
    time: i64,
}

/// A borrowed line of a batch.
#[derive(Debug, Clone, Copy)]
pub struct LineRef<'a> {
    pub seq: u64,
    /// Unix nanoseconds.
    pub time_nanos: i64,
    pub service: &'a Arc<str>,
    pub stream: Stream,
    pub text: &'a str,
}

impl LineRef<'_> {
    pub fn time(&self) -> SystemTime {
        from_unix_nanos(self.time_nanos)
    }

    pub fn to_line(&self) -> LogLine {
        LogLine {
            seq: self.seq,
            time: self.time(),
            service: self.service.clone(),
            stream: self.stream,
            text: self.text.to_string(),
        }
    }
}

impl Batch {
    pub fn new(service: Arc<str>) -> Self {
        Self {
            service,
            first_seq: 0,
            first_line: 0,
            text: String::new(),
            lines: Vec::new(),
        }
    }

    pub fn with_capacity(service: Arc<str>, bytes: usize, lines: usize) -> Self {
        Self {
            service,
            first_seq: 0,
            first_line: 0,
            text: String::with_capacity(bytes),
            lines: Vec::with_capacity(lines),
        }
    }

    /// Appends a line (split if over [`MAX_LINE_BYTES`]; `text` must not hold `\n`).
    pub fn push(&mut self, time_nanos: i64, stream: Stream, text: &str) {
        let mut rest = text;
        loop {
            let cut = floor_char_boundary(rest, MAX_LINE_BYTES);
            let (head, tail) = rest.split_at(cut);
            self.text.push_str(head);
            let end = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
            self.lines.push(Entry {
                end,
                stream,
                time: time_nanos,
            });
            if tail.is_empty() {
                break;
            }
            rest = tail;
        }
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    /// Memory held, roughly: what rings and followers count.
    pub fn bytes(&self) -> usize {
        self.text.capacity() + self.lines.capacity() * std::mem::size_of::<Entry>() + 64
    }

    /// Sequence number one past the last line.
    pub fn end_seq(&self) -> u64 {
        self.first_seq + self.lines.len() as u64
    }

    pub fn get(&self, i: usize) -> LineRef<'_> {
        let e = self.lines[i];
        let start = if i == 0 {
            0
        } else {
            self.lines[i - 1].end as usize
        };
        LineRef {
            seq: self.first_seq + i as u64,
            time_nanos: e.time,
            service: &self.service,
            stream: e.stream,
            text: &self.text[start..e.end as usize],
        }
    }

    /// Lines from index `from` on.
    pub fn iter_from(&self, from: usize) -> impl Iterator<Item = LineRef<'_>> + '_ {
        (from..self.lines.len()).map(move |i| self.get(i))
    }

    /// Number (among the service's lines) one past the last line.
    pub(super) fn end_line(&self) -> u64 {
        self.first_line + self.lines.len() as u64
    }

    /// Moves the times of lines earlier than `min` up to it; returns the last line's
    /// time. The hub numbers lines in the order they reach it; this keeps times in
    /// the same order (a line read from a pipe just before another service's, but
    /// published after it, gets that line's time: nanoseconds to microseconds).
    pub(super) fn raise_times(&mut self, min: i64) -> i64 {
        let mut last = min;
        for e in &mut self.lines {
            e.time = e.time.max(min);
            last = e.time;
        }
        last
    }

    /// Time of the first line, if any.
    pub(super) fn first_time(&self, from: usize) -> Option<i64> {
        self.lines.get(from).map(|e| e.time)
    }
}

/// Splits a byte stream into lines: complete lines go into a batch, an unfinished
/// last line waits for the next chunk (or [`LineSplitter::finish`]).
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    pub fn feed(&mut self, chunk: &[u8], time_nanos: i64, stream: Stream, batch: &mut Batch) {
        let mut rest = chunk;
        if !self.partial.is_empty() {
            match rest.iter().position(|b| *b == b'\n') {
                Some(i) => {
                    self.partial.extend_from_slice(&rest[..i]);
                    emit(&self.partial, time_nanos, stream, batch);
                    self.partial.clear();
                    rest = &rest[i + 1..];
                }
                None => {
                    self.partial.extend_from_slice(rest);
                    self.cut_long(time_nanos, stream, batch);
                    return;
                }
            }
        }
        while let Some(i) = rest.iter().position(|b| *b == b'\n') {
            emit(&rest[..i], time_nanos, stream, batch);
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        self.cut_long(time_nanos, stream, batch);
    }

    /// The unfinished last line, if any, as a line of its own.
    pub fn finish(&mut self, time_nanos: i64, stream: Stream, batch: &mut Batch) {
        if !self.partial.is_empty() {
            emit(&self.partial, time_nanos, stream, batch);
            self.partial.clear();
        }
    }

    /// A line longer than [`MAX_LINE_BYTES`] is emitted in pieces as it arrives.
    fn cut_long(&mut self, time_nanos: i64, stream: Stream, batch: &mut Batch) {
        while self.partial.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            // Back up to the start of a UTF-8 sequence (at most 3 bytes).
            while cut > MAX_LINE_BYTES - 4 && (self.partial[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            emit(&self.partial[..cut], time_nanos, stream, batch);
            self.partial.drain(..cut);
        }
    }
}

fn emit(line: &[u8], time_nanos: i64, stream: Stream, batch: &mut Batch) {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match std::str::from_utf8(line) {
        Ok(s) => batch.push(time_nanos, stream, s),
        Err(_) => batch.push(time_nanos, stream, &String::from_utf8_lossy(line)),
    }
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(b: &Batch) -> Vec<String> {
        b.iter_from(0).map(|l| l.text.to_string()).collect()
    }

    #[test]
    fn splits_lines_across_chunks() {
        let mut s = LineSplitter::default();
        let mut b = Batch::new("a".into());
        s.feed(b"one\ntw", 1, Stream::Stdout, &mut b);
        s.feed(b"o\r\n\nthr", 2, Stream::Stdout, &mut b);
        assert_eq!(texts(&b), ["one", "two", ""]);
        s.finish(3, Stream::Stdout, &mut b);
        assert_eq!(texts(&b), ["one", "two", "", "thr"]);
        assert_eq!(b.get(3).time_nanos, 3);
    }

    #[test]
    fn long_lines_are_split_on_char_boundaries() {
        let mut b = Batch::new("a".into());
        b.push(0, Stream::Stdout, &"é".repeat(MAX_LINE_BYTES));
        assert_eq!(b.len(), 2);
        assert!(b.iter_from(0).all(|l| l.text.len() <= MAX_LINE_BYTES));

        let mut s = LineSplitter::default();
        let mut b = Batch::new("a".into());
        let long = "é".repeat(MAX_LINE_BYTES);
        for chunk in long.as_bytes().chunks(1000) {
            s.feed(chunk, 0, Stream::Stdout, &mut b);
        }
        s.finish(0, Stream::Stdout, &mut b);
        let joined: String = b.iter_from(0).map(|l| l.text).collect();
        assert_eq!(joined, long);
        assert!(b.iter_from(0).all(|l| l.text.len() <= MAX_LINE_BYTES));
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let mut s = LineSplitter::default();
        let mut b = Batch::new("a".into());
        s.feed(b"ok \xff\n", 0, Stream::Stderr, &mut b);
        assert_eq!(texts(&b), ["ok \u{fffd}"]);
        assert_eq!(b.get(0).stream, Stream::Stderr);
    }
}
