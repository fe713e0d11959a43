//! Pages of events from the embedded SQLite database through rusqlite, on
//! tokio's blocking threads: one hand-off per page, where sqlx's SQLite
//! driver hands every row from its worker thread through a channel and
//! its `Any` driver copies every value once more. Catch-up and history
//! are the reads that move many rows; everything else stays on the pool.
//! The batched writes of read markers take the same way, on connections
//! of their own that may write ([`Reader::writing`]).

use super::rows::{EventColumns, event_columns, event_from_columns};
use super::{StoreError, seq_to_db};
use natter_shared::{Event, RoomId, Seq};
use rusqlite::{Connection, OpenFlags};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Connections to one database file, opened on first use and kept for
/// the next: read-only unless made by [`Reader::writing`].
pub(super) struct Reader {
    path: Arc<Path>,
    idle: Mutex<Vec<Connection>>,
    writes: bool,
}

/// Connections kept between reads; more may be open while reads overlap.
const KEEP: usize = 4;

impl Reader {
    pub(super) fn new(path: Arc<Path>) -> Reader {
        Reader {
            path,
            idle: Mutex::new(Vec::new()),
            writes: false,
        }
    }

    /// Connections that may write. Their commits do not wait for the disk
    /// (`synchronous = NORMAL`): what they write may be lost to a power
    /// cut, never half-written, and the writer's next commit makes it
    /// durable with its own. Only for what may be lost so (read markers).
    pub(super) fn writing(path: Arc<Path>) -> Reader {
        Reader {
            writes: true,
            ..Reader::new(path)
        }
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let flags = if self.writes {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        } else {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        };
        let conn =
            Connection::open_with_flags(&self.path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        if self.writes {
            conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        }
        // As the pool's connections: pages through a memory map, and a
        // cache larger than the default 2 MiB.
        conn.execute_batch("PRAGMA mmap_size = 268435456; PRAGMA cache_size = -16384;")?;
        conn.set_prepared_statement_cache_capacity(8);
        Ok(conn)
    }

    /// Runs `f` on an idle connection (or a new one) on a blocking thread.
    pub(super) async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let this = Arc::clone(self);
        let run = move || {
            let taken = this.idle.lock().map(|mut idle| idle.pop()).ok().flatten();
            let conn = match taken {
                Some(conn) => conn,
                None => this.open()?,
            };
            let out = f(&conn);
            // A connection whose read failed is not kept: it may be broken.
            if out.is_ok()
                && let Ok(mut idle) = this.idle.lock()
                && idle.len() < KEEP
            {
                idle.push(conn);
            }
            out
        };
        tokio::task::spawn_blocking(run)
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Up to `limit` events of `room` after or before `seq`, in the order
    /// the query names (`ASC` after, `DESC` before).
    pub(super) async fn events(
        self: &Arc<Self>,
        room: &RoomId,
        seq: Seq,
        after: bool,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let sql = if after {
            concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE room_id = ?1 AND seq > ?2 ORDER BY seq ASC LIMIT ?3"
            )
        } else {
            concat!(
                "SELECT ",
                event_columns!(),
                " FROM events WHERE room_id = ?1 AND seq < ?2 ORDER BY seq DESC LIMIT ?3"
            )
        };
        let room = room.as_str().to_string();
        let seq = seq_to_db(seq);
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            let mut rows = stmt.query(rusqlite::params![room, seq, i64::from(limit)])?;
            let mut events = Vec::with_capacity(limit as usize);
            while let Some(row) = rows.next()? {
                events.push(event_from_columns(EventColumns {
                    room_id: row.get(0)?,
                    seq: row.get(1)?,
                    ts: row.get(2)?,
                    kind: row.get(3)?,
                    sender: row.get(4)?,
                    client_id: row.get(5)?,
                    body: row.get(6)?,
                    subject: row.get(7)?,
                    files: row.get(8)?,
                })?);
            }
            Ok(events)
        })
        .await
    }
}
