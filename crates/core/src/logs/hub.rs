//! The log hub: every service writes lines here, every client reads from here.
//!
//! Memory is bounded: each service keeps a ring of recent lines, and followers get
//! lines through a bounded broadcast channel. A follower that falls behind is told
//! how many lines it missed instead of slowing the producer down.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::broadcast;

/// Lines kept in memory per service.
pub const RING_LINES: usize = 10_000;
/// Lines buffered for each follower before it starts missing lines.
pub const FOLLOW_BUFFER: usize = 16_384;
/// Longer lines are split: one runaway line must not hold unbounded memory.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// Written by devenv about the service (started, exited, ...).
    System,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    pub time: SystemTime,
    pub service: Arc<str>,
    pub stream: Stream,
    pub text: String,
}

/// What a follower receives.
#[derive(Debug, Clone)]
pub enum Received {
    Line(Arc<LogLine>),
    /// The follower was too slow and this many lines went past it.
    Missed(u64),
}

/// One environment's logs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogHub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rings: Mutex<HashMap<Arc<str>, VecDeque<Arc<LogLine>>>>,
    tx: broadcast::Sender<Arc<LogLine>>,
}

impl Default for LogHub {
    fn default() -> Self {
        Self::new()
    }
}

impl LogHub {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(FOLLOW_BUFFER);
        Self { inner: Arc::new(Inner { rings: Mutex::default(), tx }) }
    }

    /// Appends a line (split if over [`MAX_LINE_BYTES`]). Never blocks on readers.
    pub fn push(&self, service: &Arc<str>, stream: Stream, text: &str) {
        let mut rest = text;
        loop {
            let cut = floor_char_boundary(rest, MAX_LINE_BYTES);
            let (head, tail) = rest.split_at(cut);
            self.push_one(service, stream, head.to_string());
            if tail.is_empty() {
                break;
            }
            rest = tail;
        }
    }

    fn push_one(&self, service: &Arc<str>, stream: Stream, text: String) {
        let line = Arc::new(LogLine { time: SystemTime::now(), service: service.clone(), stream, text });
        {
            let mut rings = self.inner.rings.lock().unwrap_or_else(|p| p.into_inner());
            let ring = rings.entry(service.clone()).or_default();
            if ring.len() == RING_LINES {
                ring.pop_front();
            }
            ring.push_back(line.clone());
        }
        // No receivers is fine: nobody is following.
        let _ = self.inner.tx.send(line);
    }

    /// Retained lines of the given services (all when empty), merged in time order,
    /// newer than `since`, the last `tail` of them (0 = all).
    pub fn snapshot(&self, services: &[String], since: Option<SystemTime>, tail: usize) -> Vec<Arc<LogLine>> {
        let rings = self.inner.rings.lock().unwrap_or_else(|p| p.into_inner());
        let mut lines: Vec<Arc<LogLine>> = rings
            .iter()
            .filter(|(name, _)| services.is_empty() || services.iter().any(|s| s.as_str() == &***name))
            .flat_map(|(_, ring)| ring.iter())
            .filter(|l| since.is_none_or(|s| l.time >= s))
            .cloned()
            .collect();
        drop(rings);
        lines.sort_by_key(|l| l.time);
        if tail > 0 && lines.len() > tail {
            lines.drain(..lines.len() - tail);
        }
        lines
    }

    /// The last `n` output lines of one service (for failure reports).
    pub fn last_lines(&self, service: &str, n: usize) -> Vec<String> {
        let lines: Vec<String> = self
            .snapshot(&[service.to_string()], None, 0)
            .iter()
            .filter(|l| l.stream != Stream::System)
            .map(|l| l.text.clone())
            .collect();
        lines[lines.len().saturating_sub(n)..].to_vec()
    }

    /// Lines pushed from now on. Subscribe before taking a snapshot to miss nothing
    /// (and drop lines older than the snapshot's last one).
    pub fn follow(&self) -> Follower {
        Follower { rx: self.inner.tx.subscribe() }
    }
}

#[derive(Debug)]
pub struct Follower {
    rx: broadcast::Receiver<Arc<LogLine>>,
}

impl Follower {
    /// Next line or a missed-lines marker; `None` when the hub is gone.
    pub async fn recv(&mut self) -> Option<Received> {
        match self.rx.recv().await {
            Ok(line) => Some(Received::Line(line)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Received::Missed(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
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

    #[test]
    fn ring_is_bounded_and_tail_works() {
        let hub = LogHub::new();
        let svc: Arc<str> = Arc::from("api");
        for i in 0..RING_LINES + 10 {
            hub.push(&svc, Stream::Stdout, &format!("line {i}"));
        }
        let all = hub.snapshot(&[], None, 0);
        assert_eq!(all.len(), RING_LINES);
        assert_eq!(all[0].text, "line 10");
        let tail = hub.snapshot(&["api".into()], None, 3);
        assert_eq!(tail.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["line 10007", "line 10008", "line 10009"]);
    }

    #[test]
    fn long_lines_are_split() {
        let hub = LogHub::new();
        let svc: Arc<str> = Arc::from("a");
        hub.push(&svc, Stream::Stdout, &"é".repeat(MAX_LINE_BYTES));
        let lines = hub.snapshot(&[], None, 0);
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l.text.len() <= MAX_LINE_BYTES));
    }

    #[tokio::test]
    async fn slow_follower_gets_missed_marker() {
        let hub = LogHub::new();
        let svc: Arc<str> = Arc::from("a");
        let mut f = hub.follow();
        for i in 0..FOLLOW_BUFFER + 5 {
            hub.push(&svc, Stream::Stdout, &i.to_string());
        }
        match f.recv().await {
            Some(Received::Missed(n)) => assert_eq!(n, 5),
            other => panic!("expected a missed marker, got {other:?}"),
        }
        match f.recv().await {
            Some(Received::Line(l)) => assert_eq!(l.text, "5"),
            other => panic!("expected line 5, got {other:?}"),
        }
    }
}
