//! Decoding rows into the protocol's types, and the one list of an event's
//! columns every query selects.

use super::StoreError;
use natter_shared::{ClientId, Event, EventKind, Member, RoomId, RoomInfo, RoomKind, Seq, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

/// The columns [`event_from_row`] reads, in the order every query selects
/// them and the writer inserts them: a literal, so queries stay
/// `&'static str` through `concat!`.
macro_rules! event_columns {
    () => {
        "room_id, seq, ts, kind, sender, client_id, body, subject"
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

pub(crate) fn room_from_row(row: &AnyRow) -> Result<RoomInfo, StoreError> {
    let kind: String = row.try_get("kind")?;
    Ok(RoomInfo {
        id: parse_id(RoomId::parse, row.try_get::<String, _>("id")?)?,
        kind: RoomKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("room kind {kind}")))?,
        title: row.try_get("title")?,
        members: Vec::new(),
        last_seq: seq_from_db(row.try_get("last_seq")?)?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) fn member_from_row(row: &AnyRow) -> Result<Member, StoreError> {
    Ok(Member {
        id: parse_id(UserId::parse, row.try_get::<String, _>("user_id")?)?,
        name: row.try_get("name")?,
    })
}

pub(crate) fn event_from_row(row: &AnyRow) -> Result<Event, StoreError> {
    let kind: String = row.try_get("kind")?;
    let sender: Option<String> = row.try_get("sender")?;
    let subject = || -> Result<UserId, StoreError> {
        let s: Option<String> = row.try_get("subject")?;
        parse_id(UserId::parse, s.unwrap_or_default())
    };
    let kind = match kind.as_str() {
        "message" => {
            let client_id: Option<String> = row.try_get("client_id")?;
            EventKind::Message {
                body: row
                    .try_get::<Option<String>, _>("body")?
                    .unwrap_or_default(),
                client_id: client_id
                    .map(|c| ClientId::parse(&c).map_err(|e| StoreError::Corrupt(e.to_string())))
                    .transpose()?,
            }
        }
        "member_joined" => EventKind::MemberJoined { user: subject()? },
        "member_left" => EventKind::MemberLeft { user: subject()? },
        other => return Err(StoreError::Corrupt(format!("event kind {other}"))),
    };
    Ok(Event {
        room: parse_id(RoomId::parse, row.try_get::<String, _>("room_id")?)?,
        seq: seq_from_db(row.try_get("seq")?)?,
        ts: row.try_get("ts")?,
        sender: sender.map(|s| parse_id(UserId::parse, s)).transpose()?,
        kind,
    })
}
