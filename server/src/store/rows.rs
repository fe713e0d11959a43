//! Decoding rows into the protocol's types, and the one list of an event's
//! columns every query selects.

use super::StoreError;
use super::query::Cols;
use natter_shared::{ClientId, Event, EventKind, Member, RoomId, RoomInfo, RoomKind, Seq, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

/// The columns [`event_from_row`] reads, in the order every query selects
/// them and the writer inserts them: a literal, so queries stay
/// `&'static str` through `concat!`.
macro_rules! event_columns {
    () => {
        "room_id, seq, ts, kind, sender, client_id, body, subject, files"
    };
}
pub(crate) use event_columns;

pub(crate) fn seq_from_db(v: i64) -> Result<Seq, StoreError> {
    Seq::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative seq {v}")))
}

pub(crate) fn parse_id<T, E: std::fmt::Display>(
    parse: impl FnOnce(String) -> Result<T, E>,
    s: String,
) -> Result<T, StoreError> {
    parse(s).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A room's kind as stored.
pub(crate) fn room_kind(kind: &str) -> Result<RoomKind, StoreError> {
    RoomKind::parse(kind).ok_or_else(|| StoreError::Corrupt(format!("room kind {kind}")))
}

/// A room's columns: `id, kind, title, last_seq, created_at`, and when the
/// query is for one member, `read_seq` and `unread`.
pub(crate) fn room_from_row<R: Cols + ?Sized>(row: &R) -> Result<RoomInfo, StoreError> {
    let (read, unread) = if row.has("unread") {
        super::reads::read_state(row)?
    } else {
        (0, 0)
    };
    Ok(RoomInfo {
        id: parse_id(RoomId::parse, row.text("id")?)?,
        kind: room_kind(&row.text("kind")?)?,
        title: row.opt_text("title")?,
        members: Vec::new(),
        member_count: 0,
        last_seq: seq_from_db(row.int("last_seq")?)?,
        created_at: row.int("created_at")?,
        read,
        unread,
    })
}

/// A member's columns: `user_id, name, read_seq`.
pub(crate) fn member_from_row<R: Cols + ?Sized>(row: &R) -> Result<Member, StoreError> {
    Ok(Member {
        id: parse_id(UserId::parse, row.text("user_id")?)?,
        name: row.opt_text("name")?,
        read: Some(seq_from_db(row.int("read_seq")?)?),
    })
}

pub(crate) fn event_from_row(row: &AnyRow) -> Result<Event, StoreError> {
    event_from_columns(EventColumns {
        room_id: row.try_get("room_id")?,
        seq: row.try_get("seq")?,
        ts: row.try_get("ts")?,
        kind: row.try_get("kind")?,
        sender: row.try_get("sender")?,
        client_id: row.try_get("client_id")?,
        body: row.try_get("body")?,
        subject: row.try_get("subject")?,
        files: row.try_get("files")?,
    })
}

/// An event's columns as read, in [`event_columns!`] order, whichever
/// driver read them.
pub(crate) struct EventColumns {
    pub room_id: String,
    pub seq: i64,
    pub ts: i64,
    pub kind: String,
    pub sender: Option<String>,
    pub client_id: Option<String>,
    pub body: Option<String>,
    pub subject: Option<String>,
    /// Attachments, as JSON.
    pub files: Option<String>,
}

pub(crate) fn event_from_columns(c: EventColumns) -> Result<Event, StoreError> {
    let subject = |s: Option<String>| parse_id(UserId::parse, s.unwrap_or_default());
    let client_id = |id: Option<String>| {
        id.map(|id| ClientId::parse(&id).map_err(|e| StoreError::Corrupt(e.to_string())))
            .transpose()
    };
    let kind = match c.kind.as_str() {
        "message" => EventKind::Message {
            body: c.body.unwrap_or_default(),
            client_id: client_id(c.client_id)?,
            files: match c.files {
                Some(json) => serde_json::from_str(&json)
                    .map_err(|e| StoreError::Corrupt(format!("attachments: {e}")))?,
                None => Vec::new(),
            },
        },
        "member_joined" => EventKind::MemberJoined {
            user: subject(c.subject)?,
        },
        "member_left" => EventKind::MemberLeft {
            user: subject(c.subject)?,
        },
        "deleted" => EventKind::Deleted {
            client_id: client_id(c.client_id)?,
        },
        "message_deleted" => EventKind::MessageDeleted {
            target: c
                .body
                .as_deref()
                .and_then(|b| b.trim().parse().ok())
                .ok_or_else(|| StoreError::Corrupt("a tombstone without its target".into()))?,
        },
        other => return Err(StoreError::Corrupt(format!("event kind {other}"))),
    };
    Ok(Event {
        room: parse_id(RoomId::parse, c.room_id)?,
        seq: seq_from_db(c.seq)?,
        ts: c.ts,
        sender: c.sender.map(|s| parse_id(UserId::parse, s)).transpose()?,
        kind,
    })
}
