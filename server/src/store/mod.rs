//! Persistence: one store interface over two backends, SQLite (embedded
//! default) and MySQL/MariaDB, through sqlx's `Any` driver with runtime
//! queries and binds. The SQL is shared; the few places where the dialects
//! differ live in [`Backend`].
//!
//! Reads and rare writes go straight to the pool, one file per resource:
//! [`sites`], [`users`], [`rooms`], [`events`], [`reads`], [`reports`],
//! [`webhooks`], [`audit`]; [`rows`] decodes what they
//! read; on SQLite, pages of events come through [`reader`] instead.
//! Everything that takes a room's next seq goes through the
//! [`writer`], which commits many of them in one transaction (group
//! commit).

mod admins;
mod audit;
mod browse;
mod events;
mod files;
mod pages;
mod query;
mod reader;
mod reads;
mod reports;
mod rooms;
mod rows;
mod sites;
mod users;
mod webhooks;
pub mod writer;

pub use admins::{Admin, NodeStats};
pub use browse::{RoomRow, UserRow};
pub use events::PageFrom;
pub use files::{AttachError, Completed, FileRow};
pub use pages::JsonPage;
pub use reader::SqliteReads;
pub use reads::Unread;
pub use sites::{NewSite, Site};
pub use users::Standing;
pub use webhooks::{Outcome, Queued, Target};

use natter_shared::Seq;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

/// Store failures. Domain answers (not a member, not found, conflict) are
/// variants of their own so callers map them to clear client errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("room not found")]
    RoomNotFound,
    #[error("not a member of the room")]
    NotMember,
    /// Muted in the room until this time (ms since the Unix epoch).
    #[error("muted in the room")]
    Muted(i64),
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The file is already in another message.
    #[error("file {0} is in another message; upload it again to post it again")]
    FileTaken(natter_shared::FileId),
    /// The file was deleted before the message that carries it was stored.
    #[error("file {0} no longer exists")]
    FileGone(natter_shared::FileId),
    #[error("unsupported database url {0:?}: use sqlite://PATH or mysql://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    MySql,
}

impl Backend {
    fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("mysql:") || url.starts_with("mariadb:") {
            Ok(Backend::MySql)
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }

    fn upsert_user_sql(self, keep_name: bool) -> &'static str {
        match (self, keep_name) {
            (Backend::Sqlite, false) => {
                "INSERT INTO users (site_id, id, name, created_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (site_id, id) DO UPDATE SET name = excluded.name"
            }
            (Backend::Sqlite, true) => {
                "INSERT INTO users (site_id, id, name, created_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (site_id, id) DO NOTHING"
            }
            (Backend::MySql, false) => {
                "INSERT INTO users (site_id, id, name, created_at) VALUES (?, ?, ?, ?) \
                 ON DUPLICATE KEY UPDATE name = VALUES(name)"
            }
            (Backend::MySql, true) => {
                "INSERT IGNORE INTO users (site_id, id, name, created_at) VALUES (?, ?, ?, ?)"
            }
        }
    }
}

