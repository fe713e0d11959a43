//! Reads from the embedded SQLite database through rusqlite: by default
//! on the connection's own worker thread ([`SqliteReads::Workers`]), or
//! on tokio's blocking threads, one hand-off per read
//! ([`SqliteReads::Threads`]). sqlx's SQLite driver hands every row from
//! its worker thread through a channel and its `Any` driver copies every
//! value once more. A connection's first reads, catch-up and history take
//! this way; the HTTP API's reads stay on the pool. The batched writes of
//! read markers take it too, always on blocking threads, on connections
//! of their own that may write ([`Reader::writing`]).

use super::events::PageFrom;
use super::pages::{Columns, JsonPage};
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
    /// One per connection: reads beyond them wait for one to be free
    /// (a storm of clients must not open a connection and start a thread
    /// each).
    permits: Arc<tokio::sync::Semaphore>,
    writes: bool,
    /// Where reads run (writes always on a blocking thread).
    runs: SqliteReads,
}

/// Where the reads of the embedded SQLite database run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SqliteReads {
    /// On the worker thread that asks, as part of its task: a read of
    /// pages already in memory takes tens of microseconds, less than
    /// handing it to another thread and back; a read that must wait for
    /// the disk holds the worker meanwhile (its other tasks are taken up
    /// by the other workers).
    #[default]
    Workers,
    /// On a blocking thread each, the worker free meanwhile: for a
    /// database much larger than the memory that caches it.
    Threads,
}

/// Reads at once, each on a connection of its own, kept between reads.
const AT_ONCE: usize = 4;

impl Reader {
    pub(super) fn new(path: Arc<Path>, runs: SqliteReads) -> Reader {
        Reader {
            path,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(tokio::sync::Semaphore::new(AT_ONCE)),
            writes: false,
            runs,
        }
    }

    /// Connections that may write. Their commits do not wait for the disk
    /// (`synchronous = NORMAL`): what they write may be lost to a power
    /// cut, never half-written, and the writer's next commit makes it
    /// durable with its own. Only for what may be lost so (read markers).
    pub(super) fn writing(path: Arc<Path>) -> Reader {
        Reader {
            writes: true,
            ..Reader::new(path, SqliteReads::Threads)
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
        conn.set_prepared_statement_cache_capacity(16);
        Ok(conn)
    }

    /// Runs `f` on an idle connection (or a new one), where
    /// [`SqliteReads`] says.
    pub(super) async fn with<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        // Held until the read is done, even by a caller that stops waiting.
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let this = Arc::clone(self);
        let run = move || {
            let _permit = permit;
            let taken = this.idle.lock().map(|mut idle| idle.pop()).ok().flatten();
            let conn = match taken {
                Some(conn) => conn,
                None => this.open()?,
            };
            let out = f(&conn);
            // A connection whose read failed is not kept: it may be broken.
            if out.is_ok()
                && let Ok(mut idle) = this.idle.lock()
                && idle.len() < AT_ONCE
            {
                idle.push(conn);
            }
            out
        };
        if self.runs == SqliteReads::Workers {
            return run();
        }
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
        let sql = page_sql(after);
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

    /// A page of up to `limit` events of `room` from `from`, as JSON
    /// written on the reading thread; one more row is read to know whether
    /// more lie beyond.
    pub(super) async fn page_json(
        self: &Arc<Self>,
        room: &RoomId,
        from: PageFrom,
        limit: u32,
    ) -> Result<JsonPage, StoreError> {
        // Before: the newest rows first; the page is turned around once read.
        let (sql, seq) = match from {
            PageFrom::After(seq) => (page_sql(true), seq),
            PageFrom::Before(seq) => (page_sql(false), seq),
        };
        let room = room.as_str().to_string();
        let (seq, keep) = (seq_to_db(seq), limit as usize);
        self.with(move |conn| {
            let mut stmt = conn.prepare_cached(sql)?;
            let ask = i64::from(limit) + 1;
            let mut rows = stmt.query(rusqlite::params![room, seq, ask])?;
            let mut page = JsonPage::with_capacity(keep + 1);
            while let Some(row) = rows.next()? {
                let text = |i: usize| row.get_ref(i).and_then(|v| Ok(v.as_str_or_null()?));
                page.push_columns(Columns {
                    room_id: text(0)?.unwrap_or_default(),
                    seq: row.get(1)?,
                    ts: row.get(2)?,
                    kind: text(3)?.unwrap_or_default(),
                    sender: text(4)?,
                    client_id: text(5)?,
                    body: text(6)?,
                    subject: text(7)?,
                    files: text(8)?,
                })?;
            }
            // The extra row, if read, is the last either way.
            page.more = page.len() > keep;
            if page.more {
                page.drop_last();
            }
            if let PageFrom::Before(_) = from {
                page.reverse();
            }
            Ok(page)
        })
        .await
    }
}

/// The query of a page of a room's events: after a seq, ascending, or
/// before it, newest first; binds the room, the seq and the limit.
fn page_sql(after: bool) -> &'static str {
    if after {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn overlapping_reads_wait_for_a_free_connection() {
        let (store, path) = crate::store::scratch::open("reader").await;
        let file = store.sqlite_path.clone().expect("a SQLite store");
        let reader = Arc::new(Reader::new(file, SqliteReads::Threads));
        let (running, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let reads = (0..4 * AT_ONCE).map(|_| {
            let (reader, running, most) = (reader.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                reader
                    .with(move |conn| {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(20));
                        let one: i64 = conn.query_row("SELECT 1", [], |row| row.get(0))?;
                        running.fetch_sub(1, Ordering::SeqCst);
                        Ok(one)
                    })
                    .await
            })
        });
        for read in futures_util::future::join_all(reads).await {
            assert_eq!(read.expect("joined").expect("read"), 1);
        }
        let most = most.load(Ordering::SeqCst);
        assert!(most > 1, "reads overlap: {most}");
        assert!(most <= AT_ONCE, "at most {AT_ONCE} at once: {most}");
        assert!(reader.idle.lock().expect("idle").len() <= AT_ONCE);
        crate::store::scratch::remove(&path);
    }

    /// The thread each kind of reader reads on, seen from a runtime of
    /// one thread.
    async fn read_on(runs: SqliteReads) -> bool {
        let (store, path) = crate::store::scratch::open("reader-thread").await;
        let file = store.sqlite_path.clone().expect("a SQLite store");
        let reader = Arc::new(Reader::new(file, runs));
        let asking = std::thread::current().id();
        let reading = reader
            .with(|conn| {
                conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?;
                Ok(std::thread::current().id())
            })
            .await
            .expect("read");
        crate::store::scratch::remove(&path);
        reading == asking
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_run_on_the_asking_thread_or_a_blocking_one() {
        assert!(read_on(SqliteReads::Workers).await, "workers read in place");
        assert!(
            !read_on(SqliteReads::Threads).await,
            "threads read elsewhere"
        );
    }
}
