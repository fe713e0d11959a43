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
/// and migrated, with the pool's durability settings. `checkpointed`: a
/// [`Checkpointer`] runs beside it.
pub(super) fn open(path: &Path, checkpointed: bool) -> Result<Connection, StoreError> {
    let conn = connect(path)?;
    // WAL is a property of the file (set by the pool); FULL makes every
    // acked commit survive power loss. A batch's multi-row inserts keep a
    // statement journal (to undo one statement alone); in memory, it is
    // not written to a temporary file once past 64 KiB.
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA cache_size = -16384; \
         PRAGMA temp_store = MEMORY;",
    )?;
    conn.set_prepared_statement_cache_capacity(64);
    // Checkpoints are the checkpointer's; the writer makes one itself
    // only if the log grows this far all the same.
    if checkpointed {
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
    }
    Ok(conn)
}

/// A connection of its own to the database at `path`, waiting up to 5 s
/// for its locks.
fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// Pages in the write-ahead log past which the writer checkpoints it
/// itself (SQLite's default is 1,000, about 4 MiB).
const WRITER_CHECKPOINT_PAGES: i64 = 16_000;

/// Least time between two checkpoints of the checkpointer.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// Copies the write-ahead log into the database file on a thread and a
/// connection of its own, so that the writer's commits do not wait for
/// it (a passive checkpoint does not stop writes). Nudged after each
/// commit; at most one checkpoint every [`CHECKPOINT_EVERY`]. It ends
/// when the writer drops it.
pub(super) struct Checkpointer {
    nudge: std::sync::mpsc::SyncSender<()>,
}

impl Checkpointer {
    /// Starts the thread; `None` if its connection could not be opened or
    /// the thread started (the writer then checkpoints as SQLite does by
    /// default).
    pub(super) fn start(path: &Path) -> Option<Checkpointer> {
        let conn = match connect(path) {
            Ok(conn) => conn,
            Err(err) => {
                tracing::warn!(error = %err, "the checkpointer could not open the database; the writer checkpoints");
                return None;
            }
        };
        let (nudge, nudged) = std::sync::mpsc::sync_channel::<()>(1);
        let spawned = std::thread::Builder::new()
            .name("natter-checkpoint".into())
            .spawn(move || {
                while nudged.recv().is_ok() {
                    let checkpoint = conn
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                            row.get::<_, i64>(0)
                        });
                    if let Err(err) = checkpoint {
                        tracing::warn!(error = %err, "checkpoint failed; tried again after the next commit");
                    }
                    std::thread::sleep(CHECKPOINT_EVERY);
                }
            });
        match spawned {
            Ok(_) => Some(Checkpointer { nudge }),
            Err(err) => {
                tracing::warn!(error = %err, "could not start the checkpointer; the writer checkpoints");
                None
            }
        }
    }

    /// Tells the checkpointer that the log grew; never waits.
    pub(super) fn nudge(&self) {
        let _ = self.nudge.try_send(());
    }
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
    fetch(conn, statements::files(&needs.files, false), |row| {
        reads.keep_file(row.get("id")?, row.get("room_id")?, row.get("client_id")?)
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
