//! Admin accounts and their sign-in sessions. Passwords are kept as argon2
//! hashes (made by the caller), sessions as the SHA-256 of their cookie.

use super::rows::parse_id;
use super::{Store, StoreError, conflict_on_unique, now_ms};
use natter_shared::SiteId;
use sqlx::Row;
use sqlx::any::AnyRow;

/// An admin as the panel needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    pub id: i64,
    pub email: String,
    /// The sites this admin may manage; `None`: every site.
    pub sites: Option<Vec<SiteId>>,
}

impl Admin {
    /// Whether this admin may manage `site`.
    pub fn manages(&self, site: &SiteId) -> bool {
        self.sites.as_ref().is_none_or(|sites| sites.contains(site))
    }
}

fn admin_from_row(row: &AnyRow) -> Result<Admin, StoreError> {
    let sites = row
        .try_get::<Option<String>, _>("sites")?
        .map(|list| {
            list.split_whitespace()
                .map(|id| parse_id(SiteId::parse, id.to_string()))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(Admin {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        sites,
    })
}

impl Store {
    /// Adds an admin; `Conflict` when the e-mail address is taken.
    pub async fn add_admin(
        &self,
        email: &str,
        password_hash: &str,
        sites: Option<&[SiteId]>,
    ) -> Result<(), StoreError> {
        let sites = sites.map(|s| s.iter().map(SiteId::as_str).collect::<Vec<_>>().join(" "));
        sqlx::query(
            "INSERT INTO admins (email, password_hash, sites, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(email)
        .bind(password_hash)
        .bind(sites)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(conflict_on_unique)?;
        Ok(())
    }

    /// Replaces an admin's password and ends their sessions; `NotFound`
    /// when there is no such admin.
    pub async fn set_admin_password(
        &self,
        email: &str,
        password_hash: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE admins SET password_hash = ? WHERE email = ?")
            .bind(password_hash)
            .bind(email)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "DELETE FROM admin_sessions WHERE admin_id IN (SELECT id FROM admins WHERE email = ?)",
        )
        .bind(email)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every admin, by e-mail address.
    pub async fn admins(&self) -> Result<Vec<Admin>, StoreError> {
        let rows = sqlx::query("SELECT id, email, sites FROM admins ORDER BY email")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(admin_from_row).collect()
    }

    /// Removes an admin and their sessions; `NotFound` when there is none.
    pub async fn remove_admin(&self, email: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM admin_sessions WHERE admin_id IN (SELECT id FROM admins WHERE email = ?)",
        )
        .bind(email)
        .execute(&mut *tx)
        .await?;
        let done = sqlx::query("DELETE FROM admins WHERE email = ?")
            .bind(email)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// An admin and their password hash, by e-mail address.
    pub async fn admin_for_sign_in(
        &self,
        email: &str,
    ) -> Result<Option<(Admin, String)>, StoreError> {
        let row = sqlx::query("SELECT id, email, sites, password_hash FROM admins WHERE email = ?")
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| Ok((admin_from_row(&row)?, row.try_get("password_hash")?)))
            .transpose()
    }

    /// Starts a session (and drops the expired ones of everybody).
    pub async fn start_admin_session(
        &self,
        token_hash: &str,
        admin: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM admin_sessions WHERE expires_at <= ?")
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO admin_sessions (token_hash, admin_id, expires_at) VALUES (?, ?, ?)",
        )
        .bind(token_hash)
        .bind(admin)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The admin of a session that has not expired.
    pub async fn admin_session(&self, token_hash: &str) -> Result<Option<Admin>, StoreError> {
        let row = sqlx::query(
            "SELECT a.id, a.email, a.sites FROM admin_sessions s \
             JOIN admins a ON a.id = s.admin_id \
             WHERE s.token_hash = ? AND s.expires_at > ?",
        )
        .bind(token_hash)
        .bind(now_ms())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(admin_from_row).transpose()
    }

    /// Ends a session.
    pub async fn end_admin_session(&self, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM admin_sessions WHERE token_hash = ?")
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// One node's latest live numbers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NodeStats {
    pub label: String,
    pub connections: u64,
    pub per_minute: u64,
    /// Milliseconds since the Unix epoch.
    pub seen_at: i64,
}

/// Nodes not heard of for this long (ms) are forgotten.
const NODE_FORGOTTEN_MS: i64 = 10 * 60 * 1000;

impl Store {
    /// Keeps this node's latest numbers (and forgets nodes long gone).
    pub async fn put_node_stats(&self, id: &str, stats: &NodeStats) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM node_stats WHERE id = ? OR seen_at < ?")
            .bind(id)
            .bind(stats.seen_at.saturating_sub(NODE_FORGOTTEN_MS))
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO node_stats (id, label, connections, per_minute, seen_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(&stats.label)
        .bind(i64::try_from(stats.connections).unwrap_or(i64::MAX))
        .bind(i64::try_from(stats.per_minute).unwrap_or(i64::MAX))
        .bind(stats.seen_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The nodes heard of since `since` (ms), by label.
    pub async fn node_stats(&self, since: i64) -> Result<Vec<NodeStats>, StoreError> {
        let rows = sqlx::query(
            "SELECT label, connections, per_minute, seen_at FROM node_stats \
             WHERE seen_at >= ? ORDER BY label",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(NodeStats {
                    label: row.try_get("label")?,
                    connections: u64::try_from(row.try_get::<i64, _>("connections")?).unwrap_or(0),
                    per_minute: u64::try_from(row.try_get::<i64, _>("per_minute")?).unwrap_or(0),
                    seen_at: row.try_get("seen_at")?,
                })
            })
            .collect()
    }
}
