//! Looking through a site's rooms and users, for the admin panel: a
//! search by id or name, paged by id.

use super::rows::{parse_id, room_kind, seq_from_db};
use super::{Store, StoreError};
use natter_shared::{RoomId, RoomKind, Seq, SiteId, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

/// A room as the panel lists it.
#[derive(Debug, Clone)]
pub struct RoomRow {
    pub id: RoomId,
    pub kind: RoomKind,
    pub title: Option<String>,
    pub last_seq: Seq,
    pub members: u32,
    pub created_at: i64,
}

/// A user as the panel lists it.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: UserId,
    pub name: Option<String>,
    pub banned: bool,
    pub last_seen: Option<i64>,
}

/// `text` as a lowercase LIKE pattern that matches it anywhere, its
/// wildcards taken literally (with `!` as the escape character, which
/// both databases read the same way).
fn contains(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '!') {
            pattern.push('!');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

fn limit_plus_one(limit: u32) -> i64 {
    i64::from(limit) + 1
}

/// Splits off the row past `limit`: true when there was one.
fn page<T>(mut rows: Vec<T>, limit: u32) -> (Vec<T>, bool) {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    (rows, more)
}

impl Store {
    /// A site's rooms whose id or title contains `query`, by id after
    /// `after`; true when more follow.
    pub async fn search_rooms(
        &self,
        site: &SiteId,
        query: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<RoomRow>, bool), StoreError> {
        let pattern = contains(query);
        let rows = sqlx::query(
            "SELECT r.id, r.kind, r.title, r.last_seq, r.created_at, \
             (SELECT COUNT(*) FROM members m WHERE m.room_id = r.id) AS member_count \
             FROM rooms r WHERE r.site_id = ? AND r.id > ? \
             AND (LOWER(r.id) LIKE ? ESCAPE '!' OR LOWER(r.title) LIKE ? ESCAPE '!') \
             ORDER BY r.id LIMIT ?",
        )
        .bind(site.as_str())
        .bind(after.unwrap_or(""))
        .bind(pattern.as_str())
        .bind(pattern.as_str())
        .bind(limit_plus_one(limit))
        .fetch_all(&self.pool)
        .await?;
        let rooms = rows
            .iter()
            .map(|row| {
                Ok(RoomRow {
                    id: parse_id(RoomId::parse, row.try_get("id")?)?,
                    kind: room_kind(&row.try_get::<String, _>("kind")?)?,
                    title: row.try_get("title")?,
                    last_seq: seq_from_db(row.try_get("last_seq")?)?,
                    members: u32::try_from(row.try_get::<i64, _>("member_count")?)
                        .unwrap_or(u32::MAX),
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(page(rooms, limit))
    }

    /// A site's users whose id or name contains `query`, by id after
    /// `after`; true when more follow.
    pub async fn search_users(
        &self,
        site: &SiteId,
        query: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<UserRow>, bool), StoreError> {
        let pattern = contains(query);
        let rows = sqlx::query(
            "SELECT id, name, banned, last_seen FROM users \
             WHERE site_id = ? AND id > ? AND (LOWER(id) LIKE ? ESCAPE '!' OR LOWER(name) LIKE ? ESCAPE '!') \
             ORDER BY id LIMIT ?",
        )
        .bind(site.as_str())
        .bind(after.unwrap_or(""))
        .bind(pattern.as_str())
        .bind(pattern.as_str())
        .bind(limit_plus_one(limit))
        .fetch_all(&self.pool)
        .await?;
        let users = rows
            .iter()
            .map(user_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(page(users, limit))
    }

    /// A user of a site, if the site knows them.
    pub async fn user_row(
        &self,
        site: &SiteId,
        user: &UserId,
    ) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, name, banned, last_seen FROM users WHERE site_id = ? AND id = ?",
        )
        .bind(site.as_str())
        .bind(user.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_from_row).transpose()
    }
}

fn user_from_row(row: &AnyRow) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        id: parse_id(UserId::parse, row.try_get("id")?)?,
        name: row.try_get("name")?,
        banned: row.try_get::<i64, _>("banned")? != 0,
        last_seen: row.try_get("last_seen")?,
    })
}

impl Store {
    /// The members of a room muted now, and until when (ms).
    pub async fn muted_members(
        &self,
        room: &RoomId,
    ) -> Result<std::collections::HashMap<UserId, i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, muted_until FROM members WHERE room_id = ? AND muted_until > ?",
        )
        .bind(room.as_str())
        .bind(super::now_ms())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    parse_id(UserId::parse, row.try_get("user_id")?)?,
                    row.try_get("muted_until")?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn patterns_take_wildcards_literally() {
        assert_eq!(super::contains("50%_Off!"), "%50!%!_off!!%");
        assert_eq!(super::contains(""), "%%");
    }
}
