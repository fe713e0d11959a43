//! Group commit: every write that takes a room's next seq (messages,
//! members joining and leaving) goes through one writer task, which
//! commits whatever has queued up — up to `batch_max` writes — in ONE
//! transaction. Throughput is then not one fsync per message.
//!
//! Inside the transaction the batch's rooms are locked and their counters
//! read in one statement, its memberships and earlier sends looked up in
//! one statement each; every write is decided in memory ([`batch`]), then
//! the new events are inserted and the counters written in a few
//! multi-row statements ([`statements`]): seqs commit in order, gap-free,
//! never from AUTO_INCREMENT. On SQLite the writer is a thread with its
//! own connection ([`sqlite`]). On MySQL there are several writer tasks
//! using the pool ([`mysql`]), so that one batch's round trips and commit
//! do not hold up the others': each room always goes through the same
//! task, which keeps its writes in order.
//! Only after commit are callers answered and events published, in seq
//! order. Publishing is a callback the writer is handed (`lib.rs` wires
//! it to the hub), so storage knows nothing of fan-out.
//!
//! If a batch hits a database error, it is rolled back and each write is
//! retried alone, so one bad write never fails its neighbours. An error
//! during the commit may hide a commit that took: a retried send is then
//! found by its client id, and a retried membership change by its event
//! ([`mysql::retry_alone`]).

mod batch;
mod mysql;
mod sqlite;
mod statements;

use super::{Store, StoreError};
use crate::metrics::{self, Metrics};
use natter_shared::text::Body;
use natter_shared::{Attachment, ClientId, Event, RoomId, Seq, SiteId, UserId};
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
        /// Checked before the write is submitted; bound to the message
        /// (and checked again) in the transaction that stores it.
        files: Vec<Attachment>,
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
    /// The message at `seq` is deleted: its row keeps its sender and time
    /// only, and a `message_deleted` tombstone is appended to the room.
    Delete {
        site: SiteId,
        room: RoomId,
        seq: Seq,
    },
}

impl WriteOp {
    /// The site the write belongs to.
    pub fn site(&self) -> &SiteId {
        match self {
            WriteOp::Message { site, .. }
            | WriteOp::Join { site, .. }
            | WriteOp::Leave { site, .. }
            | WriteOp::Delete { site, .. } => site,
        }
    }

    /// The room the write takes a seq in.
    pub fn room(&self) -> &RoomId {
        match self {
            WriteOp::Message { room, .. }
            | WriteOp::Join { room, .. }
            | WriteOp::Leave { room, .. }
            | WriteOp::Delete { room, .. } => room,
        }
    }
}

/// A committed write.
#[derive(Debug, Clone)]
pub struct Written {
    pub event: Event,
    /// The write repeated an earlier one (same client id; or, retried after
    /// a commit that went unanswered, a membership change that had taken):
    /// `event` is the one stored then, and it is published again (the
    /// first attempt may never have been).
    pub duplicate: bool,
    /// The files a deletion took off its message: their bytes and rows
    /// are the caller's to delete.
    pub freed: Vec<Attachment>,
}

type Reply = oneshot::Sender<Result<Written, StoreError>>;

/// The handle that submits writes; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    /// One queue per writer task; a room's writes always take the same.
    lanes: Arc<[mpsc::Sender<(WriteOp, Reply)>]>,
}

/// A writer task's capacity for queued writes. Past it submitters wait,
/// which slows the busiest connections first instead of growing memory.
const QUEUE: usize = 8192;

/// The writer task that takes a room's writes, of `lanes`: the same for
/// as long as the process runs.
fn lane_of(room: &RoomId, lanes: usize) -> usize {
    use std::hash::BuildHasher;
    let hash = foldhash::fast::FixedState::with_seed(0).hash_one(room.as_str());
    (hash % lanes.max(1) as u64) as usize
}

