//! Group commit: every write that takes a room's next seq (messages,
//! members joining and leaving) goes through one writer task, which
//! commits whatever has queued up — up to `batch_max` writes — in ONE
//! transaction. Throughput is then not one fsync per message.
//!
//! Inside the transaction each room's row is locked and its counter read
//! once; each write checks membership and idempotency and inserts its
//! event with the next seq; each counter is written once before commit:
//! seqs commit in order, gap-free, never from AUTO_INCREMENT.
//! Only after commit are callers answered and events published, in seq
//! order. Publishing is a callback the writer is handed (`lib.rs` wires
//! it to the hub), so storage knows nothing of fan-out.
//!
//! If a batch hits a database error, it is rolled back and each write is
//! retried alone, so one bad write never fails its neighbours.

use super::rows::{event_columns, event_from_row};
use super::{Backend, Store, StoreError, is_unique_violation, now_ms};
use crate::metrics::{self, Metrics};
use natter_shared::limits::MAX_MEMBERS;
use natter_shared::protocol::Body;
use natter_shared::{ClientId, Event, EventKind, RoomId, RoomKind, SiteId, UserId};
use sqlx::{Any, Row, Transaction};
use std::collections::HashMap;
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
        let results = commit(&store, &ops).await;
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
async fn commit(store: &Store, ops: &[&WriteOp]) -> Vec<Result<Written, StoreError>> {
    match try_commit(store, ops).await {
        Ok(results) => results,
        Err(err) if ops.len() == 1 => vec![Err(err)],
        Err(err) => {
            tracing::warn!(error = %err, writes = ops.len(), "batch failed; retrying writes one by one");
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                results.push(match try_commit(store, &[op]).await {
                    Ok(mut one) => one.pop().unwrap_or(Err(StoreError::Closed)),
                    Err(err) => Err(err),
                });
            }
            results
        }
    }
}

async fn try_commit(
    store: &Store,
    ops: &[&WriteOp],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    // SQLite: take the write lock up front. A deferred transaction that
    // reads first could not upgrade once another connection has written.
    let tx = match store.backend() {
        Backend::Sqlite => store.pool().begin_with("BEGIN IMMEDIATE").await?,
        Backend::MySql => store.pool().begin().await?,
    };
    let mut batch = Batch {
        tx,
        backend: store.backend(),
        rooms: HashMap::new(),
        members: HashMap::new(),
    };
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        match apply(&mut batch, op).await {
            Err(err @ (StoreError::Db(_) | StoreError::Corrupt(_))) => return Err(err),
            other => results.push(other),
        }
    }
    batch.commit().await?;
    Ok(results)
}

/// A room as the batch holds it: locked, with its counter.
struct LockedRoom {
    site: SiteId,
    kind: RoomKind,
    /// The counter when locked, and after this batch's events.
    stored: i64,
    last: i64,
}

/// One group-commit transaction and what it learnt so far: each room is
/// locked and read once, each membership checked once, and each room's
/// counter written once, at the end.
struct Batch<'t> {
    tx: Transaction<'t, Any>,
    backend: Backend,
    rooms: HashMap<RoomId, LockedRoom>,
    members: HashMap<(RoomId, UserId), bool>,
}

impl Batch<'_> {
    /// Locks the room's row (MySQL; SQLite's writer holds the database
    /// lock) and returns its kind. A room of another site is not found.
    async fn lock_room(&mut self, site: &SiteId, room: &RoomId) -> Result<RoomKind, StoreError> {
        if let Some(locked) = self.rooms.get(room) {
            return if &locked.site == site {
                Ok(locked.kind)
            } else {
                Err(StoreError::RoomNotFound)
            };
        }
        let row = sqlx::query(self.backend.lock_room_sql())
            .bind(room.as_str())
            .bind(site.as_str())
            .fetch_optional(&mut *self.tx)
            .await?
            .ok_or(StoreError::RoomNotFound)?;
        let kind: String = row.try_get("kind")?;
        let kind = RoomKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("room kind {kind}")))?;
        let last: i64 = row.try_get("last_seq")?;
        self.rooms.insert(
            room.clone(),
            LockedRoom {
                site: site.clone(),
                kind,
                stored: last,
                last,
            },
        );
        Ok(kind)
    }

    async fn is_member(&mut self, room: &RoomId, user: &UserId) -> Result<bool, StoreError> {
        let key = (room.clone(), user.clone());
        if let Some(&member) = self.members.get(&key) {
            return Ok(member);
        }
        let row = sqlx::query("SELECT 1 FROM members WHERE room_id = ? AND user_id = ?")
            .bind(room.as_str())
            .bind(user.as_str())
            .fetch_optional(&mut *self.tx)
            .await?;
        self.members.insert(key, row.is_some());
        Ok(row.is_some())
    }

    /// Inserts the room's next event (the room must be locked).
    async fn append(
        &mut self,
        room: &RoomId,
        sender: Option<UserId>,
        kind: EventKind,
    ) -> Result<Written, StoreError> {
        let locked = self
            .rooms
            .get_mut(room)
            .ok_or_else(|| StoreError::Corrupt("append to a room not locked".into()))?;
        let seq = locked.last + 1;
        let ts = now_ms();
        let (body, client_id, subject) = match &kind {
            EventKind::Message { body, client_id } => {
                (Some(body.as_str()), client_id.map(|c| c.to_string()), None)
            }
            EventKind::MemberJoined { user } | EventKind::MemberLeft { user } => {
                (None, None, Some(user.as_str()))
            }
        };
        sqlx::query(concat!(
            "INSERT INTO events (",
            event_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(room.as_str())
        .bind(seq)
        .bind(ts)
        .bind(kind.name())
        .bind(sender.as_ref().map(|s| s.as_str()))
        .bind(client_id)
        .bind(body)
        .bind(subject)
        .execute(&mut *self.tx)
        .await?;
        locked.last = seq;
        Ok(Written {
            event: Event {
                room: room.clone(),
                seq: u64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("seq {seq}")))?,
                ts,
                sender,
                kind,
            },
            duplicate: false,
        })
    }

    /// Writes each room's counter once, then commits.
    async fn commit(mut self) -> Result<(), StoreError> {
        for (room, locked) in &self.rooms {
            if locked.last != locked.stored {
                sqlx::query("UPDATE rooms SET last_seq = ? WHERE id = ?")
                    .bind(locked.last)
                    .bind(room.as_str())
                    .execute(&mut *self.tx)
                    .await?;
            }
        }
        self.tx.commit().await?;
        Ok(())
    }
}

