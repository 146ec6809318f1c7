//! Reading server streams in bursts: take what is already there without waiting, so
//! output can be flushed (or redrawn) only when the stream goes idle.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// Polls `fut` once. `None` when it would wait; dropping it then is fine for
/// cancel-safe futures such as `tonic::Streaming::message`.
pub fn now_or_never<F: Future>(fut: F) -> Option<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(fut).poll(&mut cx) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

/// The next message of `stream`, calling `idle` first when none is ready yet.
pub async fn next_or_idle<T, E>(
    stream: &mut tonic::Streaming<T>,
    idle: impl FnOnce() -> Result<(), E>,
) -> Result<Option<T>, crate::error::CliError>
where
    crate::error::CliError: From<E>,
{
    if let Some(next) = now_or_never(stream.message()) {
        return Ok(next?);
    }
    idle()?;
    Ok(stream.message().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_and_pending() {
        assert_eq!(now_or_never(async { 7 }), Some(7));
        assert_eq!(now_or_never(std::future::pending::<u8>()), None);
    }
}
