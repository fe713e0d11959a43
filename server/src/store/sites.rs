//! Sites: the tenants of a server, each with its token secret, its API key
//! (stored hashed) and the origins allowed to embed its widget.

use super::rows::parse_id;
use super::{Store, StoreError, conflict_on_unique, new_id, now_ms};
use crate::auth::{self, Secret};
use natter_shared::api::{Receipts, Settings};
use natter_shared::{FileId, SiteId};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// A site as the server needs it.
#[derive(Debug, Clone)]
pub struct Site {
    pub id: SiteId,
    pub name: String,
    pub token_secret: Secret,
    pub origins: Vec<String>,
    /// Its own allow-list of file types (comma-separated), if it set one.
    pub file_types: Option<String>,
    /// What it shows its people of each other.
    pub settings: Settings,
    /// The token secret before the last rotation, and until when (Unix
    /// seconds) tokens it signed are still taken.
    pub previous_secret: Option<(Secret, i64)>,
}

/// How long a site looked up by an unauthenticated request is taken from
/// memory; a change made on another node shows within it.
const SITE_TTL: Duration = Duration::from_secs(2);

/// Most sites (and unknown site ids) kept in memory; past it the cache
/// starts again empty.
const MAX_CACHED_SITES: usize = 10_000;

/// Sites as the WebSocket upgrade and the widget page look them up: a
/// flood of upgrades costs one query per site every [`SITE_TTL`], an
/// unknown id included.
///
/// An entry's age counts from when its query began, not from when it
/// ended: a query that overlapped a change may have read the row as it
/// was before, and it must not keep that for a whole [`SITE_TTL`] after
/// the change. For the same reason a site forgotten (changed through this
/// node) is not cached again by a query begun before the change.
#[derive(Default)]
pub(super) struct SiteCache {
    entries: Mutex<HashMap<SiteId, (Instant, Cached)>>,
}

enum Cached {
    Site(Option<Site>),
    /// Changed through this node at the entry's instant: only a query
    /// begun after it may be cached.
    Forgotten,
}

impl SiteCache {
    /// What `look` makes of the cached entry (`None`: not cached, or
    /// stale).
    fn read<T>(&self, id: &SiteId, look: impl FnOnce(&Option<Site>) -> T) -> Option<T> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(id)? {
            (at, Cached::Site(site)) if at.elapsed() < SITE_TTL => Some(look(site)),
            _ => None,
        }
    }

    /// Keeps what a query begun at `asked` read, unless the entry holds
    /// something newer (a later query's answer, or a change).
    fn put(&self, id: SiteId, asked: Instant, site: Option<Site>) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.get(&id).is_some_and(|(at, _)| *at > asked) {
            return;
        }
        if entries.len() >= MAX_CACHED_SITES {
            entries.clear();
        }
        entries.insert(id, (asked, Cached::Site(site)));
    }

    pub(super) fn forget(&self, id: &SiteId) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_CACHED_SITES {
            entries.clear();
        }
        entries.insert(id.clone(), (Instant::now(), Cached::Forgotten));
    }
}

/// The columns [`Store::site_from_row`] reads.
const SITE_COLUMNS: &str = "id, name, token_secret, file_types, receipts_dialog, receipts_group, \
     presence, previous_secret, previous_until";

/// A site just created, with its API key (shown once, stored hashed).
#[derive(Debug, Clone)]
pub struct NewSite {
    pub site: Site,
    pub api_key: Secret,
}

/// Takes the site's row for the rest of the transaction, before it reads
/// anything: a write to the row that changes nothing holds the row's
/// lock (MySQL) or the database's write lock (SQLite), so another
/// transaction that does the same waits for this one to end. Not found
/// if there is no such site.
pub(super) async fn lock_site(
    tx: &mut Transaction<'_, Any>,
    site: &SiteId,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sites SET name = name WHERE id = ?")
        .bind(site.as_str())
        .execute(&mut **tx)
        .await?;
    let exists = sqlx::query("SELECT 1 FROM sites WHERE id = ?")
        .bind(site.as_str())
        .fetch_optional(&mut **tx)
        .await?;
    match exists {
        Some(_) => Ok(()),
        None => Err(StoreError::NotFound),
    }
}

