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
            files: Vec::new(),
        }
    }

    /// One writer of batches of `batch_max` that publishes nothing, and
    /// what stops it.
    fn unpublished(
        store: &Store,
        batch_max: usize,
    ) -> (Writer, tokio::task::JoinHandle<()>, CancellationToken) {
        let stop = CancellationToken::new();
        let (writer, task) = Writer::spawn(
            store.clone(),
            |_, _| {},
            Default::default(),
            batch_max,
            1,
            stop.clone(),
        );
        (writer, task, stop)
    }

    /// A site with a dialog between `a` and `b`.
    async fn dialog(store: &Store) -> (SiteId, natter_shared::RoomInfo) {
        let site = store
            .create_site(None, "s", &[])
            .await
            .expect("a site")
            .site
            .id;
        let member = |id: &str| Member::new(user(id), None);
        let (room, _) = store
            .open_dialog(&site, &member("a"), &member("b"))
            .await
            .expect("a dialog");
        (site, room)
    }

    #[test]
    fn rooms_spread_over_the_writers_and_keep_theirs() {
        let rooms: Vec<RoomId> = (0..64)
            .map(|n| RoomId::parse(format!("r{n}")).expect("a room id"))
            .collect();
        let lanes: Vec<usize> = rooms.iter().map(|r| lane_of(r, 4)).collect();
        for lane in 0..4 {
            assert!(lanes.contains(&lane), "writer {lane} gets rooms");
        }
        let again: Vec<usize> = rooms.iter().map(|r| lane_of(r, 4)).collect();
        assert_eq!(lanes, again);
        assert!(rooms.iter().all(|r| lane_of(r, 1) == 0));
    }

    /// The database file grows only when the log is copied into it: with
    /// the writer's own checkpoints far off, the checkpointer does it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_log_is_checkpointed_beside_the_writer() {
        let (store, path) = crate::store::scratch::open("checkpoint").await;
        let (site, room) = dialog(&store).await;
        let (writer, task, stop) = unpublished(&store, 64);
        let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let before = size();
        let mut replies = Vec::new();
        for n in 1..=2000 {
            replies.push(
                writer
                    .submit(message(&site, &room.id, n))
                    .await
                    .expect("queued"),
            );
        }
        for reply in replies {
            reply.await.expect("answered").expect("committed");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while size() <= before && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(size() > before, "the log was copied into the database file");
        stop.cancel();
        task.await.expect("the writer ends");
        store.close().await;
        crate::store::scratch::remove(&path);
    }

    /// A file of `a`'s, uploaded and complete.
    async fn file_of_a(store: &Store, site: &SiteId, name: &str) -> natter_shared::Attachment {
        let id = natter_shared::FileId::parse(format!("f{name}")).expect("a file id");
        store
            .create_upload(&id, site, &user("a"), name, 10, 1)
            .await
            .expect("an upload");
        let done = crate::store::Completed {
            mime: "application/pdf".into(),
            size: 10,
            width: None,
            height: None,
            thumb: false,
        };
        store.complete_file(&id, &done, 2).await.expect("complete");
        store
            .file(&id)
            .await
            .expect("read")
            .expect("there")
            .attachment()
    }

    #[tokio::test]
    async fn a_file_goes_into_one_message_and_a_refused_one_binds_nothing() {
        let (store, path) = crate::store::scratch::open("file-holder").await;
        let (site, room) = dialog(&store).await;
        let (writer, task, stop) = unpublished(&store, 8);
        let (plan, notes) = (
            file_of_a(&store, &site, "plan").await,
            file_of_a(&store, &site, "notes").await,
        );
        let mut gone = plan.clone();
        gone.id = natter_shared::FileId::parse("fgone".to_string()).expect("a file id");
        let with = |n: u128, sender: &str, files: Vec<natter_shared::Attachment>| {
            let WriteOp::Message {
                site,
                room,
                client_id,
                body,
                ..
            } = message(&site, &room.id, n)
            else {
                unreachable!("a message")
            };
            WriteOp::Message {
                site,
                room,
                sender: Some(user(sender)),
                client_id,
                body,
                files,
            }
        };

        // Queued together, so that they share a batch: the plan goes into
        // the first message only; a stranger's refused send binds nothing;
        // a file deleted meanwhile is not carried.
        let ops = [
            with(1, "a", vec![plan.clone()]),
            with(2, "a", vec![plan.clone()]),
            with(3, "c", vec![notes.clone()]),
            with(4, "a", vec![gone.clone()]),
        ];
        let mut replies = Vec::new();
        for op in ops {
            replies.push(writer.submit(op).await.expect("queued"));
        }
        let mut results = Vec::new();
        for reply in replies {
            results.push(reply.await.expect("answered"));
        }
        let first = results[0].as_ref().expect("the first is stored").event.seq;
        assert!(
            matches!(&results[1], Err(StoreError::FileTaken(id)) if *id == plan.id),
            "{:?}",
            results[1]
        );
        assert!(
            matches!(&results[2], Err(StoreError::NotMember)),
            "{:?}",
            results[2]
        );
        assert!(
            matches!(&results[3], Err(StoreError::FileGone(id)) if *id == gone.id),
            "{:?}",
            results[3]
        );
        let held = store.file(&plan.id).await.expect("read").expect("there");
        let cid = |n: u128| ClientId::from_uuid(uuid::Uuid::from_u128(n));
        assert_eq!(
            (held.room.as_ref(), held.message),
            (Some(&room.id), Some(cid(1)))
        );
        let free = store.file(&notes.id).await.expect("read").expect("there");
        assert_eq!((free.room, free.message), (None, None));

        // A retry of the first is its repeat; the free file goes into a
        // message of its own, and then into no other.
        let again = writer
            .write(with(1, "a", vec![plan.clone()]))
            .await
            .expect("a repeat");
        assert!(again.duplicate);
        assert_eq!(again.event.seq, first);
        writer
            .write(with(5, "a", vec![notes.clone()]))
            .await
            .expect("stored");
        let taken = writer.write(with(6, "b", vec![notes.clone()])).await;
        assert!(matches!(taken, Err(StoreError::FileTaken(_))), "{taken:?}");

        // A file bound to its room before messages were recorded (no
        // client id) is taken there as it was then.
        let old = file_of_a(&store, &site, "old").await;
        sqlx::query("UPDATE files SET room_id = ? WHERE id = ?")
            .bind(room.id.as_str())
            .bind(old.id.as_str())
            .execute(store.pool())
            .await
            .expect("bound the old way");
        for n in [7, 8] {
            let written = writer.write(with(n, "a", vec![old.clone()])).await;
            assert!(written.is_ok(), "{written:?}");
        }

        // Only a file no message holds may be deleted.
        assert!(!store.delete_free_file(&plan.id).await.expect("asked"));
        let spare = file_of_a(&store, &site, "spare").await;
        assert!(store.delete_free_file(&spare.id).await.expect("asked"));

        stop.cancel();
        task.await.expect("the writer ends");
        store.close().await;
        crate::store::scratch::remove(&path);
    }

    #[tokio::test]
    async fn events_are_published_after_commit_in_seq_order_and_repeats_again_as_stored() {
        let (store, path) = crate::store::scratch::open("writer").await;
        let (site, room) = dialog(&store).await;
        let published = Arc::new(Mutex::new(Vec::new()));
        let seen = published.clone();
        let publish = move |_: &SiteId, event: &Event| {
            seen.lock().expect("not poisoned").push(event.seq);
        };
        let stop = CancellationToken::new();
        let (writer, task) = Writer::spawn(
            store.clone(),
            publish,
            Default::default(),
            8,
            1,
            stop.clone(),
        );

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
            (1..=20).chain([5]).collect::<Vec<u64>>(),
            "the repeat is published again as the event stored the first time"
        );
        store.close().await;
        crate::store::scratch::remove(&path);
    }
}
