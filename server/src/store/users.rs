//! Users of a site, as their site's backend names them in tokens and API
//! calls.

use super::query::Arg;
use super::rows::parse_id;
use super::{Store, StoreError, now_ms};
use natter_shared::{SiteId, UserId};
use sqlx::Row;
use std::collections::HashMap;

/// Whether a verified user may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Welcome,
    /// The site banned them.
    Banned,
}

impl Store {
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
    ) -> Result<Standing, StoreError> {
        let row = self
            .read_rows(
                "SELECT name, banned FROM users WHERE site_id = ? AND id = ?",
                vec![site.as_str().into(), user.as_str().into()],
                |row| Ok((row.opt_text("name")?, row.int("banned")?)),
            )
            .await?
            .pop();
        if let Some((stored, banned)) = row {
            if banned != 0 {
                return Ok(Standing::Banned);
            }
            if name.is_none() || name == stored.as_deref() {
                return Ok(Standing::Welcome);
            }
        }
        self.upsert_user(site, user, name).await?;
        Ok(Standing::Welcome)
    }

    /// Whether the site banned the user.
    pub async fn is_banned(&self, site: &SiteId, user: &UserId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT banned FROM users WHERE site_id = ? AND id = ?")
            .bind(site.as_str())
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<i64, _>("banned")? != 0,
            None => false,
        })
    }

    /// Bans a user of a site (recording them if new), or lifts the ban.
    pub async fn set_banned(
        &self,
        site: &SiteId,
        user: &UserId,
        banned: bool,
    ) -> Result<(), StoreError> {
        self.upsert_user(site, user, None).await?;
        sqlx::query("UPDATE users SET banned = ? WHERE site_id = ? AND id = ?")
            .bind(i64::from(banned))
            .bind(site.as_str())
            .bind(user.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Keeps when a user was last online (milliseconds).
    pub async fn set_last_seen(
        &self,
        site: &SiteId,
        user: &UserId,
        at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE users SET last_seen = ? WHERE site_id = ? AND id = ?")
            .bind(at)
            .bind(site.as_str())
            .bind(user.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// When each of these users of a site was last online, for those seen.
    pub async fn last_seen(
        &self,
        site: &SiteId,
        users: &[UserId],
    ) -> Result<HashMap<UserId, i64>, StoreError> {
        const PER_QUERY: usize = 500;
        let mut seen = HashMap::new();
        for chunk in users.chunks(PER_QUERY) {
            // Only placeholders are formatted in; the ids are bound.
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "SELECT id, last_seen FROM users WHERE site_id = ? AND last_seen IS NOT NULL AND id IN ({marks})"
            );
            let args = std::iter::once(site.as_str())
                .chain(chunk.iter().map(UserId::as_str))
                .map(Arg::from)
                .collect();
            let rows = self
                .read_rows(sql, args, |row| {
                    let user = parse_id(UserId::parse, row.text("id")?)?;
                    Ok((user, row.int("last_seen")?))
                })
                .await?;
            seen.extend(rows);
        }
        Ok(seen)
    }
}
