//! Rooms and their members: group rooms, the one dialog between two users,
//! and who is a member of what.

use super::query::Cols;
use super::reads::{unread_after_marker, unread_args};
use super::rows::{member_from_row, parse_id, room_from_row, room_kind, seq_from_db};
use super::{Store, StoreError, conflict_on_unique, is_unique_violation, new_id, now_ms};
use natter_shared::{Member, RoomId, RoomInfo, RoomKind, Seq, SiteId, UserId};
use sqlx::Row;
use std::collections::HashMap;

/// The members a `RoomInfo` lists, of the rooms `$rooms` picks (one `?`
/// or more), then a `?` for how many per room: the ones who read
/// furthest, then by user id; each row with `room_id`, the member's
/// columns and `cnt`, the room's member count; ordered by room and user.
macro_rules! listed_members {
    ($rooms:literal) => {
        concat!(
            "SELECT t.room_id, t.user_id, u.name, t.read_seq, t.cnt FROM (\
             SELECT m.room_id, m.site_id, m.user_id, m.read_seq, \
             ROW_NUMBER() OVER (PARTITION BY m.room_id ORDER BY m.read_seq DESC, m.user_id) AS rn, \
             COUNT(*) OVER (PARTITION BY m.room_id) AS cnt \
             FROM members m WHERE ",
            $rooms,
            ") t LEFT JOIN users u ON u.site_id = t.site_id AND u.id = t.user_id \
             WHERE t.rn <= ? ORDER BY t.room_id, t.user_id"
        )
    };
}

/// A [`listed_members!`] row's `cnt`.
fn member_count<R: Cols + ?Sized>(row: &R) -> Result<u32, StoreError> {
    let count = row.int("cnt")?;
    u32::try_from(count).map_err(|_| StoreError::Corrupt(format!("member count {count}")))
}

/// Rooms per query of [`Store::last_seqs`]: well within every database's
/// limit on binds.
const ROOMS_PER_QUERY: usize = 500;

impl Store {
    /// The site and latest seq of each of these rooms that exists.
    pub async fn last_seqs(
        &self,
        rooms: &[RoomId],
    ) -> Result<HashMap<RoomId, (SiteId, Seq)>, StoreError> {
        let mut found = HashMap::with_capacity(rooms.len());
        for chunk in rooms.chunks(ROOMS_PER_QUERY) {
            // Only placeholders are formatted in; the ids are bound.
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!("SELECT id, site_id, last_seq FROM rooms WHERE id IN ({marks})");
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for room in chunk {
                query = query.bind(room.as_str());
            }
            for row in query.fetch_all(&self.pool).await? {
                let room = parse_id(RoomId::parse, row.try_get::<String, _>("id")?)?;
                let site = parse_id(SiteId::parse, row.try_get::<String, _>("site_id")?)?;
                found.insert(room, (site, seq_from_db(row.try_get("last_seq")?)?));
            }
        }
        Ok(found)
    }

