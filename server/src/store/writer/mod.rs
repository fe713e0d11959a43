//! Group commit: every write that takes a room's next seq (messages,
//! members joining and leaving) goes through one writer task, which
//! commits whatever has queued up — up to `batch_max` writes — in ONE
//! transaction. Throughput is then not one fsync per message.
//!
//! Inside the transaction ([`batch`]) the batch's rooms are locked and
//! their counters read in one statement, its memberships and earlier
//! sends looked up in one statement each; every write is decided in
//! memory, then the new events are inserted and the counters written in
//! a few multi-row statements ([`sql`]): seqs commit in order, gap-free,
//! never from AUTO_INCREMENT.
//! Only after commit are callers answered and events published, in seq
//! order. Publishing is a callback the writer is handed (`lib.rs` wires
//! it to the hub), so storage knows nothing of fan-out.
//!
//! If a batch hits a database error, it is rolled back and each write is
//! retried alone, so one bad write never fails its neighbours.

mod batch;
mod known;
mod sql;

use known::Known;

use super::{Store, StoreError};
use crate::metrics::{self, Metrics};
use natter_shared::protocol::Body;
use natter_shared::{ClientId, Event, RoomId, SiteId, UserId};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

/// A write that takes a seq.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// A message from a member, or from the system when `sender` is `None`.
    Message {
        site: SiteId,
        room: RoomId,
        sender: Option<UserId>,
        client_id: Option<ClientId>,
        body: Body,
    },
    /// `user` joins a group room.
    Join {
        site: SiteId,
        room: RoomId,
        user: UserId,
    },
    /// `user` leaves a room.
    Leave {
        site: SiteId,
        room: RoomId,
        user: UserId,
    },
}

impl WriteOp {
    /// The site the write belongs to.
    pub fn site(&self) -> &SiteId {
        match self {
            WriteOp::Message { site, .. }
            | WriteOp::Join { site, .. }
            | WriteOp::Leave { site, .. } => site,
        }
    }
}

/// A committed write.
#[derive(Debug, Clone)]
pub struct Written {
    pub event: Event,
    /// The write repeated an earlier one (same client id): `event` is the
    /// one stored then, and nothing new was published.
    pub duplicate: bool,
}

type Reply = oneshot::Sender<Result<Written, StoreError>>;

/// The handle that submits writes; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<(WriteOp, Reply)>,
}

/// The writer task's capacity for queued writes. Past it submitters wait,
/// which slows the busiest connections first instead of growing memory.
const QUEUE: usize = 8192;

