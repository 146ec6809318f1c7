//! Reading lines of bounded length from a peer we don't trust (the receiver in a pod,
//! an `onSync` command): `AsyncBufReadExt::lines` grows its buffer until a newline
//! comes, so one endless line from a broken or hostile pod would take the daemon's
//! memory with it. Here a line is kept up to a cap and the caller decides what a
//! longer one means; its remainder is skipped without being stored.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One line read by [`read_line`] (without its newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// The whole line (the last one may lack its newline).
    Full(Vec<u8>),
    /// The line's first `max` bytes: it is longer. The rest is still unread; call
    /// [`skip_line`] to discard it.
    Long(Vec<u8>),
}

/// Reads one line of at most `max` bytes; `None` at the end of the stream.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Option<Line>> {
    let mut line = Vec::new();
    let mut any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(any.then_some(Line::Full(line)));
        }
        any = true;
        let newline = available.iter().position(|b| *b == b'\n');
        let end = newline.unwrap_or(available.len());
        let room = max - line.len();
        if end > room {
            line.extend_from_slice(&available[..room]);
            reader.consume(room);
            return Ok(Some(Line::Long(line)));
        }
        line.extend_from_slice(&available[..end]);
        match newline {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(Some(Line::Full(line)));
            }
            None => {
                let n = available.len();
                reader.consume(n);
            }
        }
    }
}

/// Discards the rest of the current line, newline included; returns the bytes skipped.
pub async fn skip_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> std::io::Result<u64> {
    let mut skipped = 0u64;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(skipped);
        }
        match available.iter().position(|b| *b == b'\n') {
            Some(i) => {
                reader.consume(i + 1);
                return Ok(skipped + i as u64);
            }
            None => {
                let n = available.len();
                skipped += n as u64;
                reader.consume(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncRead, BufReader};

    /// A reader yielding `n` bytes of `x` without a newline, then `tail`: an endless
    /// line, produced on the fly so the test itself stays small.
    struct Endless {
        left: u64,
        tail: &'static [u8],
    }

    impl AsyncRead for Endless {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.left > 0 {
                let n = (buf.remaining() as u64).min(self.left) as usize;
                buf.put_slice(&vec![b'x'; n]);
                self.left -= n as u64;
            } else {
                let n = buf.remaining().min(self.tail.len());
                buf.put_slice(&self.tail[..n]);
                self.tail = &self.tail[n..];
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn lines_are_capped_and_the_rest_skipped() {
        let mut r = BufReader::new(&b"short\nlonger line\nend"[..]);
        assert_eq!(
            read_line(&mut r, 8).await.unwrap(),
            Some(Line::Full(b"short".to_vec()))
        );
        assert_eq!(
            read_line(&mut r, 8).await.unwrap(),
            Some(Line::Long(b"longer l".to_vec()))
        );
        assert_eq!(skip_line(&mut r).await.unwrap(), 3);
        assert_eq!(
            read_line(&mut r, 8).await.unwrap(),
            Some(Line::Full(b"end".to_vec()))
        );
        assert_eq!(read_line(&mut r, 8).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_64_mib_line_is_skipped_in_constant_memory() {
        let mut r = BufReader::with_capacity(
            64 * 1024,
            Endless {
                left: 64 << 20,
                tail: b"\nA 1\n",
            },
        );
        match read_line(&mut r, 1024).await.unwrap() {
            Some(Line::Long(l)) => assert_eq!(l.len(), 1024),
            other => panic!("{other:?}"),
        }
        assert_eq!(skip_line(&mut r).await.unwrap(), (64 << 20) - 1024);
        assert_eq!(
            read_line(&mut r, 1024).await.unwrap(),
            Some(Line::Full(b"A 1".to_vec()))
        );
    }
}
