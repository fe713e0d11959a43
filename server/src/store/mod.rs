//! Persistence: one store interface over two backends, SQLite (embedded
//! default) and MySQL/MariaDB, through sqlx's `Any` driver with runtime
//! queries and binds. The SQL is shared; the few places where the dialects
//! differ live in [`Backend`].
//!
//! Reads and rare writes (sites, rooms, users) go straight to the pool.
//! Everything that takes a room's next seq goes through the [`writer`],
//! which commits many of them in one transaction (group commit).

pub mod writer;

use crate::auth::{self, Secret};
use natter_shared::{
    ClientId, Event, EventKind, Member, RoomId, RoomInfo, RoomKind, Seq, SiteId, UserId,
};
use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
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
    #[error("already exists")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("invalid input: {0}")]
    Invalid(String),
    #[error("unsupported database url {0:?}: use sqlite://PATH or mysql://USER@HOST/DB")]
    UnsupportedUrl(String),
    #[error("the store is shutting down")]
    Closed,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
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

    /// Locks a room's row and reads its counter. SQLite has one writer at
    /// a time, so a plain read inside the write transaction is enough.
    fn lock_room_sql(self) -> &'static str {
        match self {
            Backend::Sqlite => "SELECT last_seq, kind FROM rooms WHERE id = ? AND site_id = ?",
            Backend::MySql => {
                "SELECT last_seq, kind FROM rooms WHERE id = ? AND site_id = ? FOR UPDATE"
            }
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

/// A site as the server needs it.
#[derive(Debug, Clone)]
pub struct Site {
    pub id: SiteId,
    pub name: String,
    pub token_secret: Secret,
    pub origins: Vec<String>,
}

/// A site just created, with its API key (shown once, stored hashed).
#[derive(Debug, Clone)]
pub struct NewSite {
    pub site: Site,
    pub api_key: Secret,
}

/// The pool and the backend; cheap to clone.
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
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
        let pool = AnyPoolOptions::new()
            .max_connections(pool_size.max(2))
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
        Ok(Store { pool, backend })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool, for the writer.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// True when the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    // ---- sites ----

    /// Creates a site with a fresh token secret and API key.
    pub async fn create_site(
        &self,
        id: Option<SiteId>,
        name: &str,
        origins: &[String],
    ) -> Result<NewSite, StoreError> {
        let id = match id {
            Some(id) => id,
            None => new_id("s")?,
        };
        let secret = Secret::new(auth::random_secret());
        let api_key = auth::new_api_key();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sites (id, name, token_secret, api_key_hash, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(name)
        .bind(secret.expose())
        .bind(auth::hash_api_key(api_key.expose()))
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(conflict_on_unique)?;
        for origin in origins {
            sqlx::query("INSERT INTO site_origins (site_id, origin) VALUES (?, ?)")
                .bind(id.as_str())
                .bind(origin.as_str())
                .execute(&mut *tx)
                .await
                .map_err(conflict_on_unique)?;
        }
        tx.commit().await?;
        Ok(NewSite {
            site: Site {
                id,
                name: name.to_string(),
                token_secret: secret,
                origins: origins.to_vec(),
            },
            api_key,
        })
    }

    /// Adds an allowed origin to a site (no-op if present).
    pub async fn add_origin(&self, site: &SiteId, origin: &str) -> Result<(), StoreError> {
        let exists = sqlx::query("SELECT 1 FROM site_origins WHERE site_id = ? AND origin = ?")
            .bind(site.as_str())
            .bind(origin)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            sqlx::query("INSERT INTO site_origins (site_id, origin) VALUES (?, ?)")
                .bind(site.as_str())
                .bind(origin)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Replaces a site's API key; returns the new one.
    pub async fn rotate_api_key(&self, site: &SiteId) -> Result<Secret, StoreError> {
        let key = auth::new_api_key();
        let done = sqlx::query("UPDATE sites SET api_key_hash = ? WHERE id = ?")
            .bind(auth::hash_api_key(key.expose()))
            .bind(site.as_str())
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(key)
    }

    /// A site by id.
    pub async fn site(&self, id: &SiteId) -> Result<Option<Site>, StoreError> {
        let row = sqlx::query("SELECT id, name, token_secret FROM sites WHERE id = ?")
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.site_from_row(row).await?)),
            None => Ok(None),
        }
    }

    /// The site an API key belongs to.
    pub async fn site_by_api_key(&self, key: &str) -> Result<Option<Site>, StoreError> {
        let row = sqlx::query("SELECT id, name, token_secret FROM sites WHERE api_key_hash = ?")
            .bind(auth::hash_api_key(key))
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.site_from_row(row).await?)),
            None => Ok(None),
        }
    }

    /// Every site, by id.
    pub async fn sites(&self) -> Result<Vec<Site>, StoreError> {
        let rows = sqlx::query("SELECT id, name, token_secret FROM sites ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        let mut sites = Vec::with_capacity(rows.len());
        for row in rows {
            sites.push(self.site_from_row(row).await?);
        }
        Ok(sites)
    }

    async fn site_from_row(&self, row: AnyRow) -> Result<Site, StoreError> {
        let id = parse_id(SiteId::parse, row.try_get::<String, _>("id")?)?;
        let origins =
            sqlx::query("SELECT origin FROM site_origins WHERE site_id = ? ORDER BY origin")
                .bind(id.as_str())
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(|r| r.try_get::<String, _>("origin"))
                .collect::<Result<Vec<_>, _>>()?;
        Ok(Site {
            id,
            name: row.try_get("name")?,
            token_secret: Secret::new(row.try_get::<String, _>("token_secret")?),
            origins,
        })
    }

    // ---- users ----

    /// Records a user; a given name replaces the stored one.
    pub async fn upsert_user(
        &self,
        site: &SiteId,
        user: &UserId,
        name: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(self.backend.upsert_user_sql(name.is_none()))
            .bind(site.as_str())
            .bind(user.as_str())
            .bind(name)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a user unless already recorded as given: a read in the
    /// common case, a write only for a new user or a changed name (every
    /// connection's `auth` calls this).
    pub async fn ensure_user(
        &self,
        site: &SiteId,
        user: &UserId,
        name: Option<&str>,
    ) -> Result<(), StoreError> {
        let row = sqlx::query("SELECT name FROM users WHERE site_id = ? AND id = ?")
            .bind(site.as_str())
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            let stored: Option<String> = row.try_get("name")?;
            if name.is_none() || name == stored.as_deref() {
                return Ok(());
            }
        }
        self.upsert_user(site, user, name).await
    }

    // ---- rooms ----

    /// Creates a group room with its first members (no events: seq starts at 0).
    pub async fn create_group(
        &self,
        site: &SiteId,
        title: &str,
        members: &[Member],
    ) -> Result<RoomInfo, StoreError> {
        let id: RoomId = new_id("r")?;
        let now = now_ms();
        for m in members {
            self.upsert_user(site, &m.id, m.name.as_deref()).await?;
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO rooms (id, site_id, kind, title, dialog_key, last_seq, created_at) VALUES (?, ?, 'group', ?, NULL, 0, ?)",
        )
        .bind(id.as_str())
        .bind(site.as_str())
        .bind(title)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        for m in members {
            insert_member(&mut tx, &id, site, &m.id, now).await?;
        }
        tx.commit().await?;
        self.room(site, &id).await?.ok_or(StoreError::RoomNotFound)
    }

    /// Finds or creates the dialog between two users. The bool is true when
    /// it was created.
    pub async fn open_dialog(
        &self,
        site: &SiteId,
        a: &Member,
        b: &Member,
    ) -> Result<(RoomInfo, bool), StoreError> {
        if a.id == b.id {
            return Err(StoreError::Invalid(
                "a dialog needs two different users".into(),
            ));
        }
        let (x, y) = if a.id < b.id { (a, b) } else { (b, a) };
        let key = format!("{}\n{}", x.id, y.id);
        self.upsert_user(site, &x.id, x.name.as_deref()).await?;
        self.upsert_user(site, &y.id, y.name.as_deref()).await?;
        if let Some(room) = self.dialog_by_key(site, &key).await? {
            return Ok((room, false));
        }
        let id: RoomId = new_id("r")?;
        let now = now_ms();
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO rooms (id, site_id, kind, title, dialog_key, last_seq, created_at) VALUES (?, ?, 'dialog', NULL, ?, 0, ?)",
        )
        .bind(id.as_str())
        .bind(site.as_str())
        .bind(key.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // Someone opened the same dialog concurrently: theirs wins.
            Err(e) if is_unique_violation(&e) => {
                tx.rollback().await?;
                let room = self
                    .dialog_by_key(site, &key)
                    .await?
                    .ok_or(StoreError::RoomNotFound)?;
                return Ok((room, false));
            }
            Err(e) => return Err(e.into()),
        }
        insert_member(&mut tx, &id, site, &x.id, now).await?;
        insert_member(&mut tx, &id, site, &y.id, now).await?;
        tx.commit().await?;
        let room = self
            .room(site, &id)
            .await?
            .ok_or(StoreError::RoomNotFound)?;
        Ok((room, true))
    }

    async fn dialog_by_key(
        &self,
        site: &SiteId,
        key: &str,
    ) -> Result<Option<RoomInfo>, StoreError> {
        let row = sqlx::query("SELECT id FROM rooms WHERE site_id = ? AND dialog_key = ?")
            .bind(site.as_str())
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => {
                let id = parse_id(RoomId::parse, row.try_get::<String, _>("id")?)?;
                self.room(site, &id).await
            }
            None => Ok(None),
        }
    }

    /// A room of a site, with its members; `None` if it does not exist in
    /// that site.
    pub async fn room(&self, site: &SiteId, room: &RoomId) -> Result<Option<RoomInfo>, StoreError> {
        let row = sqlx::query(
            "SELECT id, kind, title, last_seq, created_at FROM rooms WHERE id = ? AND site_id = ?",
        )
        .bind(room.as_str())
        .bind(site.as_str())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let mut info = room_from_row(&row)?;
        let rows = sqlx::query(
            "SELECT m.user_id, u.name FROM members m \
             LEFT JOIN users u ON u.site_id = m.site_id AND u.id = m.user_id \
             WHERE m.room_id = ? ORDER BY m.user_id",
        )
        .bind(room.as_str())
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            info.members.push(member_from_row(&row)?);
        }
        Ok(Some(info))
    }

    /// True when the room exists in that site (one indexed lookup, no
    /// member list).
    pub async fn room_exists(&self, site: &SiteId, room: &RoomId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 FROM rooms WHERE id = ? AND site_id = ?")
            .bind(room.as_str())
            .bind(site.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Every room the user is a member of, with members, by id.
    pub async fn rooms_for_user(
        &self,
        site: &SiteId,
        user: &UserId,
    ) -> Result<Vec<RoomInfo>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.kind, r.title, r.last_seq, r.created_at FROM rooms r \
             JOIN members me ON me.room_id = r.id \
             WHERE me.site_id = ? AND me.user_id = ? ORDER BY r.id",
        )
        .bind(site.as_str())
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        let mut rooms = rows
            .iter()
            .map(room_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let rows = sqlx::query(
            "SELECT m.room_id, m.user_id, u.name FROM members me \
             JOIN members m ON m.room_id = me.room_id \
             LEFT JOIN users u ON u.site_id = m.site_id AND u.id = m.user_id \
             WHERE me.site_id = ? AND me.user_id = ? ORDER BY m.room_id, m.user_id",
        )
        .bind(site.as_str())
        .bind(user.as_str())
        .fetch_all(&self.pool)
        .await?;
        // Both queries are ordered by room id, so members are merged in one pass.
        let mut idx = 0;
        for row in rows {
            let room_id: String = row.try_get("room_id")?;
            while idx < rooms.len() && rooms[idx].id.as_str() < room_id.as_str() {
                idx += 1;
            }
            if let Some(room) = rooms.get_mut(idx)
                && room.id.as_str() == room_id
            {
                room.members.push(member_from_row(&row)?);
            }
        }
        Ok(rooms)
    }

    /// The ids of the rooms the user is a member of.
    pub async fn room_ids_for_user(
        &self,
        site: &SiteId,
        user: &UserId,
    ) -> Result<std::collections::HashSet<RoomId>, StoreError> {
        let rows = sqlx::query("SELECT room_id FROM members WHERE site_id = ? AND user_id = ?")
            .bind(site.as_str())
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| parse_id(RoomId::parse, r.try_get::<String, _>("room_id")?))
            .collect()
    }

    /// True when the user is a member of the room (in that site).
    pub async fn is_member(
        &self,
        site: &SiteId,
        room: &RoomId,
        user: &UserId,
    ) -> Result<bool, StoreError> {
        let row =
            sqlx::query("SELECT 1 FROM members WHERE room_id = ? AND site_id = ? AND user_id = ?")
                .bind(room.as_str())
                .bind(site.as_str())
                .bind(user.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    // ---- events ----

    /// Up to `limit` events with seq > `after`, ascending.
    pub async fn events_after(
        &self,
        room: &RoomId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT room_id, seq, ts, kind, sender, client_id, body, subject FROM events \
             WHERE room_id = ? AND seq > ? ORDER BY seq ASC LIMIT ?",
        )
        .bind(room.as_str())
        .bind(seq_to_db(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Up to `limit` events with seq < `before`, returned ascending (the
    /// newest `limit` of them).
    pub async fn events_before(
        &self,
        room: &RoomId,
        before: Seq,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT room_id, seq, ts, kind, sender, client_id, body, subject FROM events \
             WHERE room_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?",
        )
        .bind(room.as_str())
        .bind(seq_to_db(before))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        events.reverse();
        Ok(events)
    }
}

async fn insert_member(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    room: &RoomId,
    site: &SiteId,
    user: &UserId,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO members (room_id, site_id, user_id, joined_at) VALUES (?, ?, ?, ?)")
        .bind(room.as_str())
        .bind(site.as_str())
        .bind(user.as_str())
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(conflict_on_unique)?;
    Ok(())
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

/// Seqs are u64 on the wire and BIGINT in the database; real ones stay far
/// below i64::MAX, and larger cursors clamp.
pub(crate) fn seq_to_db(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_from_db(v: i64) -> Result<Seq, StoreError> {
    Seq::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative seq {v}")))
}

fn parse_id<T, E: std::fmt::Display>(
    parse: impl FnOnce(String) -> Result<T, E>,
    s: String,
) -> Result<T, StoreError> {
    parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn room_from_row(row: &AnyRow) -> Result<RoomInfo, StoreError> {
    let kind: String = row.try_get("kind")?;
    Ok(RoomInfo {
        id: parse_id(RoomId::parse, row.try_get::<String, _>("id")?)?,
        kind: RoomKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("room kind {kind}")))?,
        title: row.try_get("title")?,
        members: Vec::new(),
        last_seq: seq_from_db(row.try_get("last_seq")?)?,
        created_at: row.try_get("created_at")?,
    })
}

fn member_from_row(row: &AnyRow) -> Result<Member, StoreError> {
    Ok(Member {
        id: parse_id(UserId::parse, row.try_get::<String, _>("user_id")?)?,
        name: row.try_get("name")?,
    })
}

pub(crate) fn event_from_row(row: &AnyRow) -> Result<Event, StoreError> {
    let kind: String = row.try_get("kind")?;
    let sender: Option<String> = row.try_get("sender")?;
    let subject = || -> Result<UserId, StoreError> {
        let s: Option<String> = row.try_get("subject")?;
        parse_id(UserId::parse, s.unwrap_or_default())
    };
    let kind = match kind.as_str() {
        "message" => {
            let client_id: Option<String> = row.try_get("client_id")?;
            EventKind::Message {
                body: row
                    .try_get::<Option<String>, _>("body")?
                    .unwrap_or_default(),
                client_id: client_id
                    .map(|c| ClientId::parse(&c).map_err(|e| StoreError::Corrupt(e.to_string())))
                    .transpose()?,
            }
        }
        "member_joined" => EventKind::MemberJoined { user: subject()? },
        "member_left" => EventKind::MemberLeft { user: subject()? },
        other => return Err(StoreError::Corrupt(format!("event kind {other}"))),
    };
    Ok(Event {
        room: parse_id(RoomId::parse, row.try_get::<String, _>("room_id")?)?,
        seq: seq_from_db(row.try_get("seq")?)?,
        ts: row.try_get("ts")?,
        sender: sender.map(|s| parse_id(UserId::parse, s)).transpose()?,
        kind,
    })
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