/// Inserts a site's origins (none of them there yet).
async fn insert_origins(
    tx: &mut Transaction<'_, Any>,
    site: &SiteId,
    origins: &[String],
) -> Result<(), StoreError> {
    for origin in origins {
        sqlx::query("INSERT INTO site_origins (site_id, origin) VALUES (?, ?)")
            .bind(site.as_str())
            .bind(origin.as_str())
            .execute(&mut **tx)
            .await
            .map_err(conflict_on_unique)?;
    }
    Ok(())
}

impl Store {
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
        insert_origins(&mut tx, &id, origins).await?;
        tx.commit().await?;
        Ok(NewSite {
            site: Site {
                id,
                name: name.to_string(),
                token_secret: secret,
                origins: origins.to_vec(),
                file_types: None,
                settings: Settings::default(),
                previous_secret: None,
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
            self.sites.forget(site);
        }
        Ok(())
    }

    /// Renames a site and/or replaces the origins allowed to embed its
    /// widget, in one transaction: both are made, or neither.
    pub async fn change_site(
        &self,
        site: &SiteId,
        name: Option<&str>,
        origins: Option<&[String]>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_site(&mut tx, site).await?;
        if let Some(name) = name {
            sqlx::query("UPDATE sites SET name = ? WHERE id = ?")
                .bind(name)
                .bind(site.as_str())
                .execute(&mut *tx)
                .await?;
        }
        if let Some(origins) = origins {
            sqlx::query("DELETE FROM site_origins WHERE site_id = ?")
                .bind(site.as_str())
                .execute(&mut *tx)
                .await?;
            insert_origins(&mut tx, site, origins).await?;
        }
        tx.commit().await?;
        self.sites.forget(site);
        Ok(())
    }

    /// Deletes a site and everything of it (events, members, rooms,
    /// users, files, origins, webhooks) in one transaction; returns the ids of its
    /// files, whose bytes the caller deletes from the file store.
    pub async fn remove_site(&self, site: &SiteId) -> Result<Vec<FileId>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query("SELECT id FROM files WHERE site_id = ?")
            .bind(site.as_str())
            .fetch_all(&mut *tx)
            .await?;
        let files = rows
            .iter()
            .map(|row| parse_id(FileId::parse, row.try_get::<String, _>("id")?))
            .collect::<Result<Vec<_>, _>>()?;
        for sql in [
            "DELETE FROM webhook_outbox WHERE webhook_id IN (SELECT id FROM webhooks WHERE site_id = ?)",
            "DELETE FROM webhook_attempts WHERE webhook_id IN (SELECT id FROM webhooks WHERE site_id = ?)",
            "DELETE FROM webhooks WHERE site_id = ?",
            "DELETE FROM reports WHERE site_id = ?",
            "DELETE FROM audit_log WHERE site_id = ?",
            "DELETE FROM events WHERE room_id IN (SELECT id FROM rooms WHERE site_id = ?)",
            "DELETE FROM members WHERE site_id = ?",
            // Rooms before files: a send with files locks its room's row,
            // then its files' rows; taken in that order here too.
            "DELETE FROM rooms WHERE site_id = ?",
            "DELETE FROM files WHERE site_id = ?",
            "DELETE FROM users WHERE site_id = ?",
            "DELETE FROM site_origins WHERE site_id = ?",
        ] {
            sqlx::query(sql)
                .bind(site.as_str())
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("DELETE FROM sites WHERE id = ?")
            .bind(site.as_str())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        self.sites.forget(site);
        Ok(files)
    }

    /// After an UPDATE of one site's row: the cached copy is forgotten;
    /// `NotFound` when no row changed (no such site).
    fn site_updated(&self, site: &SiteId, rows: u64) -> Result<(), StoreError> {
        self.sites.forget(site);
        if rows == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Replaces a site's token secret; the old one still verifies tokens
    /// until `keep_until` (Unix seconds). Returns the new secret.
    pub async fn rotate_token_secret(
        &self,
        site: &SiteId,
        keep_until: i64,
    ) -> Result<Secret, StoreError> {
        let secret = Secret::new(auth::random_secret());
        let done = sqlx::query(
            "UPDATE sites SET previous_secret = token_secret, previous_until = ?, \
             token_secret = ? WHERE id = ?",
        )
        .bind(keep_until)
        .bind(secret.expose())
        .bind(site.as_str())
        .execute(&self.pool)
        .await?;
        self.site_updated(site, done.rows_affected())?;
        Ok(secret)
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

    /// A site by id, from memory when it was looked up in the last
    /// [`SITE_TTL`] (changes made through this node show at once).
    pub async fn site_cached(&self, id: &SiteId) -> Result<Option<Site>, StoreError> {
        if let Some(site) = self.sites.read(id, Option::clone) {
            return Ok(site);
        }
        let asked = Instant::now();
        let site = self.site(id).await?;
        self.sites.put(id.clone(), asked, site.clone());
        Ok(site)
    }

    /// Whether a site exists, through the same cache as
    /// [`Store::site_cached`] but without copying the site.
    pub async fn site_exists_cached(&self, id: &SiteId) -> Result<bool, StoreError> {
        match self.sites.read(id, Option::is_some) {
            Some(exists) => Ok(exists),
            None => Ok(self.site_cached(id).await?.is_some()),
        }
    }

    /// A site by id.
    pub async fn site(&self, id: &SiteId) -> Result<Option<Site>, StoreError> {
        let sql = format!("SELECT {SITE_COLUMNS} FROM sites WHERE id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
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
        let sql = format!("SELECT {SITE_COLUMNS} FROM sites WHERE api_key_hash = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
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
        let sql = format!("SELECT {SITE_COLUMNS} FROM sites ORDER BY id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
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
            file_types: row.try_get("file_types")?,
            settings: Settings {
                receipts: Receipts {
                    dialog: row.try_get::<i64, _>("receipts_dialog")? != 0,
                    group: row.try_get::<i64, _>("receipts_group")? != 0,
                },
                presence: row.try_get::<i64, _>("presence")? != 0,
            },
            previous_secret: match (
                row.try_get::<Option<String>, _>("previous_secret")?,
                row.try_get::<Option<i64>, _>("previous_until")?,
            ) {
                (Some(secret), Some(until)) => Some((Secret::new(secret), until)),
                _ => None,
            },
        })
    }

    /// Replaces what a site shows its people of each other.
    pub async fn set_site_settings(
        &self,
        site: &SiteId,
        settings: Settings,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE sites SET receipts_dialog = ?, receipts_group = ?, presence = ? WHERE id = ?",
        )
        .bind(i64::from(settings.receipts.dialog))
        .bind(i64::from(settings.receipts.group))
        .bind(i64::from(settings.presence))
        .bind(site.as_str())
        .execute(&self.pool)
        .await?;
        self.site_updated(site, done.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(name: &str) -> Option<Site> {
        Some(Site {
            id: SiteId::parse("s_1").expect("a site id"),
            name: name.to_string(),
            token_secret: Secret::new("secret".to_string()),
            origins: Vec::new(),
            file_types: None,
            settings: Settings::default(),
            previous_secret: None,
        })
    }

    fn name(cache: &SiteCache, id: &SiteId) -> Option<String> {
        cache
            .read(id, |site| site.as_ref().map(|s| s.name.clone()))
            .flatten()
    }

    /// An answer is as old as its question: one begun before a change
    /// never outlives the change by a whole TTL, nor outranks a newer one.
    #[test]
    fn a_cached_site_is_as_old_as_the_query_that_read_it() {
        let cache = SiteCache::default();
        let id = SiteId::parse("s_1").expect("a site id");

        // A query begun before a change made through this node: dropped.
        let before = Instant::now();
        cache.forget(&id);
        cache.put(id.clone(), before, named("old"));
        assert_eq!(name(&cache, &id), None);

        // One begun after it is kept, and an older answer arriving late
        // does not replace it.
        let after = Instant::now();
        cache.put(id.clone(), after, named("new"));
        cache.put(id.clone(), before, named("old"));
        assert_eq!(name(&cache, &id).as_deref(), Some("new"));

        // A query begun a TTL ago is stale as soon as it is answered.
        let slow = SiteCache::default();
        let long_ago = Instant::now()
            .checked_sub(SITE_TTL)
            .expect("the clock runs past a TTL");
        slow.put(id.clone(), long_ago, named("slow"));
        assert_eq!(name(&slow, &id), None);
    }
}
