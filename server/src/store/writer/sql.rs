//! The group commit's statements: each reads or writes what the whole
//! batch needs in one round trip, whatever the batch's size.
//!
//! Their placeholder lists are padded to a power of two (repeating the last
//! value, which changes nothing in an `IN` or `OR` list), and inserts are
//! split into power-of-two chunks, so a handful of statement shapes is
//! prepared once per connection and served from sqlx's statement cache.
//! The generated SQL is only fixed text and `?` placeholders: every value
//! is bound, never formatted in.

use super::super::rows::{event_columns, event_from_row, parse_id};
use super::super::{Backend, StoreError};
use natter_shared::{ClientId, Event, EventKind, RoomId, RoomKind, UserId};
use sqlx::{Any, AssertSqlSafe, Row, Transaction};
use std::collections::{HashMap, HashSet};

/// Most rows or keys one statement carries.
const CHUNK: usize = 256;

/// A room's row as the batch locked it.
#[derive(Clone)]
pub(super) struct RoomRow {
    pub site: String,
    pub kind: RoomKind,
    pub last_seq: i64,
}

/// The key that makes a send idempotent: room, sender (none for a system
/// message) and the client's id.
pub(super) type IdemKey = (RoomId, Option<UserId>, ClientId);

/// `n` groups like `(?, ?)` joined by `sep`.
fn repeat(group: &str, sep: &str, n: usize) -> String {
    let mut sql = String::with_capacity(n * (group.len() + sep.len()));
    for i in 0..n {
        if i > 0 {
            sql.push_str(sep);
        }
        sql.push_str(group);
    }
    sql
}

/// `items` cut into chunks of at most [`CHUNK`], each padded to a power of
/// two by repeating its last item.
fn padded_chunks<T>(items: &[T]) -> impl Iterator<Item = Vec<&T>> {
    items.chunks(CHUNK).map(|chunk| {
        let mut padded: Vec<&T> = chunk.iter().collect();
        if let Some(&last) = padded.last() {
            padded.resize(chunk.len().next_power_of_two(), last);
        }
        padded
    })
}

/// Locks the rows of `rooms` (sorted, so two nodes lock in the same order)
/// and reads their kind, site and counter. SQLite's writer already holds
/// the database's write lock; MySQL locks each row `FOR UPDATE`.
pub(super) async fn lock_rooms(
    tx: &mut Transaction<'_, Any>,
    backend: Backend,
    rooms: &[&RoomId],
) -> Result<HashMap<RoomId, RoomRow>, StoreError> {
    let mut found = HashMap::with_capacity(rooms.len());
    for chunk in padded_chunks(rooms) {
        let mut sql = format!(
            "SELECT id, site_id, kind, last_seq FROM rooms WHERE id IN ({}) ORDER BY id",
            repeat("?", ", ", chunk.len())
        );
        if backend == Backend::MySql {
            sql.push_str(" FOR UPDATE");
        }
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for room in chunk {
            query = query.bind(room.as_str());
        }
        for row in query.fetch_all(&mut **tx).await? {
            let id = parse_id(RoomId::parse, row.try_get::<String, _>("id")?)?;
            let kind: String = row.try_get("kind")?;
            let kind = RoomKind::parse(&kind)
                .ok_or_else(|| StoreError::Corrupt(format!("room kind {kind}")))?;
            found.insert(
                id,
                RoomRow {
                    site: row.try_get("site_id")?,
                    kind,
                    last_seq: row.try_get("last_seq")?,
                },
            );
        }
    }
    Ok(found)
}

