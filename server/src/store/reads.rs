//! Read markers and unread counts. A member's marker is the highest seq
//! they have seen (`members.read_seq`); it only moves forward. The
//! markers people set arrive many a second and are written in batches
//! ([`crate::reads`]); what counts as unread follows
//! [`natter_shared::protocol::counts_as_unread`].

use super::rows::{parse_id, seq_from_db};
use super::{Store, StoreError, seq_to_db};
use natter_shared::{RoomId, RoomInfo, Seq, SiteId, UserId};
use sqlx::Row;

/// The unread count of the member row `me`, as a scalar subquery: events
/// after `me.read_seq` that others (or the site) caused, messages or a
/// change of `me`'s own membership. Binds the user twice.
macro_rules! unread_after_marker {
    () => {
        "(SELECT COUNT(*) FROM events e WHERE e.room_id = me.room_id \
         AND e.seq > me.read_seq AND (e.sender IS NULL OR e.sender <> ?) \
         AND (e.kind = 'message' OR e.subject = ?))"
    };
}
pub(crate) use unread_after_marker;

/// One room's read state for a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    pub room: RoomId,
    /// The user's marker.
    pub read: Seq,
    /// Events after it that count as unread.
    pub unread: u32,
}

impl Store {
    /// Moves read markers forward, all in one transaction; a marker never
    /// goes back, and one for someone who is not a member changes nothing.
    pub async fn advance_read_markers(
        &self,
        markers: &[(RoomId, UserId, Seq)],
    ) -> Result<(), StoreError> {
        if markers.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for (room, user, seq) in markers {
            sqlx::query(
                "UPDATE members SET read_seq = ? WHERE room_id = ? AND user_id = ? AND read_seq < ?",
            )
            .bind(seq_to_db(*seq))
            .bind(room.as_str())
            .bind(user.as_str())
            .bind(seq_to_db(*seq))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The user's marker and unread count in each of their rooms, by room.
    pub async fn unread_counts(
        &self,
        site: &SiteId,
        user: &UserId,
    ) -> Result<Vec<Unread>, StoreError> {
        let sql = concat!(
            "SELECT me.room_id, me.read_seq, ",
            unread_after_marker!(),
            " AS unread FROM members me WHERE me.site_id = ? AND me.user_id = ? ORDER BY me.room_id"
        );
        let rows = sqlx::query(sql)
            .bind(user.as_str())
            .bind(user.as_str())
            .bind(site.as_str())
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(Unread {
                    room: parse_id(RoomId::parse, row.try_get::<String, _>("room_id")?)?,
                    read: seq_from_db(row.try_get("read_seq")?)?,
                    unread: u32::try_from(row.try_get::<i64, _>("unread")?).unwrap_or(u32::MAX),
                })
            })
            .collect()
    }

    /// One room as `user` sees it in `rooms`: with their marker and unread
    /// count. `None` when they are not a member (or it does not exist).
    pub async fn room_for_user(
        &self,
        site: &SiteId,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<RoomInfo>, StoreError> {
        let Some(mut info) = self.room(site, room).await? else {
            return Ok(None);
        };
        let sql = concat!(
            "SELECT me.read_seq, ",
            unread_after_marker!(),
            " AS unread FROM members me WHERE me.room_id = ? AND me.user_id = ?"
        );
        let row = sqlx::query(sql)
            .bind(user.as_str())
            .bind(user.as_str())
            .bind(room.as_str())
            .bind(user.as_str())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        info.read = seq_from_db(row.try_get("read_seq")?)?;
        info.unread = u32::try_from(row.try_get::<i64, _>("unread")?).unwrap_or(u32::MAX);
        Ok(Some(info))
    }
}