async fn apply(batch: &mut Batch<'_>, op: &WriteOp) -> Result<Written, StoreError> {
    match op {
        WriteOp::Message {
            site,
            room,
            sender,
            client_id,
            body,
        } => {
            batch.lock_room(site, room).await?;
            if let Some(sender) = sender
                && !batch.is_member(room, sender).await?
            {
                return Err(StoreError::NotMember);
            }
            let kind = EventKind::Message {
                body: body.as_str().to_owned(),
                client_id: *client_id,
            };
            let Some(client_id) = client_id else {
                return batch.append(room, sender.clone(), kind).await;
            };
            if sender.is_some() {
                // The unique key (room, sender, client id) answers a retry
                // in the same round trip as a first send: insert, and only
                // on a conflict look the stored message up. A refused
                // insert takes no seq (the counter is only advanced on
                // success) and leaves the transaction usable.
                match batch.append(room, sender.clone(), kind).await {
                    Err(StoreError::Db(e)) if is_unique_violation(&e) => {}
                    other => return other,
                }
            }
            match stored_message(&mut batch.tx, room, sender.as_ref(), client_id).await? {
                Some(event) => Ok(Written {
                    event,
                    duplicate: true,
                }),
                // A system message (no sender): the key cannot catch the
                // repeat, so it was looked up first; it is new.
                None if sender.is_none() => {
                    let kind = EventKind::Message {
                        body: body.as_str().to_owned(),
                        client_id: Some(*client_id),
                    };
                    batch.append(room, None, kind).await
                }
                None => Err(StoreError::Corrupt(
                    "a unique conflict without a stored message".into(),
                )),
            }
        }
        WriteOp::Join { site, room, user } => {
            if batch.lock_room(site, room).await? == RoomKind::Dialog {
                return Err(StoreError::Invalid(
                    "a dialog keeps its two members; create a group room instead".into(),
                ));
            }
            if batch.is_member(room, user).await? {
                return Err(StoreError::Conflict);
            }
            let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM members WHERE room_id = ?")
                .bind(room.as_str())
                .fetch_one(&mut *batch.tx)
                .await?
                .try_get("n")?;
            if count >= MAX_MEMBERS as i64 {
                return Err(StoreError::Invalid(format!(
                    "the room is full: at most {MAX_MEMBERS} members"
                )));
            }
            sqlx::query(
                "INSERT INTO members (room_id, site_id, user_id, joined_at) VALUES (?, ?, ?, ?)",
            )
            .bind(room.as_str())
            .bind(site.as_str())
            .bind(user.as_str())
            .bind(now_ms())
            .execute(&mut *batch.tx)
            .await?;
            batch.members.insert((room.clone(), user.clone()), true);
            let kind = EventKind::MemberJoined { user: user.clone() };
            batch.append(room, None, kind).await
        }
        WriteOp::Leave { site, room, user } => {
            if batch.lock_room(site, room).await? == RoomKind::Dialog {
                return Err(StoreError::Invalid("a dialog keeps its two members".into()));
            }
            let gone = sqlx::query("DELETE FROM members WHERE room_id = ? AND user_id = ?")
                .bind(room.as_str())
                .bind(user.as_str())
                .execute(&mut *batch.tx)
                .await?;
            if gone.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            batch.members.insert((room.clone(), user.clone()), false);
            let kind = EventKind::MemberLeft { user: user.clone() };
            batch.append(room, None, kind).await
        }
    }
}

/// The message already stored under this client id, if any.
async fn stored_message(
    tx: &mut Transaction<'_, Any>,
    room: &RoomId,
    sender: Option<&UserId>,
    client_id: &ClientId,
) -> Result<Option<Event>, StoreError> {
    let client_id = client_id.to_string();
    let row = match sender {
        Some(sender) => {
            sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE room_id = ? AND sender = ? AND client_id = ?"
            ))
            .bind(room.as_str())
            .bind(sender.as_str())
            .bind(client_id)
            .fetch_optional(&mut **tx)
            .await?
        }
        None => {
            sqlx::query(concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE room_id = ? AND sender IS NULL AND client_id = ?"
            ))
            .bind(room.as_str())
            .bind(client_id)
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    row.as_ref().map(event_from_row).transpose()
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
