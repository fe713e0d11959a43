//! A batch on the embedded SQLite database, through its own connection on
//! the writer's own thread. The whole transaction runs on that thread:
//! no hand-off per statement (sqlx's SQLite driver passes each statement
//! to a worker thread and back), and statements stay prepared between
//! batches. `BEGIN IMMEDIATE` takes the database's write lock up front.

use super::batch::{Needs, Plan, Reads, RoomRow};
use super::statements::{self, Arg, Statement};
use super::{WriteOp, Written};
use crate::store::rows::{EventColumns, event_from_columns, parse_id, room_kind};
use crate::store::{StoreError, now_ms};
use natter_shared::{RoomId, UserId};
use rusqlite::types::{ToSqlOutput, Value};
use rusqlite::{Connection, OpenFlags, ToSql, TransactionBehavior, params_from_iter};
use std::path::Path;
use std::time::Duration;

/// Opens the writer's connection to a database the pool already created
/// and migrated, with the pool's durability settings.
pub(super) fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    // WAL is a property of the file (set by the pool); FULL makes every
    // acked commit survive power loss. A batch's multi-row inserts keep a
    // statement journal (to undo one statement alone); in memory, it is
    // not written to a temporary file once past 64 KiB.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384; \
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Arg::Text(s) => ToSqlOutput::from(*s),
            Arg::Int(i) => ToSqlOutput::from(*i),
            Arg::Null => ToSqlOutput::Owned(Value::Null),
        })
    }
}

/// Commits `ops` in one transaction; see the MySQL path for the rules.
pub(super) fn try_commit(
    conn: &mut Connection,
    ops: &[&WriteOp],
) -> Result<Vec<Result<Written, StoreError>>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let needs = Needs::of(ops);
    let reads = read(&tx, &needs)?;
    let mut plan = Plan::new(reads, now_ms());
    let results: Vec<_> = ops.iter().map(|op| plan.decide(op)).collect();

    let writes = plan.into_writes();
    for statement in statements::writes(&writes)? {
        tx.prepare_cached(&statement.sql)?
            .execute(params_from_iter(statement.args))?;
    }
    tx.commit()?;
    Ok(results)
}

/// Runs each statement and hands each row to `each`.
fn fetch(
    conn: &Connection,
    statements: Vec<Statement<'_>>,
    mut each: impl FnMut(&rusqlite::Row<'_>) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for statement in statements {
        let mut prepared = conn.prepare_cached(&statement.sql)?;
        let mut rows = prepared.query(params_from_iter(statement.args))?;
        while let Some(row) = rows.next()? {
            each(row)?;
        }
    }
    Ok(())
}

/// An event from a row of the event columns.
fn event_of(row: &rusqlite::Row<'_>) -> Result<natter_shared::Event, StoreError> {
    event_from_columns(EventColumns {
        room_id: row.get("room_id")?,
        seq: row.get("seq")?,
        ts: row.get("ts")?,
        kind: row.get("kind")?,
        sender: row.get("sender")?,
        client_id: row.get("client_id")?,
        body: row.get("body")?,
        subject: row.get("subject")?,
        files: row.get("files")?,
    })
}

fn read(conn: &Connection, needs: &Needs<'_>) -> Result<Reads, StoreError> {
    let mut reads = Reads::default();
    fetch(conn, statements::lock_rooms(&needs.rooms, false), |row| {
        let kind: String = row.get("kind")?;
        reads.rooms.insert(
            parse_id(RoomId::parse, row.get::<_, String>("id")?)?,
            RoomRow {
                site: row.get("site_id")?,
                kind: room_kind(&kind)?,
                last_seq: row.get("last_seq")?,
                hooked: row.get::<_, i64>("hooks")? > 0,
            },
        );
        Ok(())
    })?;
    fetch(conn, statements::members(&needs.pairs), |row| {
        reads.keep_member(
            (
                parse_id(RoomId::parse, row.get::<_, String>("room_id")?)?,
                parse_id(UserId::parse, row.get::<_, String>("user_id")?)?,
            ),
            row.get("muted_until")?,
        );
        Ok(())
    })?;
    fetch(conn, statements::stored_messages(&needs.keys), |row| {
        reads.keep_stored(event_of(row)?);
        Ok(())
    })?;
    fetch(conn, statements::events_at(&needs.targets), |row| {
        let event = event_of(row)?;
        reads.targets.insert((event.room.clone(), event.seq), event);
        Ok(())
    })?;
    fetch(conn, statements::member_counts(&needs.joined), |row| {
        reads.counts.insert(
            parse_id(RoomId::parse, row.get::<_, String>("room_id")?)?,
            row.get("n")?,
        );
        Ok(())
    })?;
    Ok(reads)
}
