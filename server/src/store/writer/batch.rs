//! One group-commit transaction. It reads what the whole batch needs up
//! front — the rooms' rows (locked), the memberships it depends on, the
//! messages already stored under its client ids — decides every write in
//! memory, in order, then inserts all new events and writes each room's
//! counter in a few multi-row statements. A batch of 256 sends costs about
//! as many round trips as a batch of one.

use super::Known;
use super::sql::{self, IdemKey, RoomRow};
use super::{WriteOp, Written};
use crate::store::{Backend, Store, StoreError, now_ms};
use natter_shared::limits::MAX_MEMBERS;
use natter_shared::protocol::Body;
use natter_shared::{ClientId, Event, EventKind, RoomId, RoomKind, SiteId, UserId};
use sqlx::{Any, Row, Transaction};
use std::collections::{HashMap, HashSet};

/// Commits `ops` in one transaction. A domain refusal (not a member, a
/// room of another site…) answers its own write only; a database error
/// fails the whole batch, which is then rolled back.
pub(super) async fn try_commit(
    store: &Store,
    known: &mut Known,
    ops: &[&WriteOp],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    // SQLite: take the write lock up front. A deferred transaction that
    // reads first could not upgrade once another connection has written.
    let mut tx = match store.backend() {
        Backend::Sqlite => store.pool().begin_with("BEGIN IMMEDIATE").await?,
        Backend::MySql => store.pool().begin().await?,
    };

    let mut rooms: Vec<&RoomId> = ops.iter().map(|op| op.room()).collect();
    rooms.sort_unstable();
    rooms.dedup();
    let (cached, rooms): (Vec<&RoomId>, Vec<&RoomId>) =
        rooms.into_iter().partition(|room| known.room(room).is_some());
    let mut locked = if rooms.is_empty() {
        HashMap::new()
    } else {
        sql::lock_rooms(&mut tx, store.backend(), &rooms).await?
    };
    for room in cached {
        if let Some(row) = known.room(room) {
            locked.insert(room.clone(), row.clone());
        }
    }

    let mut pairs: Vec<(&RoomId, &UserId)> = ops.iter().filter_map(|op| op.member()).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let (cached, pairs): (Vec<_>, Vec<_>) = pairs
        .into_iter()
        .partition(|(room, user)| known.is_member(room, user));
    let mut members = if pairs.is_empty() {
        HashSet::new()
    } else {
        sql::members(&mut tx, &pairs).await?
    };
    members.extend(
        cached
            .into_iter()
            .map(|(room, user)| (room.clone(), user.clone())),
    );

    let mut keys: Vec<IdemKey> = ops.iter().filter_map(|op| op.idempotency_key()).collect();
    keys.sort_unstable();
    keys.dedup();
    let stored = if keys.is_empty() {
        HashMap::new()
    } else {
        sql::stored_messages(&mut tx, &keys).await?
    };

    let mut plan = Plan {
        rooms: locked
            .into_iter()
            .map(|(id, row)| {
                let room = PlannedRoom {
                    stored: row.last_seq,
                    last: row.last_seq,
                    row,
                };
                (id, room)
            })
            .collect(),
        members,
        left: Vec::new(),
        stored,
        pending: HashMap::new(),
        events: Vec::with_capacity(ops.len()),
        now: now_ms(),
    };
    let mut results = Vec::with_capacity(ops.len());
    for op in ops {
        match plan.apply(&mut tx, op).await {
            Err(err @ (StoreError::Db(_) | StoreError::Corrupt(_))) => return Err(err),
            other => results.push(other),
        }
    }

    sql::insert_events(&mut tx, &plan.events).await?;
    let counters: Vec<(&RoomId, i64)> = plan
        .rooms
        .iter()
        .filter(|(_, room)| room.last != room.stored)
        .map(|(id, room)| (id, room.last))
        .collect();
    sql::write_counters(&mut tx, &counters).await?;
    tx.commit().await?;
    known.committed(
        plan.rooms.into_iter().map(|(id, room)| {
            let row = RoomRow {
                last_seq: room.last,
                ..room.row
            };
            (id, row)
        }),
        plan.members,
        plan.left,
    );
    Ok(results)
}

impl WriteOp {
    fn room(&self) -> &RoomId {
        match self {
            WriteOp::Message { room, .. } | WriteOp::Join { room, .. } | WriteOp::Leave { room, .. } => room,
        }
    }

    /// The membership this write depends on.
    fn member(&self) -> Option<(&RoomId, &UserId)> {
        match self {
            WriteOp::Message { room, sender, .. } => sender.as_ref().map(|s| (room, s)),
            WriteOp::Join { room, user, .. } | WriteOp::Leave { room, user, .. } => {
                Some((room, user))
            }
        }
    }

    fn idempotency_key(&self) -> Option<IdemKey> {
        match self {
            WriteOp::Message {
                room,
                sender,
                client_id: Some(client_id),
                ..
            } => Some((room.clone(), sender.clone(), *client_id)),
            _ => None,
        }
    }
}