    /// The memberships begun at or after `since` (ms since the Unix
    /// epoch), newest first, at most `limit`: (site, room, user).
    pub async fn joined_since(
        &self,
        since: i64,
        limit: u32,
    ) -> Result<Vec<(SiteId, RoomId, UserId)>, StoreError> {
        let rows = sqlx::query(
            "SELECT site_id, room_id, user_id FROM members WHERE joined_at >= ? \
             ORDER BY joined_at DESC LIMIT ?",
        )
        .bind(since)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    parse_id(SiteId::parse, row.try_get::<String, _>("site_id")?)?,
                    parse_id(RoomId::parse, row.try_get::<String, _>("room_id")?)?,
                    parse_id(UserId::parse, row.try_get::<String, _>("user_id")?)?,
                ))
            })
            .collect()
    }

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
        super::webhooks::queue_room_created(&mut tx, site, &id, now).await?;
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
        super::webhooks::queue_room_created(&mut tx, site, &id, now).await?;
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

    /// A room of a site, with its member count and the members it lists
    /// (all up to `--members-listed`; past it, those who read furthest);
    /// `None` if it does not exist in that site.
    pub async fn room(&self, site: &SiteId, room: &RoomId) -> Result<Option<RoomInfo>, StoreError> {
        let info = self
            .read_rows(
                "SELECT id, kind, title, last_seq, created_at FROM rooms WHERE id = ? AND site_id = ?",
                vec![room.as_str().into(), site.as_str().into()],
                |row| room_from_row(row),
            )
            .await?
            .pop();
        let Some(mut info) = info else {
            return Ok(None);
        };
        let members = self
            .read_rows(
                listed_members!("m.room_id = ?"),
                vec![room.as_str().into(), i64::from(self.members_listed).into()],
                |row| Ok((member_count(row)?, member_from_row(row)?)),
            )
            .await?;
        for (count, member) in members {
            info.member_count = count;
            info.members.push(member);
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

    /// The rooms the user is a member of, by id, after `after` and at most
    /// `limit` of them: each with the members [`listed`](Self::room) (and
    /// their read markers), the user's marker and unread count.
    pub async fn rooms_for_user(
        &self,
        site: &SiteId,
        user: &UserId,
        after: Option<&RoomId>,
        limit: usize,
    ) -> Result<Vec<RoomInfo>, StoreError> {
        let sql = concat!(
            "SELECT r.id, r.kind, r.title, r.last_seq, r.created_at, me.read_seq, ",
            unread_after_marker!(),
            " AS unread FROM rooms r \
             JOIN members me ON me.room_id = r.id \
             WHERE me.site_id = ? AND me.user_id = ? AND me.room_id > ? \
             ORDER BY me.room_id LIMIT ?"
        );
        let after = after.map_or("", RoomId::as_str);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut args = unread_args(user);
        args.extend([
            site.as_str().into(),
            user.as_str().into(),
            after.into(),
            limit.into(),
        ]);
        let mut rooms = self.read_rows(sql, args, |row| room_from_row(row)).await?;
        let Some(last) = rooms.last().map(|r| r.id.clone()) else {
            return Ok(rooms);
        };
        let sql = listed_members!(
            "m.room_id IN (SELECT me.room_id FROM members me \
             WHERE me.site_id = ? AND me.user_id = ? AND me.room_id > ? AND me.room_id <= ?)"
        );
        let args = vec![
            site.as_str().into(),
            user.as_str().into(),
            after.into(),
            last.as_str().into(),
            i64::from(self.members_listed).into(),
        ];
        let members = self
            .read_rows(sql, args, |row| {
                Ok((
                    row.text("room_id")?,
                    member_count(row)?,
                    member_from_row(row)?,
                ))
            })
            .await?;
        // Both queries are ordered by room id, so members are merged in one pass.
        let mut idx = 0;
        for (room_id, count, member) in members {
            while idx < rooms.len() && rooms[idx].id.as_str() < room_id.as_str() {
                idx += 1;
            }
            if let Some(room) = rooms.get_mut(idx)
                && room.id.as_str() == room_id
            {
                room.member_count = count;
                room.members.push(member);
            }
        }
        Ok(rooms)
    }

    /// A room's members by user id after `after`, at most `limit` of them,
    /// and the `after` of the next page when there is one.
    pub async fn members_page(
        &self,
        room: &RoomId,
        after: Option<&UserId>,
        limit: u32,
    ) -> Result<(Vec<Member>, Option<UserId>), StoreError> {
        let mut members = self
            .read_rows(
                "SELECT m.user_id, u.name, m.read_seq FROM members m \
                 LEFT JOIN users u ON u.site_id = m.site_id AND u.id = m.user_id \
                 WHERE m.room_id = ? AND m.user_id > ? ORDER BY m.user_id LIMIT ?",
                vec![
                    room.as_str().into(),
                    after.map_or("", UserId::as_str).into(),
                    (i64::from(limit) + 1).into(),
                ],
                |row| member_from_row(row),
            )
            .await?;
        let next = (members.len() > limit as usize).then(|| {
            members.truncate(limit as usize);
            members.last().map(|m| m.id.clone())
        });
        Ok((members, next.flatten()))
    }

    /// The ids of the rooms the user is a member of.
    pub async fn room_ids_for_user(
        &self,
        site: &SiteId,
        user: &UserId,
    ) -> Result<std::collections::HashSet<RoomId>, StoreError> {
        let ids = self
            .read_rows(
                "SELECT room_id FROM members WHERE site_id = ? AND user_id = ?",
                vec![site.as_str().into(), user.as_str().into()],
                |row| parse_id(RoomId::parse, row.text("room_id")?),
            )
            .await?;
        Ok(ids.into_iter().collect())
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

    /// Mutes a member of a room until `until` (ms since the Unix epoch),
    /// or lifts the mute (`None`): their sends are refused with `muted`
    /// meanwhile. `RoomNotFound` / `NotMember` otherwise.
    pub async fn set_muted(
        &self,
        site: &SiteId,
        room: &RoomId,
        user: &UserId,
        until: Option<i64>,
    ) -> Result<(), StoreError> {
        if !self.room_exists(site, room).await? {
            return Err(StoreError::RoomNotFound);
        }
        if !self.is_member(site, room, user).await? {
            return Err(StoreError::NotMember);
        }
        sqlx::query(
            "UPDATE members SET muted_until = ? WHERE room_id = ? AND site_id = ? AND user_id = ?",
        )
        .bind(until)
        .bind(room.as_str())
        .bind(site.as_str())
        .bind(user.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The room's kind when the user is a member of it (one indexed
    /// lookup, no member list); `None` otherwise.
    pub async fn member_room_kind(
        &self,
        site: &SiteId,
        room: &RoomId,
        user: &UserId,
    ) -> Result<Option<RoomKind>, StoreError> {
        let kinds = self
            .read_rows(
                "SELECT r.kind FROM members m JOIN rooms r ON r.id = m.room_id \
                 WHERE m.room_id = ? AND m.site_id = ? AND m.user_id = ?",
                vec![
                    room.as_str().into(),
                    site.as_str().into(),
                    user.as_str().into(),
                ],
                |row| room_kind(&row.text("kind")?),
            )
            .await?;
        Ok(kinds.into_iter().next())
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