/// Which of these (room, user) pairs are memberships.
pub(super) async fn members(
    tx: &mut Transaction<'_, Any>,
    pairs: &[(&RoomId, &UserId)],
) -> Result<HashSet<(RoomId, UserId)>, StoreError> {
    let mut found = HashSet::with_capacity(pairs.len());
    for chunk in padded_chunks(pairs) {
        let sql = format!(
            "SELECT room_id, user_id FROM members WHERE {}",
            repeat("(room_id = ? AND user_id = ?)", " OR ", chunk.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (room, user) in chunk {
            query = query.bind(room.as_str()).bind(user.as_str());
        }
        for row in query.fetch_all(&mut **tx).await? {
            found.insert((
                parse_id(RoomId::parse, row.try_get::<String, _>("room_id")?)?,
                parse_id(UserId::parse, row.try_get::<String, _>("user_id")?)?,
            ));
        }
    }
    Ok(found)
}

/// The messages already stored under these keys.
pub(super) async fn stored_messages(
    tx: &mut Transaction<'_, Any>,
    keys: &[IdemKey],
) -> Result<HashMap<IdemKey, Event>, StoreError> {
    let mut found = HashMap::new();
    // Members' sends are found through the unique key; system messages
    // (no sender, rare) through the same columns with `sender IS NULL`.
    let (members, system): (Vec<&IdemKey>, Vec<&IdemKey>) =
        keys.iter().partition(|(_, sender, _)| sender.is_some());
    for (keys, group) in [
        (members, "(room_id = ? AND sender = ? AND client_id = ?)"),
        (system, "(room_id = ? AND sender IS NULL AND client_id = ?)"),
    ] {
        for chunk in padded_chunks(&keys) {
            let sql = format!(
                concat!("SELECT ", event_columns!(), " FROM events WHERE {}"),
                repeat(group, " OR ", chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (room, sender, client_id) in chunk.into_iter().copied() {
                query = query.bind(room.as_str());
                if let Some(sender) = sender {
                    query = query.bind(sender.as_str());
                }
                query = query.bind(client_id.to_string());
            }
            for row in query.fetch_all(&mut **tx).await? {
                let event = event_from_row(&row)?;
                if let EventKind::Message {
                    client_id: Some(client_id),
                    ..
                } = &event.kind
                {
                    found.insert(
                        (event.room.clone(), event.sender.clone(), *client_id),
                        event,
                    );
                }
            }
        }
    }
    Ok(found)
}

/// Inserts the batch's new events, in chunks whose sizes are powers of two.
pub(super) async fn insert_events(
    tx: &mut Transaction<'_, Any>,
    events: &[Event],
) -> Result<(), StoreError> {
    let mut rest = events;
    while !rest.is_empty() {
        let n = if rest.len() >= CHUNK {
            CHUNK
        } else {
            // The largest power of two that fits.
            1 << rest.len().ilog2()
        };
        let (chunk, after) = rest.split_at(n);
        rest = after;
        let sql = format!(
            concat!("INSERT INTO events (", event_columns!(), ") VALUES {}"),
            repeat("(?, ?, ?, ?, ?, ?, ?, ?)", ", ", chunk.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for event in chunk {
            let (body, client_id, subject) = match &event.kind {
                EventKind::Message { body, client_id } => (
                    Some(body.as_str()),
                    client_id.map(|c| c.to_string()),
                    None,
                ),
                EventKind::MemberJoined { user } | EventKind::MemberLeft { user } => {
                    (None, None, Some(user.as_str()))
                }
            };
            query = query
                .bind(event.room.as_str())
                .bind(seq_to_db(event.seq)?)
                .bind(event.ts)
                .bind(event.kind.name())
                .bind(event.sender.as_ref().map(|s| s.as_str()))
                .bind(client_id)
                .bind(body)
                .bind(subject);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Writes each changed room's counter, all in one statement per chunk.
pub(super) async fn write_counters(
    tx: &mut Transaction<'_, Any>,
    counters: &[(&RoomId, i64)],
) -> Result<(), StoreError> {
    for chunk in padded_chunks(counters) {
        let sql = format!(
            "UPDATE rooms SET last_seq = CASE id {} END WHERE id IN ({})",
            repeat("WHEN ? THEN ?", " ", chunk.len()),
            repeat("?", ", ", chunk.len())
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (room, last) in &chunk {
            query = query.bind(room.as_str()).bind(*last);
        }
        for (room, _) in &chunk {
            query = query.bind(room.as_str());
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

fn seq_to_db(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| StoreError::Corrupt(format!("seq {seq}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_padded_to_powers_of_two_and_chunked() {
        let items: Vec<u32> = (0..300).collect();
        let sizes: Vec<usize> = padded_chunks(&items).map(|c| c.len()).collect();
        assert_eq!(sizes, vec![256, 64]);
        let last = padded_chunks(&items).last().expect("a chunk");
        assert_eq!(*last[43], 299, "padding repeats the last item");
        assert_eq!(*last[63], 299);
        assert_eq!(padded_chunks(&[7u8]).map(|c| c.len()).sum::<usize>(), 1);
        assert_eq!(padded_chunks::<u8>(&[]).count(), 0);
        assert_eq!(repeat("?", ", ", 3), "?, ?, ?");
    }
}
