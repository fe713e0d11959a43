//! Users of a site, as their site's backend names them in tokens and API
//! calls.

use super::{Store, StoreError, now_ms};
use natter_shared::{SiteId, UserId};
use sqlx::Row;

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
}
