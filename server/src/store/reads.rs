//! Read markers and unread counts. A member's marker is the highest seq
//! they have seen (`members.read_seq`); it only moves forward. The
//! markers people set arrive many a second and are written in batches
//! ([`crate::reads`]); what counts as unread follows
//! [`natter_shared::protocol::counts_as_unread`].

use super::query::{Arg, Cols};
use super::rows::{parse_id, seq_from_db};
use super::{Backend, Store, StoreError, seq_to_db};
use natter_shared::{RoomId, RoomInfo, Seq, SiteId, UserId};
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, Row};
use std::sync::Arc;

/// The unread count of the member row `me`, as a scalar subquery: events
/// after `me.read_seq` that others (or the site) caused, messages or a
/// change of `me`'s own membership. Binds the user twice: start the query
/// with [`counting_unread`].
macro_rules! unread_after_marker {
    () => {
        "(SELECT COUNT(*) FROM events e WHERE e.room_id = me.room_id \
         AND e.seq > me.read_seq AND (e.sender IS NULL OR e.sender <> ?) \
         AND (e.kind = 'message' OR e.subject = ?))"
    };
}
pub(crate) use unread_after_marker;

/// Markers per statement: three binds each, well within every
/// database's limit.
const MARKERS_PER_STATEMENT: usize = 300;

/// A query whose first placeholders are [`unread_after_marker!`]'s, with
/// them bound to `user`; the caller binds the rest, in order.
pub(crate) fn counting_unread<'q>(
    sql: &'static str,
    user: &'q UserId,
) -> Query<'q, Any, AnyArguments> {
    sqlx::query(sql).bind(user.as_str()).bind(user.as_str())
}

/// The arguments [`unread_after_marker!`] binds first, for
/// [`Store::read_rows`]; the caller appends the rest, in order.
pub(crate) fn unread_args(user: &UserId) -> Vec<Arg> {
    vec![user.as_str().into(), user.as_str().into()]
}

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
    /// Moves read markers forward, all in one transaction (on SQLite one
    /// prepared statement per marker through rusqlite, on MySQL a few
    /// hundred markers to a statement); a marker never goes back, and one
    /// for someone who is not a member changes nothing. No (room, user)
    /// may come twice.
    pub async fn advance_read_markers(
        &self,
        markers: Arc<Vec<(RoomId, UserId, Seq)>>,
    ) -> Result<(), StoreError> {
        if markers.is_empty() {
            return Ok(());
        }
        if let Some(conns) = &self.marker_writer {
            // One prepared statement run per marker, in one transaction,
            // on a blocking thread: no hand-off per statement, and no
            // statement text built per batch.
            return conns
                .with(move |conn| {
                    let tx = rusqlite::Transaction::new_unchecked(
                        conn,
                        rusqlite::TransactionBehavior::Immediate,
                    )?;
                    {
                        let mut update = tx.prepare_cached(
                            "UPDATE members SET read_seq = ?3 \
                             WHERE room_id = ?1 AND user_id = ?2 AND read_seq < ?3",
                        )?;
                        for (room, user, seq) in markers.iter() {
                            update.execute(rusqlite::params![
                                room.as_str(),
                                user.as_str(),
                                seq_to_db(*seq)
                            ])?;
                        }
                    }
                    tx.commit()?;
                    Ok(())
                })
                .await;
        }
        let mut tx = self.pool.begin().await?;
        for chunk in markers.chunks(MARKERS_PER_STATEMENT) {
            // Only placeholders are formatted in; the values are bound.
            let sql = match self.backend {
                Backend::Sqlite => format!(
                    "UPDATE members SET read_seq = v.column3 FROM (VALUES {}) AS v \
                     WHERE members.room_id = v.column1 AND members.user_id = v.column2 \
                     AND members.read_seq < v.column3",
                    vec!["(?, ?, ?)"; chunk.len()].join(", ")
                ),
                Backend::MySql => format!(
                    "UPDATE members m JOIN ({}) v ON m.room_id = v.room_id AND m.user_id = v.user_id \
                     SET m.read_seq = v.seq WHERE m.read_seq < v.seq",
                    std::iter::once("SELECT ? AS room_id, ? AS user_id, ? AS seq")
                        .chain(std::iter::repeat_n("SELECT ?, ?, ?", chunk.len() - 1))
                        .collect::<Vec<_>>()
                        .join(" UNION ALL ")
                ),
            };
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (room, user, seq) in chunk {
                query = query
                    .bind(room.as_str())
                    .bind(user.as_str())
                    .bind(seq_to_db(*seq));
            }
            query.execute(&mut *tx).await?;
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
        let rows = counting_unread(sql, user)
            .bind(site.as_str())
            .bind(user.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let (read, unread) = read_state(row)?;
                Ok(Unread {
                    room: parse_id(RoomId::parse, row.try_get::<String, _>("room_id")?)?,
                    read,
                    unread,
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
        let mut args = unread_args(user);
        args.extend([room.as_str().into(), user.as_str().into()]);
        let state = self.read_rows(sql, args, |row| read_state(row)).await?;
        let Some(state) = state.into_iter().next() else {
            return Ok(None);
        };
        (info.read, info.unread) = state;
        Ok(Some(info))
    }
}

/// A member row's `read_seq` and `unread` (the count, capped at `u32`).
pub(crate) fn read_state<R: Cols + ?Sized>(row: &R) -> Result<(Seq, u32), StoreError> {
    let read = seq_from_db(row.int("read_seq")?)?;
    let unread = u32::try_from(row.int("unread")?).unwrap_or(u32::MAX);
    Ok((read, unread))
}
