//! The group commit's statements, as text and bound values, shared by
//! both drivers. Each reads or writes what the whole batch needs in one
//! statement, whatever the batch's size.
//!
//! Lists of placeholders are padded to a power of two (repeating the last
//! value, which changes nothing in an `IN` or `OR` list), and inserts are
//! cut into power-of-two chunks, so a handful of statement shapes is
//! prepared once per connection and then served from the statement cache.
//! The SQL is fixed text and `?` placeholders only: every value is bound,
//! never formatted in.

use super::batch::{HookEvent, IdemKey, NewMember, Writes};
use crate::store::{StoreError, seq_to_db};
use natter_shared::{Event, EventKind, FileId, RoomId, Seq, UserId};

/// Most rows or keys one statement carries.
pub(super) const CHUNK: usize = 256;

/// A value to bind.
#[derive(Debug, Clone, Copy)]
pub(super) enum Arg<'a> {
    Text(&'a str),
    Int(i64),
    Null,
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Arg::Null, Arg::Text)
    }
}

/// One statement: its text and its values, in order.
pub(super) struct Statement<'a> {
    pub sql: String,
    pub args: Vec<Arg<'a>>,
}

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
pub(super) fn padded_chunks<T>(items: &[T]) -> impl Iterator<Item = Vec<&T>> {
    items.chunks(CHUNK).map(|chunk| {
        let mut padded: Vec<&T> = chunk.iter().collect();
        if let Some(&last) = padded.last() {
            padded.resize(chunk.len().next_power_of_two(), last);
        }
        padded
    })
}

/// `items` cut into chunks whose sizes are powers of two (for inserts,
/// which cannot repeat a row).
fn exact_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let n = if items.len() >= CHUNK {
            CHUNK
        } else {
            1 << items.len().ilog2()
        };
        let (chunk, rest) = items.split_at(n);
        items = rest;
        Some(chunk)
    })
}

/// `?, ?, …` for these rooms, with their ids.
fn room_list<'a>(rooms: &[&&'a RoomId]) -> (String, Vec<Arg<'a>>) {
    (
        repeat("?", ", ", rooms.len()),
        rooms.iter().map(|room| Arg::Text(room.as_str())).collect(),
    )
}

/// `(room_id = ? AND user_id = ?) OR …` for these pairs, with their values.
fn pairs_where<'a>(pairs: &[(&'a RoomId, &'a UserId)]) -> (String, Vec<Arg<'a>>) {
    (
        repeat("(room_id = ? AND user_id = ?)", " OR ", pairs.len()),
        pairs
            .iter()
            .flat_map(|(room, user)| [Arg::Text(room.as_str()), Arg::Text(user.as_str())])
            .collect(),
    )
}

/// Reads the rooms' rows, and how many webhooks their sites have (most
/// have none, and their batches then queue nothing); `lock` adds `FOR
/// UPDATE` (MySQL: on the rooms only, the webhooks are read as of the
/// transaction's view). Sorted, so two nodes lock rooms in the same order.
pub(super) fn lock_rooms<'a>(rooms: &[&'a RoomId], lock: bool) -> Vec<Statement<'a>> {
    padded_chunks(rooms)
        .map(|chunk| {
            let (list, args) = room_list(&chunk);
            Statement {
                sql: format!(
                    "SELECT id, site_id, kind, last_seq, \
                     (SELECT COUNT(*) FROM webhooks w WHERE w.site_id = rooms.site_id) AS hooks \
                     FROM rooms WHERE id IN ({list}) ORDER BY id{}",
                    if lock { " FOR UPDATE" } else { "" }
                ),
                args,
            }
        })
        .collect()
}