impl Writer {
    /// Starts the writer: one task on SQLite, `writers` on MySQL. Each
    /// new event is handed to `publish` after its commit, in seq order
    /// within its room; a repeated send's stored event is published again
    /// (receivers skip what they hold).
    /// The tasks stop taking writes when `stop` fires, commit what is
    /// queued, then end; so does the handle.
    pub fn spawn(
        store: Store,
        publish: impl Fn(&SiteId, &Event) + Send + Sync + 'static,
        metrics: Arc<Metrics>,
        batch_max: usize,
        writers: usize,
        stop: CancellationToken,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let task = |publish| Task {
            publish,
            metrics: metrics.clone(),
            batch_max: batch_max.max(1),
            stop: stop.clone(),
        };
        let publish = Arc::new(publish);
        let (lanes, handle) = match store.sqlite_path() {
            Some(path) => {
                let (tx, rx) = mpsc::channel(QUEUE);
                let handle = spawn_sqlite(path.to_owned(), task(publish), rx);
                (vec![tx], handle)
            }
            None => {
                let (lanes, tasks): (Vec<_>, Vec<_>) = (0..writers.max(1))
                    .map(|_| {
                        let (tx, rx) = mpsc::channel(QUEUE);
                        let run = run_mysql(store.clone(), task(publish.clone()), rx);
                        (tx, tokio::spawn(run))
                    })
                    .unzip();
                let handle = tokio::spawn(async move {
                    for task in tasks {
                        let _ = task.await;
                    }
                });
                (lanes, handle)
            }
        };
        let lanes = lanes.into();
        (Writer { lanes }, handle)
    }

