//! A batch through sqlx, for MySQL/MariaDB: each statement is one round
//! trip, and the batch costs about eight whatever its size. The rooms' rows
//! are locked `FOR UPDATE`, so nodes writing to the same room take turns
//! and seqs stay gap-free across nodes.

use super::batch::{Needs, Plan, Reads, RoomRow};
use super::statements::{self, Arg, Statement};
use super::{WriteOp, Written};
use crate::store::rows::{event_from_row, parse_id, room_kind};
use crate::store::{Store, StoreError, is_unique_violation, now_ms};
use natter_shared::{RoomId, UserId};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

/// Commits `ops` in one transaction. A domain refusal (not a member, a
/// room of another site…) answers its own write only; a database error
/// fails the whole batch, which is then rolled back.
///
/// Nearly every send is new, and looking a batch's client ids up costs
/// MariaDB more than the rest of the batch together (its range optimizer
/// weighs one range per key). So a batch is first written without the
/// lookup: a send stored before is then refused by the unique key, the
/// transaction is rolled back, and the batch is done again with it. (System
/// messages, which the key cannot hold, are looked up every time.)
pub(super) async fn try_commit(
    store: &Store,
    ops: &[&WriteOp],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    match commit(store, ops, Repeats::Refused).await {
        Err(StoreError::Db(err)) if is_unique_violation(&err) => {
            tracing::debug!("a batch held a repeated send; written again after looking it up");
            commit(store, ops, Repeats::LookedUp).await
        }
        outcome => outcome,
    }
}

/// One write of a batch that failed, again on its own. A failure during
/// the commit is ambiguous: the link to the database may have been cut
/// after the commit took. A send is then found by its client id. A member
/// already added (or already gone) is answered with the event that did
/// it, when that was stored since `since` (ms, when the failed batch
/// began): it is the failed batch's own, or one of the same moment that
/// did the same thing.
pub(super) async fn retry_alone(
    store: &Store,
    op: &WriteOp,
    since: i64,
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    let outcome = try_commit(store, &[op]).await?;
    let (room, user, joined) = match (op, outcome.first()) {
        (WriteOp::Join { room, user, .. }, Some(Err(StoreError::Conflict))) => (room, user, true),
        (WriteOp::Leave { room, user, .. }, Some(Err(StoreError::NotFound))) => (room, user, false),
        _ => return Ok(outcome),
    };
    let found = sqlx::query(concat!(
        "SELECT ",
        crate::store::rows::event_columns!(),
        " FROM events WHERE room_id = ? AND subject = ? AND kind = ? AND ts >= ? \
         AND seq > (SELECT last_seq FROM rooms WHERE id = ?) - ? ORDER BY seq DESC LIMIT 1"
    ))
    .bind(room.as_str())
    .bind(user.as_str())
    .bind(if joined {
        "member_joined"
    } else {
        "member_left"
    })
    .bind(since)
    .bind(room.as_str())
    .bind(RECENT_EVENTS)
    .fetch_optional(store.pool())
    .await?;
    match found {
        Some(row) => {
            tracing::info!(%room, %user, joined, "a membership change whose commit went unanswered had taken");
            Ok(vec![Ok(Written {
                event: event_from_row(&row)?,
                duplicate: true,
                freed: Vec::new(),
            })])
        }
        None => Ok(outcome),
    }
}

/// How far back [`retry_alone`] looks for a change already made: a room's
/// latest events, past which a change of the failed batch cannot be.
const RECENT_EVENTS: i64 = 10_000;

/// How a batch finds the sends it already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeats {
    /// It does not look: the unique key refuses them.
    Refused,
    /// Their client ids are looked up first.
    LookedUp,
}

async fn commit(
    store: &Store,
    ops: &[&WriteOp],
    repeats: Repeats,
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    let mut tx = store.pool().begin().await?;
    let mut needs = Needs::of(ops);
    if repeats == Repeats::Refused {
        // System messages have no sender for the unique key to refuse a
        // repeat by (NULLs are never equal): theirs are always looked up.
        needs.keys.retain(|((_, sender, _), _)| sender.is_none());
    }
    let reads = read(&mut tx, &needs).await?;
    let mut plan = Plan::new(reads, now_ms());
    let results: Vec<_> = ops.iter().map(|op| plan.decide(op)).collect();

    let writes = plan.into_writes();
    for statement in statements::writes(&writes)? {
        query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(results)
}

fn query(statement: Statement<'_>) -> Query<'_, Any, AnyArguments> {
    let mut query = sqlx::query(AssertSqlSafe(statement.sql));
    for arg in statement.args {
        query = match arg {
            Arg::Text(s) => query.bind(s),
            Arg::Int(i) => query.bind(i),
            Arg::Null => query.bind(None::<&str>),
        };
    }
    query
}

async fn fetch(
    tx: &mut Transaction<'_, Any>,
    statements: Vec<Statement<'_>>,
) -> Result<Vec<AnyRow>, StoreError> {
    let mut rows = Vec::new();
    for statement in statements {
        rows.extend(query(statement).fetch_all(&mut **tx).await?);
    }
    Ok(rows)
}

async fn read(tx: &mut Transaction<'_, Any>, needs: &Needs<'_>) -> Result<Reads, StoreError> {
    let mut reads = Reads::default();
    for row in fetch(tx, statements::lock_rooms(&needs.rooms, true)).await? {
        let kind: String = row.try_get("kind")?;
        reads.rooms.insert(
            parse_id(RoomId::parse, row.try_get::<String, _>("id")?)?,
            RoomRow {
                site: row.try_get("site_id")?,
                kind: room_kind(&kind)?,
                last_seq: row.try_get("last_seq")?,
                hooked: row.try_get::<i64, _>("hooks")? > 0,
            },
        );
    }
    for row in fetch(tx, statements::members(&needs.pairs)).await? {
        reads.keep_member(
            (
                parse_id(RoomId::parse, row.try_get::<String, _>("room_id")?)?,
                parse_id(UserId::parse, row.try_get::<String, _>("user_id")?)?,
            ),
            row.try_get("muted_until")?,
        );
    }
    for row in fetch(tx, statements::stored_messages(&needs.keys)).await? {
        reads.keep_stored(event_from_row(&row)?);
    }
    for row in fetch(tx, statements::events_at(&needs.targets)).await? {
        let event = event_from_row(&row)?;
        reads.targets.insert((event.room.clone(), event.seq), event);
    }
    for row in fetch(tx, statements::files(&needs.files, true)).await? {
        reads.keep_file(
            row.try_get("id")?,
            row.try_get("room_id")?,
            row.try_get("client_id")?,
        )?;
    }
    for row in fetch(tx, statements::member_counts(&needs.joined)).await? {
        reads.counts.insert(
            parse_id(RoomId::parse, row.try_get::<String, _>("room_id")?)?,
            row.try_get("n")?,
        );
    }
    Ok(reads)
}