struct PlannedRoom {
    row: RoomRow,
    /// The counter as stored, and after this batch's events.
    stored: i64,
    last: i64,
}

/// The batch's decisions so far.
struct Plan {
    rooms: HashMap<RoomId, PlannedRoom>,
    /// Memberships as they stand after the writes decided so far.
    members: HashSet<(RoomId, UserId)>,
    /// Memberships this batch ended.
    left: Vec<(RoomId, UserId)>,
    /// Messages stored before this batch, by idempotency key.
    stored: HashMap<IdemKey, Event>,
    /// Messages new in this batch, by idempotency key: index in `events`.
    pending: HashMap<IdemKey, usize>,
    /// New events, in seq order per room.
    events: Vec<Event>,
    now: i64,
}

impl Plan {
    /// The room's kind, if it exists on this site.
    fn room(&self, site: &SiteId, room: &RoomId) -> Result<RoomKind, StoreError> {
        match self.rooms.get(room) {
            Some(planned) if planned.row.site == site.as_str() => Ok(planned.row.kind),
            _ => Err(StoreError::RoomNotFound),
        }
    }

    fn is_member(&self, room: &RoomId, user: &UserId) -> bool {
        self.members.contains(&(room.clone(), user.clone()))
    }

    /// Takes the room's next seq for a new event.
    fn append(
        &mut self,
        room: &RoomId,
        sender: Option<UserId>,
        kind: EventKind,
    ) -> Result<Written, StoreError> {
        let planned = self
            .rooms
            .get_mut(room)
            .ok_or_else(|| StoreError::Corrupt("append to a room not locked".into()))?;
        planned.last += 1;
        let seq = u64::try_from(planned.last)
            .map_err(|_| StoreError::Corrupt(format!("seq {}", planned.last)))?;
        let event = Event {
            room: room.clone(),
            seq,
            ts: self.now,
            sender,
            kind,
        };
        self.events.push(event.clone());
        Ok(Written {
            event,
            duplicate: false,
        })
    }

    async fn apply(
        &mut self,
        tx: &mut Transaction<'_, Any>,
        op: &WriteOp,
    ) -> Result<Written, StoreError> {
        match op {
            WriteOp::Message {
                site,
                room,
                sender,
                client_id,
                body,
            } => self.message(site, room, sender, client_id, body),
            WriteOp::Join { site, room, user } => {
                if self.room(site, room)? == RoomKind::Dialog {
                    return Err(StoreError::Invalid(
                        "a dialog keeps its two members; create a group room instead".into(),
                    ));
                }
                if self.is_member(room, user) {
                    return Err(StoreError::Conflict);
                }
                // Joins are rare: counted and inserted on the spot, so the
                // count sees this batch's earlier joins and leaves.
                let count: i64 =
                    sqlx::query("SELECT COUNT(*) AS n FROM members WHERE room_id = ?")
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
                .bind(self.now)
                .execute(&mut **tx)
                .await?;
                self.members.insert((room.clone(), user.clone()));
                let kind = EventKind::MemberJoined { user: user.clone() };
                self.append(room, None, kind)
            }
            WriteOp::Leave { site, room, user } => {
                if self.room(site, room)? == RoomKind::Dialog {
                    return Err(StoreError::Invalid("a dialog keeps its two members".into()));
                }
                if !self.is_member(room, user) {
                    return Err(StoreError::NotFound);
                }
                sqlx::query("DELETE FROM members WHERE room_id = ? AND user_id = ?")
                    .bind(room.as_str())
                    .bind(user.as_str())
                    .execute(&mut **tx)
                    .await?;
                let gone = (room.clone(), user.clone());
                self.members.remove(&gone);
                self.left.push(gone);
                let kind = EventKind::MemberLeft { user: user.clone() };
                self.append(room, None, kind)
            }
        }
    }

    fn message(
        &mut self,
        site: &SiteId,
        room: &RoomId,
        sender: &Option<UserId>,
        client_id: &Option<ClientId>,
        body: &Body,
    ) -> Result<Written, StoreError> {
        self.room(site, room)?;
        if let Some(sender) = sender
            && !self.is_member(room, sender)
        {
            return Err(StoreError::NotMember);
        }
        let kind = EventKind::Message {
            body: body.as_str().to_owned(),
            client_id: *client_id,
        };
        let Some(client_id) = client_id else {
            return self.append(room, sender.clone(), kind);
        };
        // A retry is answered with the message stored the first time,
        // whether by an earlier batch or earlier in this one.
        let key = (room.clone(), sender.clone(), *client_id);
        let earlier = self
            .stored
            .get(&key)
            .or_else(|| self.pending.get(&key).and_then(|&i| self.events.get(i)));
        if let Some(event) = earlier {
            return Ok(Written {
                event: event.clone(),
                duplicate: true,
            });
        }
        let written = self.append(room, sender.clone(), kind)?;
        self.pending.insert(key, self.events.len() - 1);
        Ok(written)
    }
}