/// The rows of these files: `id, room_id, client_id` (the message that
/// holds each, if one does). `lock` adds `FOR UPDATE` (MySQL), so that a
/// file is bound to one message whichever node stores it, and is not
/// deleted while a message that carries it is being stored.
pub(super) fn files<'a>(ids: &[&'a FileId], lock: bool) -> Vec<Statement<'a>> {
    padded_chunks(ids)
        .map(|chunk| Statement {
            sql: format!(
                "SELECT id, room_id, client_id FROM files WHERE id IN ({}) ORDER BY id{}",
                repeat("?", ", ", chunk.len()),
                if lock { " FOR UPDATE" } else { "" }
            ),
            args: chunk.iter().map(|id| Arg::Text(id.as_str())).collect(),
        })
        .collect()
}

/// Which of these (room, user) pairs are memberships: rows of
/// `room_id, user_id, muted_until`.
pub(super) fn members<'a>(pairs: &[(&'a RoomId, &'a UserId)]) -> Vec<Statement<'a>> {
    padded_chunks(pairs)
        .map(|chunk| {
            let pairs: Vec<_> = chunk.into_iter().copied().collect();
            let (condition, args) = pairs_where(&pairs);
            Statement {
                sql: format!("SELECT room_id, user_id, muted_until FROM members WHERE {condition}"),
                args,
            }
        })
        .collect()
}

/// How many members these rooms have: rows of `room_id, n`.
pub(super) fn member_counts<'a>(rooms: &[&'a RoomId]) -> Vec<Statement<'a>> {
    padded_chunks(rooms)
        .map(|chunk| {
            let (list, args) = room_list(&chunk);
            Statement {
                sql: format!(
                    "SELECT room_id, COUNT(*) AS n FROM members WHERE room_id IN ({list}) GROUP BY room_id"
                ),
                args,
            }
        })
        .collect()
}

/// The messages stored under these keys: rows of the event columns. The
/// client ids are passed in their text form, kept alive by the caller.
pub(super) fn stored_messages<'a>(keys: &'a [(IdemKey, String)]) -> Vec<Statement<'a>> {
    // Members' sends are found through the unique key; system messages
    // (no sender, rare) through the same columns with `sender IS NULL`.
    let (members, system): (Vec<_>, Vec<_>) = keys
        .iter()
        .partition(|((_, sender, _), _)| sender.is_some());
    let mut statements = Vec::new();
    for (keys, group) in [
        (members, "(room_id = ? AND sender = ? AND client_id = ?)"),
        (system, "(room_id = ? AND sender IS NULL AND client_id = ?)"),
    ] {
        for chunk in padded_chunks(&keys) {
            let n = chunk.len();
            let mut args = Vec::with_capacity(n * 3);
            for ((room, sender, _), client_id) in chunk.into_iter().copied() {
                args.push(Arg::Text(room.as_str()));
                if let Some(sender) = sender {
                    args.push(Arg::Text(sender.as_str()));
                }
                args.push(Arg::Text(client_id.as_str()));
            }
            statements.push(Statement {
                sql: format!(
                    concat!(
                        "SELECT ",
                        crate::store::rows::event_columns!(),
                        " FROM events WHERE {}"
                    ),
                    repeat(group, " OR ", n)
                ),
                args,
            });
        }
    }
    statements
}

/// Everything a decided batch writes, in order: memberships ended, then
/// added, the new events, each moved counter.
pub(super) fn writes(writes: &Writes) -> Result<Vec<Statement<'_>>, StoreError> {
    let mut all = delete_members(&writes.removed);
    all.extend(insert_members(&writes.added));
    all.extend(
        insert_events(&writes.events, &writes.client_ids, &writes.files)
            .map_err(|_| StoreError::Corrupt("a seq beyond i64".into()))?,
    );
    all.extend(write_counters(&writes.counters));
    all.extend(empty_deleted(&writes.deleted));
    all.extend(bind_files(&writes.bound));
    all.extend(queue_webhooks(&writes.hooks));
    Ok(all)
}