/// Hides the password of a database URL for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// How long a health check waits for the database.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// The pool and the backend; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The database file, with SQLite: the writer opens its own connection.
    sqlite_path: Option<std::sync::Arc<std::path::Path>>,
    /// With SQLite: pages of events are read through rusqlite.
    reader: Option<std::sync::Arc<reader::Reader>>,
    /// With SQLite: read markers are written through rusqlite.
    marker_writer: Option<std::sync::Arc<reader::Reader>>,
    /// Sites looked up by unauthenticated requests.
    sites: std::sync::Arc<sites::SiteCache>,
    /// Most members a room lists (`--members-listed`).
    members_listed: u32,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Store {
    /// Connects, creating a SQLite file if missing, and runs migrations.
    pub async fn connect(url: &str, pool_size: u32) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            Backend::MySql => url.replacen("mariadb:", "mysql:", 1),
            _ => url.to_string(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let sqlite_path = match backend {
            Backend::Sqlite => Some(std::sync::Arc::from(
                sqlx::sqlite::SqliteConnectOptions::from_str(&url)?.get_filename(),
            )),
            Backend::MySql => None,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(pool_size.max(2))
            // No ping before each use (a round trip per query, and per
            // batch of the writer): a connection that broke fails its
            // query, is dropped, and the caller's error says so.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    match backend {
                        Backend::Sqlite => {
                            // WAL lets readers run beside the writer; FULL
                            // makes every acked commit survive power loss.
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = FULL").await?;
                            conn.execute("PRAGMA busy_timeout = 5000").await?;
                            // Read pages through a memory map (no copy per
                            // page read) and keep more of them per
                            // connection than the default 2 MiB.
                            conn.execute("PRAGMA mmap_size = 268435456").await?;
                            conn.execute("PRAGMA cache_size = -16384").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                        }
                        Backend::MySql => {
                            // A writer that has locked a room's row must see
                            // rows other nodes committed meanwhile.
                            conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                                .await?;
                            conn.execute("SET NAMES utf8mb4 COLLATE utf8mb4_bin")
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => sqlx::migrate!("./migrations/sqlite").run(&pool).await?,
            Backend::MySql => sqlx::migrate!("./migrations/mysql").run(&pool).await?,
        }
        let reader = sqlite_path
            .clone()
            .map(|path| std::sync::Arc::new(reader::Reader::new(path, SqliteReads::default())));
        let marker_writer = sqlite_path
            .clone()
            .map(|path| std::sync::Arc::new(reader::Reader::writing(path)));
        Ok(Store {
            pool,
            backend,
            sqlite_path,
            reader,
            marker_writer,
            sites: Default::default(),
            members_listed: natter_shared::limits::MEMBERS_LISTED,
        })
    }

    /// Sets how many members a room lists (the rest are paged): at least
    /// 2, so a dialog always lists both (the flag's range says the same
    /// for the server; this holds for a store built without it).
    pub fn with_members_listed(mut self, listed: u32) -> Store {
        self.members_listed = listed.max(2);
        self
    }

    /// Where reads of the embedded SQLite database run (no effect on
    /// MySQL). Set before the store is shared.
    pub fn with_sqlite_reads(mut self, runs: SqliteReads) -> Store {
        self.reader = (self.sqlite_path.clone())
            .map(|path| std::sync::Arc::new(reader::Reader::new(path, runs)));
        self
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite database's file, if that is the backend.
    pub(crate) fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.sqlite_path.as_deref()
    }

    /// The pool, for the writer.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// True when the database answers within [`PING_TIMEOUT`] (rather
    /// than the pool's longer acquire timeout).
    pub async fn ping(&self) -> bool {
        let ping = sqlx::query("SELECT 1").execute(&self.pool);
        matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(_)))
    }
}

/// A new id: a prefix and a UUIDv7 without hyphens (sortable by creation).
pub fn new_id<T, F>(prefix: &str) -> Result<T, StoreError>
where
    F: std::fmt::Debug,
    T: TryFrom<String, Error = F>,
{
    let s = format!("{prefix}_{}", uuid::Uuid::now_v7().simple());
    T::try_from(s).map_err(|e| StoreError::Corrupt(format!("generated id refused: {e:?}")))
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn conflict_on_unique(e: sqlx::Error) -> StoreError {
    if is_unique_violation(&e) {
        StoreError::Conflict
    } else {
        StoreError::Db(e)
    }
}

/// Stores on SQLite files of their own, for unit tests.
#[cfg(test)]
pub(crate) mod scratch {
    use super::Store;
    use std::path::{Path, PathBuf};

    /// A new store on a fresh file under the temp directory, named after
    /// `what`.
    pub(crate) async fn open(what: &str) -> (Store, PathBuf) {
        let path = std::env::temp_dir().join(format!("natter-{what}-{}.db", uuid::Uuid::now_v7()));
        let store = Store::connect(&format!("sqlite://{}", path.display()), 2)
            .await
            .expect("a store");
        (store, path)
    }

    /// Removes the file and its WAL. Best effort: a leftover temp file
    /// harms nothing.
    pub(crate) fn remove(path: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}

/// Seqs are u64 on the wire and BIGINT in the database; real ones stay far
/// below i64::MAX, and larger cursors clamp.
pub(crate) fn seq_to_db(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_hide_passwords() {
        assert_eq!(redact_url("mysql://root:pw@h/db"), "mysql://root:***@h/db");
        assert_eq!(redact_url("mysql://root@h/db"), "mysql://root@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
