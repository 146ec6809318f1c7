//! The session's readers: the receiver's replies, each line bounded, into a bounded
//! channel of [`Event`]s, and its stderr into the daemon's log and the last lines kept
//! for error messages.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::lines::{read_line, skip_line, Line};
use super::receiver::Reply;

/// Last receiver stderr lines kept for error messages.
const STDERR_LINES: usize = 20;
/// The longest reply line kept: a listing line holds a path and a symlink target (a
/// few KiB at most); a longer line is cut (and its rest skipped unread) whatever the
/// pod sends.
pub(crate) const LINE_MAX: usize = 16 * 1024;
/// Receiver stderr lines written to the daemon's log per session, at most.
const STDERR_LOGGED: usize = 100;
/// The longest stderr line kept for messages.
const STDERR_LINE_MAX: usize = 1024;

pub(super) enum Event {
    Reply(Reply),
    Garbage(String),
    /// A reply line longer than [`LINE_MAX`] that is not a listing line.
    TooLong(String),
    Closed,
}

/// Reads the receiver's replies, each line at most [`LINE_MAX`] bytes kept, into a
/// bounded channel (a flood waits in the pod, not in the daemon's memory).
pub(super) async fn read_replies(
    stdout: Box<dyn AsyncRead + Send + Unpin>,
    tx: mpsc::Sender<Event>,
    closed: CancellationToken,
) {
    let _closed = closed.drop_guard();
    let mut reader = BufReader::with_capacity(64 * 1024, stdout);
    loop {
        let event = match read_line(&mut reader, LINE_MAX).await {
            Ok(Some(Line::Full(line))) => match Reply::parse_bytes(&line) {
                Some(r) => Event::Reply(r),
                None => Event::Garbage(shown(&line)),
            },
            Ok(Some(Line::Long(start))) => {
                let event = match Reply::parse_bytes(&start) {
                    // A path too long to keep: left alone like one that is not UTF-8.
                    Some(Reply::Listing(_) | Reply::Opaque(_)) => {
                        Event::Reply(Reply::Opaque(start))
                    }
                    _ => Event::TooLong(shown(&start)),
                };
                match skip_line(&mut reader).await {
                    Ok(_) => event,
                    Err(_) => Event::Closed,
                }
            }
            Ok(None) | Err(_) => Event::Closed,
        };
        let closed = matches!(event, Event::Closed);
        if tx.send(event).await.is_err() || closed {
            return;
        }
    }
}

/// The start of a line, for a message.
fn shown(line: &[u8]) -> String {
    String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned()
}

pub(super) async fn read_stderr(
    stderr: Box<dyn AsyncRead + Send + Unpin>,
    pod: String,
    keep: Arc<Mutex<VecDeque<String>>>,
) {
    let mut reader = BufReader::new(stderr);
    // The daemon's log gets the first lines; a receiver that keeps talking does not
    // fill the disk (the last lines are still kept for error messages).
    let mut logged = 0usize;
    loop {
        let line = match read_line(&mut reader, STDERR_LINE_MAX).await {
            Ok(Some(Line::Full(line))) => String::from_utf8_lossy(&line).into_owned(),
            Ok(Some(Line::Long(start))) => {
                if skip_line(&mut reader).await.is_err() {
                    return;
                }
                format!("{}...", String::from_utf8_lossy(&start))
            }
            Ok(None) | Err(_) => return,
        };
        if logged < STDERR_LOGGED {
            logged += 1;
            tracing::warn!(pod = %pod, "sync receiver: {line}");
        } else if logged == STDERR_LOGGED {
            logged += 1;
            tracing::warn!(pod = %pod, "sync receiver: more stderr lines, not logged");
        }
        let mut keep = keep.lock().unwrap_or_else(|p| p.into_inner());
        if keep.len() == STDERR_LINES {
            keep.pop_front();
        }
        keep.push_back(line);
    }
}