    /// Queues a write; the receiver answers after commit.
    pub async fn submit(
        &self,
        op: WriteOp,
    ) -> Result<oneshot::Receiver<Result<Written, StoreError>>, StoreError> {
        let (reply, rx) = oneshot::channel();
        let lane = &self.lanes[lane_of(op.room(), self.lanes.len())];
        lane.send((op, reply))
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

/// What a writer task needs besides its queue.
struct Task<P> {
    /// Shared by the writer's tasks.
    publish: Arc<P>,
    metrics: Arc<Metrics>,
    batch_max: usize,
    stop: CancellationToken,
}

/// Waits for the next writes (up to `max`, whatever is queued); 0 when
/// the queue is closed and empty. Once `stop` fires, new writes are
/// refused and the ones already queued are still taken.
async fn receive(
    rx: &mut mpsc::Receiver<(WriteOp, Reply)>,
    batch: &mut Batch,
    max: usize,
    stop: &CancellationToken,
) -> usize {
    tokio::select! {
        got = rx.recv_many(batch, max) => got,
        _ = stop.cancelled() => {
            rx.close();
            rx.recv_many(batch, max).await
        }
    }
}

impl<P: Fn(&SiteId, &Event)> Task<P> {
    /// After commit: publishes the new events in order and answers.
    fn finish(&self, batch: &mut Batch, results: Vec<Result<Written, StoreError>>) {
        metrics::inc(&self.metrics.commits);
        for ((op, reply), result) in batch.drain(..).zip(results) {
            match &result {
                Ok(written) if written.duplicate => {
                    metrics::inc(&self.metrics.duplicates);
                    // Its first attempt may have committed yet been reported
                    // as failed (the database link cut during the commit),
                    // and so never published: publish it again. Connections
                    // that already have it skip it by seq.
                    (self.publish)(op.site(), &written.event);
                }
                Ok(written) => {
                    metrics::inc(&self.metrics.events_committed);
                    (self.publish)(op.site(), &written.event);
                }
                Err(_) => {}
            }
            // The caller may have gone (connection closed); the write stands.
            let _ = reply.send(result);
        }
    }
}

type Batch = Vec<(WriteOp, Reply)>;

/// A batch's outcome, or the error that rolled it back.
type Outcome = Result<Vec<Result<Written, StoreError>>, StoreError>;

/// The writer on MySQL/MariaDB: a task on the runtime, statements through
/// the pool.
async fn run_mysql(
    store: Store,
    task: Task<impl Fn(&SiteId, &Event)>,
    mut rx: mpsc::Receiver<(WriteOp, Reply)>,
) {
    let mut batch = Vec::with_capacity(task.batch_max);
    while receive(&mut rx, &mut batch, task.batch_max, &task.stop).await > 0 {
        let ops: Vec<&WriteOp> = batch.iter().map(|(op, _)| op).collect();
        let began = super::now_ms();
        let results = match mysql::try_commit(&store, &ops).await {
            Ok(results) => results,
            Err(err) => {
                let mut one_by_one = Vec::with_capacity(ops.len());
                for op in &ops {
                    one_by_one.push(mysql::retry_alone(&store, op, began).await);
                }
                after_failure(err, one_by_one)
            }
        };
        drop(ops);
        task.finish(&mut batch, results);
    }
    tracing::debug!("writer stopped");
}

/// Starts the SQLite writer's thread; the handle ends when it does. A
/// plain thread, not the runtime's blocking pool: it lives as long as the
/// server, and a blocking task in flight would stop paused test time.
fn spawn_sqlite(
    path: std::path::PathBuf,
    task: Task<impl Fn(&SiteId, &Event) + Send + Sync + 'static>,
    mut rx: mpsc::Receiver<(WriteOp, Reply)>,
) -> tokio::task::JoinHandle<()> {
    let runtime = tokio::runtime::Handle::current();
    let (done, ended) = oneshot::channel::<()>();
    let (start, started) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("natter-writer".into())
        .spawn(move || {
            let Ok((task, rx)) = started.recv() else {
                return;
            };
            run_sqlite(&path, runtime, task, rx);
            let _ = done.send(());
        });
    match spawned {
        Ok(_) => {
            // The thread owns the queue only once it runs.
            let _ = start.send((task, rx));
            tokio::spawn(async move {
                let _ = ended.await;
            })
        }
        Err(err) => {
            tracing::error!(error = %err, "could not start the writer thread; every write fails");
            tokio::spawn(async move {
                while let Some((_, reply)) = rx.recv().await {
                    let _ = reply.send(Err(StoreError::Closed));
                }
            })
        }
    }
}

/// The writer on SQLite: a thread of its own with its own connection,
/// woken by the queue. Each committed batch is handed to a task on the
/// runtime that publishes its events and answers its callers: the thread
/// wakes one task per batch, not one per write, and goes on to the next.
fn run_sqlite(
    path: &std::path::Path,
    runtime: tokio::runtime::Handle,
    task: Task<impl Fn(&SiteId, &Event) + Send + Sync + 'static>,
    mut rx: mpsc::Receiver<(WriteOp, Reply)>,
) {
    let checkpointer = sqlite::Checkpointer::start(path);
    let mut conn = sqlite::open(path, checkpointer.is_some());
    let (batch_max, stop) = (task.batch_max, task.stop.clone());
    let (done, mut committed) = mpsc::channel::<(Batch, Vec<Result<Written, StoreError>>)>(16);
    let finisher = runtime.spawn(async move {
        while let Some((mut batch, results)) = committed.recv().await {
            task.finish(&mut batch, results);
        }
    });
    // Each batch's vector goes to the finisher; `recv_many` grows the next.
    let mut batch = Vec::new();
    while runtime.block_on(receive(&mut rx, &mut batch, batch_max, &stop)) > 0 {
        let ops: Vec<&WriteOp> = batch.iter().map(|(op, _)| op).collect();
        let results = match &mut conn {
            Ok(conn) => match sqlite::try_commit(conn, &ops) {
                Ok(results) => results,
                Err(err) => {
                    let one_by_one = ops
                        .iter()
                        .map(|op| sqlite::try_commit(conn, &[op]))
                        .collect();
                    after_failure(err, one_by_one)
                }
            },
            Err(err) => {
                tracing::error!(error = %err, "the writer could not open the database");
                ops.iter().map(|_| Err(StoreError::Closed)).collect()
            }
        };
        drop(ops);
        if let Some(checkpointer) = &checkpointer {
            checkpointer.nudge();
        }
        if done
            .blocking_send((std::mem::take(&mut batch), results))
            .is_err()
        {
            // The runtime is shutting down: no one is left to answer.
            break;
        }
    }
    drop(done);
    let _ = runtime.block_on(finisher);
    tracing::debug!("writer stopped");
}

/// The answers after a failed batch was retried one write at a time, so
/// one bad write never fails its neighbours.
fn after_failure(err: StoreError, one_by_one: Vec<Outcome>) -> Vec<Result<Written, StoreError>> {
    if one_by_one.len() > 1 {
        tracing::warn!(error = %err, writes = one_by_one.len(), "batch failed; retried writes one by one");
    }
    one_by_one
        .into_iter()
        .map(|outcome| match outcome {
            Ok(mut one) => one.pop().unwrap_or(Err(StoreError::Closed)),
            Err(err) => Err(err),
        })
        .collect()
}

#[cfg(test)]
mod tests;
