//! The audit log: what was done to a site's chat on its behalf, by whom
//! and when. Kept until the site is removed.

use super::{Store, StoreError, now_ms};
use natter_shared::SiteId;
use natter_shared::api::AuditEntry;
use sqlx::Row;

impl Store {
    /// Records one action.
    pub async fn record_audit(
        &self,
        site: &SiteId,
        actor: &str,
        action: &str,
        subject: &str,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_log (site_id, actor, action, subject, detail, at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(site.as_str())
        .bind(actor)
        .bind(action)
        .bind(subject)
        .bind(detail)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A site's log, newest first, before entry `before`; true when older
    /// entries follow.
    pub async fn audit_log(
        &self,
        site: &SiteId,
        before: Option<u64>,
        limit: u32,
    ) -> Result<(Vec<AuditEntry>, bool), StoreError> {
        let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
        let rows = sqlx::query(
            "SELECT id, actor, action, subject, detail, at FROM audit_log \
             WHERE site_id = ? AND id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(site.as_str())
        .bind(before)
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        let mut entries = rows
            .iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: u64::try_from(row.try_get::<i64, _>("id")?).unwrap_or(0),
                    actor: row.try_get("actor")?,
                    action: row.try_get("action")?,
                    subject: row.try_get("subject")?,
                    detail: row.try_get("detail")?,
                    at: row.try_get("at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let more = entries.len() > limit as usize;
        entries.truncate(limit as usize);
        Ok((entries, more))
    }
}