impl Writer {
    /// Starts the writer task. Each new event is handed to `publish` after
    /// its commit, in seq order (a repeated send is not published again).
    /// The task stops taking writes when `stop` fires, commits what is
    /// queued, then ends.
    pub fn spawn(
        store: Store,
        publish: impl Fn(&SiteId, &Event) + Send + 'static,
        metrics: Arc<Metrics>,
        batch_max: usize,
        stop: CancellationToken,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(store, publish, metrics, rx, batch_max.max(1), stop));
        (Writer { tx }, task)
    }

    /// Queues a write; the receiver answers after commit.
    pub async fn submit(
        &self,
        op: WriteOp,
    ) -> Result<oneshot::Receiver<Result<Written, StoreError>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((op, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    /// Queues a write and waits for its commit.
    pub async fn write(&self, op: WriteOp) -> Result<Written, StoreError> {
        self.submit(op)
            .await?
            .await
            .map_err(|_| StoreError::Closed)?
    }
}

async fn run(
    store: Store,
    publish: impl Fn(&SiteId, &Event),
    metrics: Arc<Metrics>,
    mut rx: mpsc::Receiver<(WriteOp, Reply)>,
    batch_max: usize,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(batch_max);
    let mut known = Known::for_backend(store.backend());
    loop {
        let got = tokio::select! {
            got = rx.recv_many(&mut batch, batch_max) => got,
            _ = stop.cancelled() => {
                // Refuse new writes, then commit the ones already queued.
                rx.close();
                rx.recv_many(&mut batch, batch_max).await
            }
        };
        if got == 0 {
            break;
        }
        let ops: Vec<&WriteOp> = batch.iter().map(|(op, _)| op).collect();
        let results = commit(&store, &mut known, &ops).await;
        metrics::inc(&metrics.commits);
        for ((op, reply), result) in batch.drain(..).zip(results) {
            match &result {
                Ok(written) if written.duplicate => metrics::inc(&metrics.duplicates),
                Ok(written) => {
                    metrics::inc(&metrics.events_committed);
                    publish(op.site(), &written.event);
                }
                Err(_) => {}
            }
            // The caller may have gone (connection closed); the write stands.
            let _ = reply.send(result);
        }
    }
    tracing::debug!("writer stopped");
}

/// Commits a batch, falling back to one transaction per write on error.
async fn commit(
    store: &Store,
    known: &mut Known,
    ops: &[&WriteOp],
) -> Vec<Result<Written, StoreError>> {
    match batch::try_commit(store, known, ops).await {
        Ok(results) => results,
        Err(err) if ops.len() == 1 => vec![Err(err)],
        Err(err) => {
            tracing::warn!(error = %err, writes = ops.len(), "batch failed; retrying writes one by one");
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                results.push(match batch::try_commit(store, known, &[op]).await {
                    Ok(mut one) => one.pop().unwrap_or(Err(StoreError::Closed)),
                    Err(err) => Err(err),
                });
            }
            results
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_shared::Member;
    use std::sync::Mutex;

    fn user(id: &str) -> UserId {
        UserId::parse(id).expect("a user id")
    }

    fn message(site: &SiteId, room: &RoomId, n: u128) -> WriteOp {
        WriteOp::Message {
            site: site.clone(),
            room: room.clone(),
            sender: Some(user("a")),
            client_id: Some(ClientId::from_uuid(uuid::Uuid::from_u128(n))),
            body: Body::parse(format!("m{n}"), 100).expect("a body"),
        }
    }

    #[tokio::test]
    async fn events_are_published_after_commit_in_seq_order_and_repeats_are_not() {
        let path = std::env::temp_dir().join(format!("natter-writer-{}.db", uuid::Uuid::now_v7()));
        let store = Store::connect(&format!("sqlite://{}", path.display()), 2)
            .await
            .expect("a store");
        let site = store
            .create_site(None, "s", &[])
            .await
            .expect("a site")
            .site
            .id;
        let member = |id: &str| Member {
            id: user(id),
            name: None,
        };
        let (room, _) = store
            .open_dialog(&site, &member("a"), &member("b"))
            .await
            .expect("a dialog");
        let published = Arc::new(Mutex::new(Vec::new()));
        let seen = published.clone();
        let publish = move |_: &SiteId, event: &Event| {
            seen.lock().expect("not poisoned").push(event.seq);
        };
        let stop = CancellationToken::new();
        let (writer, task) =
            Writer::spawn(store.clone(), publish, Default::default(), 8, stop.clone());

        // Queued together, so that they share batches.
        let mut replies = Vec::new();
        for n in 1..=20 {
            replies.push(
                writer
                    .submit(message(&site, &room.id, n))
                    .await
                    .expect("queued"),
            );
        }
        for (n, reply) in (1..=20).zip(replies) {
            let written = reply.await.expect("answered").expect("committed");
            assert_eq!(written.event.seq, n);
            // Answered after commit: the event is already published.
            assert!(published.lock().expect("not poisoned").contains(&n));
        }
        let again = writer
            .write(message(&site, &room.id, 5))
            .await
            .expect("committed");
        assert!(again.duplicate);
        assert_eq!(again.event.seq, 5);

        stop.cancel();
        task.await.expect("the writer ends");
        assert_eq!(
            *published.lock().expect("not poisoned"),
            (1..=20).collect::<Vec<u64>>()
        );
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            // Best effort: a leftover temp file harms nothing.
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