/// Queues the new events for every webhook of their site that wants their
/// type, in the events' transaction. One statement per chunk whatever the
/// number of endpoints (none: nothing is inserted); rows are inserted in
/// room and seq order, so ids follow each room's seqs.
fn queue_webhooks(hooks: &[HookEvent]) -> Vec<Statement<'_>> {
    exact_chunks(hooks)
        .map(|chunk| {
            let mut rows =
                String::from("SELECT ? AS site_id, ? AS room_id, ? AS seq, ? AS type, ? AS ts");
            for _ in 1..chunk.len() {
                rows.push_str(" UNION ALL SELECT ?, ?, ?, ?, ?");
            }
            Statement {
                sql: format!(
                    "INSERT INTO webhook_outbox (webhook_id, room_id, seq, type, created_at) \
                     SELECT w.id, v.room_id, v.seq, v.type, v.ts FROM ({rows}) v \
                     JOIN webhooks w ON w.site_id = v.site_id AND (w.events & v.type) <> 0 \
                     ORDER BY v.room_id, v.seq, w.id"
                ),
                args: chunk
                    .iter()
                    .flat_map(|h| {
                        [
                            Arg::Text(h.site.as_str()),
                            Arg::Text(h.room.as_str()),
                            Arg::Int(h.seq),
                            Arg::Int(h.kind),
                            Arg::Int(h.ts),
                        ]
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Binds files to the new messages that carry them (few: one statement
/// each).
fn bind_files(bound: &[(FileId, RoomId, Option<String>)]) -> Vec<Statement<'_>> {
    bound
        .iter()
        .map(|(file, room, client_id)| Statement {
            sql: "UPDATE files SET room_id = ?, client_id = ? WHERE id = ?".into(),
            args: vec![
                Arg::Text(room.as_str()),
                Arg::from(client_id.as_deref()),
                Arg::Text(file.as_str()),
            ],
        })
        .collect()
}

/// Empties the rows of deleted messages: kind `deleted`, no body, no
/// files (the sender, time and client id stay).
fn empty_deleted(deleted: &[(RoomId, Seq)]) -> Vec<Statement<'_>> {
    deleted
        .iter()
        .map(|(room, seq)| Statement {
            sql: "UPDATE events SET kind = 'deleted', body = NULL, files = NULL \
                  WHERE room_id = ? AND seq = ?"
                .into(),
            args: vec![Arg::Text(room.as_str()), Arg::Int(seq_to_db(*seq))],
        })
        .collect()
}

/// The events at these places: rows of the event columns.
pub(super) fn events_at<'a>(places: &[(&'a RoomId, Seq)]) -> Vec<Statement<'a>> {
    places
        .iter()
        .map(|(room, seq)| Statement {
            sql: concat!(
                "SELECT ",
                crate::store::rows::event_columns!(),
                " FROM events WHERE room_id = ? AND seq = ?"
            )
            .into(),
            // A seq beyond the database's finds nothing: not found.
            args: vec![Arg::Text(room.as_str()), Arg::Int(seq_to_db(*seq))],
        })
        .collect()
}

/// Inserts the new events; `client_ids` holds their client ids' text and
/// `files` their attachments' JSON, one per event.
fn insert_events<'a>(
    events: &'a [Event],
    client_ids: &'a [Option<String>],
    files: &'a [Option<String>],
) -> Result<Vec<Statement<'a>>, std::num::TryFromIntError> {
    let mut statements = Vec::new();
    let mut offset = 0;
    for chunk in exact_chunks(events) {
        let mut args = Vec::with_capacity(chunk.len() * 9);
        let extra = client_ids[offset..].iter().zip(&files[offset..]);
        for (event, (client_id, files)) in chunk.iter().zip(extra) {
            let (body, subject): (Arg<'_>, Option<&str>) = match &event.kind {
                EventKind::Message { body, .. } => (Arg::Text(body.as_str()), None),
                EventKind::MemberJoined { user } | EventKind::MemberLeft { user } => {
                    (Arg::Null, Some(user.as_str()))
                }
                // The tombstone's target, in the body column.
                EventKind::MessageDeleted { target } => (Arg::Int(i64::try_from(*target)?), None),
                EventKind::Deleted { .. } => (Arg::Null, None),
            };
            args.extend([
                Arg::Text(event.room.as_str()),
                Arg::Int(i64::try_from(event.seq)?),
                Arg::Int(event.ts),
                Arg::Text(event.kind.name()),
                event.sender.as_ref().map(|s| s.as_str()).into(),
                client_id.as_deref().into(),
                body,
                subject.into(),
                files.as_deref().into(),
            ]);
        }
        offset += chunk.len();
        statements.push(Statement {
            sql: format!(
                concat!(
                    "INSERT INTO events (",
                    crate::store::rows::event_columns!(),
                    ") VALUES {}"
                ),
                repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?)", ", ", chunk.len())
            ),
            args,
        });
    }
    Ok(statements)
}

