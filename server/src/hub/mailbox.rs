//! A connection's mailbox: the deliveries the hub queued for it, and the
//! signals that it fell behind or that its user was banned.
//!
//! One allocation per connection, and none for the queue until something
//! is queued: an idle connection keeps about 150 bytes here, where a
//! bounded channel reserved a block of slots and padded counters (about
//! 1 KiB; B1 in BENCHMARKS.md).

use super::Delivery;
use futures_util::task::AtomicWaker;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Poll;
use tokio::sync::Notify;

/// A queue that emptied keeps at most this many slots; a burst's larger
/// buffer is given back.
const KEEP_SLOTS: usize = 16;

/// The queue is full: the connection fell behind.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// Written by the hub, read by one connection.
#[derive(Debug)]
pub struct Mailbox {
    queue: Mutex<VecDeque<Delivery>>,
    /// Most deliveries waiting at once.
    capacity: usize,
    /// The connection's task, waiting for a delivery.
    waiting: AtomicWaker,
    lagged: AtomicBool,
    banned: AtomicBool,
    /// Woken when the connection lagged or was banned.
    signal: Notify,
}

impl Mailbox {
    pub fn new(capacity: usize) -> Mailbox {
        Mailbox {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            waiting: AtomicWaker::new(),
            lagged: AtomicBool::new(false),
            banned: AtomicBool::new(false),
            signal: Notify::new(),
        }
    }

    fn queue(&self) -> MutexGuard<'_, VecDeque<Delivery>> {
        // A panic while holding the lock leaves a queue that is still
        // whole: every operation on it is a single push or pop.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues without waiting; `Full` when `capacity` deliveries wait.
    pub fn offer(&self, delivery: Delivery) -> Result<(), Full> {
        {
            let mut queue = self.queue();
            if queue.len() >= self.capacity {
                return Err(Full);
            }
            queue.push_back(delivery);
        }
        self.waiting.wake();
        Ok(())
    }

    /// The next delivery, if one waits.
    pub fn try_recv(&self) -> Option<Delivery> {
        let mut queue = self.queue();
        let next = queue.pop_front();
        if queue.is_empty() && queue.capacity() > KEEP_SLOTS {
            *queue = VecDeque::new();
        }
        next
    }

    /// Waits for the next delivery. Cancel-safe: a delivery stays queued
    /// until this returns it.
    pub async fn recv(&self) -> Delivery {
        poll_fn(|cx| {
            if let Some(next) = self.try_recv() {
                return Poll::Ready(next);
            }
            self.waiting.register(cx.waker());
            // Queued between the first look and the registration.
            match self.try_recv() {
                Some(next) => Poll::Ready(next),
                None => Poll::Pending,
            }
        })
        .await
    }

    /// Drops whatever waits.
    pub fn clear(&self) {
        *self.queue() = VecDeque::new();
    }

    /// Waits until the connection is marked lagged (and clears the mark)
    /// or banned (which stays).
    pub async fn signalled(&self) {
        loop {
            if self.banned.load(Ordering::Acquire) || self.lagged.swap(false, Ordering::AcqRel) {
                return;
            }
            self.signal.notified().await;
        }
    }

    /// Whether the connection's user was banned: it is to close.
    pub fn is_banned(&self) -> bool {
        self.banned.load(Ordering::Acquire)
    }

    /// Whether the connection is marked lagged and has not noticed yet.
    #[cfg(test)]
    pub fn is_lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }

    pub(super) fn ban(&self) {
        self.banned.store(true, Ordering::Release);
        self.signal.notify_one();
    }

    pub(super) fn raise(&self) {
        self.lagged.store(true, Ordering::Release);
        // notify_one stores a permit when nobody waits, so it is never lost.
        self.signal.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ws::Utf8Bytes;
    use std::sync::Arc;
    use std::time::Duration;

    fn notice(text: &str) -> Delivery {
        Delivery::Notice(Arc::new(Utf8Bytes::from(text.to_string())))
    }

    fn text(delivery: Option<Delivery>) -> Option<String> {
        match delivery {
            Some(Delivery::Notice(frame)) => Some(frame.as_str().to_string()),
            Some(other) => panic!("not a notice: {other:?}"),
            None => None,
        }
    }

    #[test]
    fn deliveries_come_in_order_up_to_the_capacity() {
        let mailbox = Mailbox::new(2);
        assert_eq!(mailbox.offer(notice("a")), Ok(()));
        assert_eq!(mailbox.offer(notice("b")), Ok(()));
        assert_eq!(mailbox.offer(notice("c")), Err(Full));
        assert_eq!(text(mailbox.try_recv()).as_deref(), Some("a"));
        assert_eq!(mailbox.offer(notice("d")), Ok(()));
        assert_eq!(text(mailbox.try_recv()).as_deref(), Some("b"));
        assert_eq!(text(mailbox.try_recv()).as_deref(), Some("d"));
        assert_eq!(text(mailbox.try_recv()), None);
    }

    #[test]
    fn an_idle_mailbox_holds_no_queue_and_a_burst_is_given_back() {
        let mailbox = Mailbox::new(1000);
        assert_eq!(mailbox.queue().capacity(), 0);
        for i in 0..100 {
            assert_eq!(mailbox.offer(notice(&i.to_string())), Ok(()));
        }
        assert!(mailbox.queue().capacity() >= 100);
        while mailbox.try_recv().is_some() {}
        assert_eq!(mailbox.queue().capacity(), 0);
        assert_eq!(mailbox.offer(notice("x")), Ok(()));
        mailbox.clear();
        assert_eq!(text(mailbox.try_recv()), None);
    }

    #[tokio::test]
    async fn a_waiting_receiver_is_woken_by_an_offer() {
        let mailbox = Arc::new(Mailbox::new(8));
        let waiting = tokio::spawn({
            let mailbox = mailbox.clone();
            async move { text(Some(mailbox.recv().await)) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiting.is_finished());
        assert_eq!(mailbox.offer(notice("hi")), Ok(()));
        let got = tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken within a second")
            .expect("the task ran");
        assert_eq!(got.as_deref(), Some("hi"));
    }

    #[tokio::test]
    async fn a_receive_given_up_loses_nothing() {
        let mailbox = Mailbox::new(8);
        // Given up while waiting, as a select! does when another branch wins.
        let gave_up = tokio::time::timeout(Duration::from_millis(10), mailbox.recv()).await;
        assert!(gave_up.is_err());
        assert_eq!(mailbox.offer(notice("kept")), Ok(()));
        let got = tokio::time::timeout(Duration::from_secs(1), mailbox.recv())
            .await
            .expect("delivered");
        assert_eq!(text(Some(got)).as_deref(), Some("kept"));
    }

    #[tokio::test]
    async fn a_lag_is_seen_once_and_a_ban_stays() {
        let mailbox = Mailbox::new(8);
        mailbox.raise();
        tokio::time::timeout(Duration::from_secs(1), mailbox.signalled())
            .await
            .expect("the lag is seen");
        assert!(!mailbox.is_lagged());
        mailbox.ban();
        for _ in 0..2 {
            tokio::time::timeout(Duration::from_secs(1), mailbox.signalled())
                .await
                .expect("the ban is seen every time");
        }
        assert!(mailbox.is_banned());
    }
}
