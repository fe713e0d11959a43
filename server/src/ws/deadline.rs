//! A time bound on every write to a socket: a client that stops reading
//! (a zero TCP window) makes writes wait; past the bound the write fails,
//! and the connection ends like any other that failed. Without it a stuck
//! write would hold the connection, its buffers, its heartbeat and the
//! server's shutdown.

use axum::extract::ws::Message;
use futures_util::Sink;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::Sleep;

/// A write waited longer than the bound.
#[derive(Debug, thiserror::Error)]
#[error("the client took no data for {0:?}")]
struct WriteTimeout(Duration);

/// A sink whose readiness, flushes and close each wait at most `limit`.
pub(super) struct Deadline<S> {
    inner: S,
    limit: Duration,
    /// Started when a write first has to wait; cleared when it goes on.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Deadline<S> {
    pub(super) fn new(inner: S, limit_secs: u64) -> Self {
        Deadline {
            inner,
            limit: Duration::from_secs(limit_secs.max(1)),
            timer: None,
        }
    }

    fn bound(
        &mut self,
        poll: Poll<Result<(), axum::Error>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), axum::Error>> {
        if poll.is_ready() {
            self.timer = None;
            return poll;
        }
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        if timer.as_mut().poll(cx).is_ready() {
            self.timer = None;
            return Poll::Ready(Err(axum::Error::new(WriteTimeout(limit))));
        }
        Poll::Pending
    }
}

impl<S: Sink<Message, Error = axum::Error> + Unpin> Sink<Message> for Deadline<S> {
    type Error = axum::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_ready(cx);
        this.bound(poll, cx)
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
        Pin::new(&mut self.get_mut().inner).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_flush(cx);
        this.bound(poll, cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_close(cx);
        this.bound(poll, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::SinkExt;

    /// A sink that never takes anything.
    struct Stuck;

    impl Sink<Message> for Stuck {
        type Error = axum::Error;
        fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
            Poll::Pending
        }
        fn start_send(self: Pin<&mut Self>, _: Message) -> Result<(), axum::Error> {
            Ok(())
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
            Poll::Pending
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
            Poll::Pending
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_never_takes_fails_after_the_bound() {
        let mut sink = Deadline::new(Stuck, 3);
        let started = tokio::time::Instant::now();
        let sent = sink.send(Message::Text("hi".into())).await;
        assert!(sent.is_err(), "a stuck write must fail");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        // The next write gets its own full bound.
        let started = tokio::time::Instant::now();
        assert!(sink.close().await.is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