/// Adds the batch's new members.
fn insert_members<'a>(members: &'a [NewMember]) -> Vec<Statement<'a>> {
    exact_chunks(members)
        .map(|chunk| Statement {
            sql: format!(
                "INSERT INTO members (room_id, site_id, user_id, joined_at, read_seq) VALUES {}",
                repeat("(?, ?, ?, ?, ?)", ", ", chunk.len())
            ),
            args: chunk
                .iter()
                .flat_map(|m| {
                    [
                        Arg::Text(m.room.as_str()),
                        Arg::Text(m.site.as_str()),
                        Arg::Text(m.user.as_str()),
                        Arg::Int(m.joined_at),
                        Arg::Int(m.read_seq),
                    ]
                })
                .collect(),
        })
        .collect()
}

/// Removes the memberships the batch ended.
fn delete_members(pairs: &[(RoomId, UserId)]) -> Vec<Statement<'_>> {
    padded_chunks(pairs)
        .map(|chunk| {
            let pairs: Vec<_> = chunk.into_iter().map(|(room, user)| (room, user)).collect();
            let (condition, args) = pairs_where(&pairs);
            Statement {
                sql: format!("DELETE FROM members WHERE {condition}"),
                args,
            }
        })
        .collect()
}

/// Writes each changed room's counter.
fn write_counters(counters: &[(RoomId, i64)]) -> Vec<Statement<'_>> {
    padded_chunks(counters)
        .map(|chunk| {
            let mut args: Vec<Arg> = chunk
                .iter()
                .flat_map(|(room, last)| [Arg::Text(room.as_str()), Arg::Int(*last)])
                .collect();
            args.extend(chunk.iter().map(|(room, _)| Arg::Text(room.as_str())));
            Statement {
                sql: format!(
                    "UPDATE rooms SET last_seq = CASE id {} END WHERE id IN ({})",
                    repeat("WHEN ? THEN ?", " ", chunk.len()),
                    repeat("?", ", ", chunk.len())
                ),
                args,
            }
        })
        .collect()
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

    #[test]
    fn inserts_are_cut_into_powers_of_two_without_repeats() {
        let items: Vec<u32> = (0..300).collect();
        let sizes: Vec<usize> = exact_chunks(&items).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![256, 32, 8, 4]);
        let all: Vec<u32> = exact_chunks(&items).flatten().copied().collect();
        assert_eq!(all, items);
    }

    #[test]
    fn every_placeholder_has_a_value() {
        let room = RoomId::parse("r_1".to_string()).expect("a room id");
        let user = UserId::parse("u".to_string()).expect("a user id");
        let counters = vec![(room.clone(), 4); 5];
        for statement in lock_rooms(&[&room, &room, &room], true)
            .into_iter()
            .chain(members(&[(&room, &user); 3]))
            .chain(write_counters(&counters))
        {
            assert_eq!(
                statement.sql.matches('?').count(),
                statement.args.len(),
                "{}",
                statement.sql
            );
        }
    }
}
