//! A batch through sqlx, for MySQL/MariaDB: each statement is one round
//! trip, and the batch costs about ten whatever its size. The rooms' rows
//! are locked `FOR UPDATE`, so nodes writing to the same room take turns
//! and seqs stay gap-free across nodes.

use super::batch::{Needs, Plan, Reads, RoomRow};
use super::statements::{self, Arg, Statement};
use super::{WriteOp, Written};
use crate::store::rows::{event_from_row, parse_id, room_kind};
use crate::store::{Store, StoreError, now_ms};
use natter_shared::{RoomId, UserId};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe, Row, Transaction};

/// Commits `ops` in one transaction. A domain refusal (not a member, a
/// room of another site…) answers its own write only; a database error
/// fails the whole batch, which is then rolled back.
pub(super) async fn try_commit(
    store: &Store,
    ops: &[&WriteOp],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    let mut tx = store.pool().begin().await?;
    let needs = Needs::of(ops);
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
    for row in fetch(tx, statements::member_counts(&needs.joined)).await? {
        reads.counts.insert(
            parse_id(RoomId::parse, row.try_get::<String, _>("room_id")?)?,
            row.try_get("n")?,
        );
    }
    Ok(reads)
}
