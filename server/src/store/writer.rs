//! Group commit: every write that takes a room's next seq (messages,
//! members joining and leaving) goes through one writer task, which
//! commits whatever has queued up — up to `batch_max` writes — in ONE
//! transaction. Throughput is then not one fsync per message.
//!
//! Inside the transaction each write locks its room's row, reads the
//! counter, checks membership and idempotency, inserts the event and bumps
//! the counter: seqs commit in order, gap-free, never from AUTO_INCREMENT.
//! Only after commit are callers answered and events published, in seq
//! order.
//!
//! If a batch hits a database error, it is rolled back and each write is
//! retried alone, so one bad write never fails its neighbours.

use super::{Backend, Store, StoreError, event_from_row, now_ms};
use crate::hub::Hub;
use crate::metrics::{self, Metrics};
use natter_shared::limits::MAX_MEMBERS;
use natter_shared::{ClientId, Event, EventKind, RoomId, RoomKind, SiteId, UserId};
use sqlx::{Any, Row, Transaction};
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
        body: String,
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
    /// Starts the writer task. It stops taking writes when `stop` fires,
    /// commits what is queued, then ends.
    pub fn spawn(
        store: Store,
        hub: Hub,
        metrics: Arc<Metrics>,
        batch_max: usize,
        stop: CancellationToken,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(store, hub, metrics, rx, batch_max.max(1), stop));
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
    hub: Hub,
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
                    hub.publish_event(op.site(), &written.event);
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
    let mut tx = match store.backend() {
        Backend::Sqlite => store.pool().begin_with("BEGIN IMMEDIATE").await?,
        Backend::MySql => store.pool().begin().await?,
    };
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        match apply(&mut tx, store.backend(), op).await {
            Err(err @ (StoreError::Db(_) | StoreError::Corrupt(_))) => return Err(err),
            other => results.push(other),
        }
    }
    tx.commit().await?;
    Ok(results)
}

async fn apply(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    op: &WriteOp,
) -> Result<Written, StoreError> {
    match op {
        WriteOp::Message {
            site,
            room,
            sender,
            client_id,
            body,
        } => {
            let (last, _) = lock_room(tx, backend, site, room).await?;
            if let Some(sender) = sender
                && !is_member(tx, room, sender).await?
            {
                return Err(StoreError::NotMember);
            }
            if let Some(client_id) = client_id
                && let Some(event) = stored_message(tx, room, sender.as_ref(), client_id).await?
            {
                return Ok(Written {
                    event,
                    duplicate: true,
                });
            }
            let kind = EventKind::Message {
                body: body.clone(),
                client_id: *client_id,
            };
            append(tx, room, last, sender.clone(), kind).await
        }
        WriteOp::Join { site, room, user } => {
            let (last, kind) = lock_room(tx, backend, site, room).await?;
            if kind == RoomKind::Dialog {
                return Err(StoreError::Invalid(
                    "a dialog keeps its two members; create a group room instead".into(),
                ));
            }
            if is_member(tx, room, user).await? {
                return Err(StoreError::Conflict);
            }
            let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM members WHERE room_id = ?")
                .bind(room.as_str())
                .fetch_one(&mut **tx)
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
            .execute(&mut **tx)
            .await?;
            let kind = EventKind::MemberJoined { user: user.clone() };
            append(tx, room, last, None, kind).await
        }
        WriteOp::Leave { site, room, user } => {
            let (last, kind) = lock_room(tx, backend, site, room).await?;
            if kind == RoomKind::Dialog {
                return Err(StoreError::Invalid("a dialog keeps its two members".into()));
            }
            let gone = sqlx::query("DELETE FROM members WHERE room_id = ? AND user_id = ?")
                .bind(room.as_str())
                .bind(user.as_str())
                .execute(&mut **tx)
                .await?;
            if gone.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            let kind = EventKind::MemberLeft { user: user.clone() };
            append(tx, room, last, None, kind).await
        }
    }
}

/// Locks the room's row (MySQL) and returns its counter and kind.
async fn lock_room(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    site: &SiteId,
    room: &RoomId,
) -> Result<(i64, RoomKind), StoreError> {
    let row = sqlx::query(backend.lock_room_sql())
        .bind(room.as_str())
        .bind(site.as_str())
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::RoomNotFound)?;
    let kind: String = row.try_get("kind")?;
    let kind =
        RoomKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("room kind {kind}")))?;
    Ok((row.try_get("last_seq")?, kind))
}

async fn is_member(
    tx: &mut Transaction<'_, Any>,
    room: &RoomId,
    user: &UserId,
) -> Result<bool, StoreError> {
    let row = sqlx::query("SELECT 1 FROM members WHERE room_id = ? AND user_id = ?")
        .bind(room.as_str())
        .bind(user.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    Ok(row.is_some())
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
            sqlx::query(
                "SELECT room_id, seq, ts, kind, sender, client_id, body, subject FROM events \
                 WHERE room_id = ? AND sender = ? AND client_id = ?",
            )
            .bind(room.as_str())
            .bind(sender.as_str())
            .bind(client_id)
            .fetch_optional(&mut **tx)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT room_id, seq, ts, kind, sender, client_id, body, subject FROM events \
                 WHERE room_id = ? AND sender IS NULL AND client_id = ?",
            )
            .bind(room.as_str())
            .bind(client_id)
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    row.as_ref().map(event_from_row).transpose()
}

/// Inserts the room's next event and bumps its counter.
async fn append(
    tx: &mut Transaction<'_, Any>,
    room: &RoomId,
    last: i64,
    sender: Option<UserId>,
    kind: EventKind,
) -> Result<Written, StoreError> {
    let seq = last + 1;
    let ts = now_ms();
    let (body, client_id, subject) = match &kind {
        EventKind::Message { body, client_id } => {
            (Some(body.as_str()), client_id.map(|c| c.to_string()), None)
        }
        EventKind::MemberJoined { user } | EventKind::MemberLeft { user } => {
            (None, None, Some(user.as_str()))
        }
    };
    sqlx::query(
        "INSERT INTO events (room_id, seq, ts, kind, sender, client_id, body, subject) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(room.as_str())
    .bind(seq)
    .bind(ts)
    .bind(kind.name())
    .bind(sender.as_ref().map(|s| s.as_str()))
    .bind(client_id)
    .bind(body)
    .bind(subject)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE rooms SET last_seq = ? WHERE id = ?")
        .bind(seq)
        .bind(room.as_str())
        .execute(&mut **tx)
        .await?;
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
