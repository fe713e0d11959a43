//! A time bound on every write to a socket: a client that stops reading
//! (a zero TCP window) makes writes wait; past the bound the write fails,
//! and the connection ends like any other that failed. Without it a stuck
//! write would hold the connection, its buffers, its heartbeat and the
//! server's shutdown. Once the server is stopping, a write waits at most
//! [`STOPPING_GRACE`] more, whatever the bound: a client that stopped
//! reading never holds a restart up for the whole bound.

use axum::extract::ws::Message;
use futures_util::Sink;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// How long a write that waits may go on once the server is stopping.
pub(super) const STOPPING_GRACE: Duration = Duration::from_secs(1);

/// A write waited longer than it may.
#[derive(Debug, thiserror::Error)]
enum WriteTimeout {
    #[error("the client took no data for {0:?}")]
    Bound(Duration),
    #[error("the server is stopping and the client took no data")]
    Stopping,
}

/// A sink whose readiness, flushes and close each wait at most `limit`,
/// and at most [`STOPPING_GRACE`] once `stopping` is cancelled.
pub(super) struct Deadline<S> {
    inner: S,
    limit: Duration,
    stopping: CancellationToken,
    /// Started when a write first has to wait; cleared when it goes on.
    /// Boxed, so that an idle connection holds one pointer for it.
    wait: Option<Pin<Box<Wait>>>,
}

pin_project_lite::pin_project! {
    /// What a waiting write watches: its bound, and the server stopping
    /// (until it did, and the bound was brought closer).
    struct Wait {
        #[pin]
        timer: Sleep,
        #[pin]
        stopping: WaitForCancellationFutureOwned,
        stopped: bool,
    }
}

impl Wait {
    /// Why the write may wait no longer, once it may not; brings the
    /// bound within [`STOPPING_GRACE`] when the server begins to stop.
    fn expired(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        limit: Duration,
    ) -> Option<WriteTimeout> {
        let mut this = self.project();
        if !*this.stopped && this.stopping.as_mut().poll(cx).is_ready() {
            *this.stopped = true;
            let soon = Instant::now() + STOPPING_GRACE;
            if this.timer.deadline() > soon {
                this.timer.as_mut().reset(soon);
            }
        }
        if this.timer.poll(cx).is_pending() {
            None
        } else if *this.stopped {
            Some(WriteTimeout::Stopping)
        } else {
            Some(WriteTimeout::Bound(limit))
        }
    }
}

impl<S> Deadline<S> {
    pub(super) fn new(inner: S, limit_secs: u64, stopping: CancellationToken) -> Self {
        Deadline {
            inner,
            limit: Duration::from_secs(limit_secs.max(1)),
            stopping,
            wait: None,
        }
    }

    fn bound(
        &mut self,
        poll: Poll<Result<(), axum::Error>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), axum::Error>> {
        if poll.is_ready() {
            self.wait = None;
            return poll;
        }
        let (limit, stopping) = (self.limit, &self.stopping);
        let wait = self.wait.get_or_insert_with(|| {
            Box::pin(Wait {
                timer: tokio::time::sleep(limit),
                stopping: stopping.clone().cancelled_owned(),
                stopped: false,
            })
        });
        if let Some(why) = wait.as_mut().expired(cx, limit) {
            self.wait = None;
            return Poll::Ready(Err(axum::Error::new(why)));
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
        let mut sink = Deadline::new(Stuck, 3, CancellationToken::new());
        let started = tokio::time::Instant::now();
        let sent = sink.send(Message::Text("hi".into())).await;
        assert!(sent.is_err(), "a stuck write must fail");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        // The next write gets its own full bound.
        let started = tokio::time::Instant::now();
        assert!(sink.close().await.is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopping_server_gives_a_waiting_write_one_grace_more() {
        let stopping = CancellationToken::new();
        let mut sink = Deadline::new(Stuck, 30, stopping.clone());
        let started = tokio::time::Instant::now();
        let stop = stopping.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            stop.cancel();
        });
        let sent = sink.send(Message::Text("hi".into())).await;
        let err = sent.expect_err("a stuck write must fail");
        assert!(err.to_string().contains("stopping"), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(2) + STOPPING_GRACE);
        // Writes begun after the stop wait no longer than the grace.
        let started = tokio::time::Instant::now();
        assert!(sink.close().await.is_err());
        assert_eq!(started.elapsed(), STOPPING_GRACE);
        // A bound shorter than the grace stays the bound.
        let mut short = Deadline::new(Stuck, 1, stopping);
        let started = tokio::time::Instant::now();
        assert!(short.flush().await.is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(1));
    }
}
