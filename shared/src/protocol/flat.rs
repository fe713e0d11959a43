//! Decoding server frames and events in one pass.
//!
//! A derived decoder for an internally tagged enum (`"type"` beside the
//! fields) or a flattened one (an event's `"kind"`) first copies the whole
//! object into a generic buffer, then decodes it again from there: twice
//! the work, and the largest piece of the widget's code. Here every field
//! any frame (or event) can carry is read straight into one flat struct,
//! and the tag then says which of them make the frame; a field the tag's
//! variant needs and the object lacks is reported as missing, as a
//! derived decoder would. Unknown fields are ignored, as before.

use super::{
    Attachment, ErrorCode, Event, EventKind, Limits, Member, Presence, RoomInfo, ServerFrame,
};
use crate::ids::{ClientId, RoomId, Seq, SiteId, UserId};
use serde::de::{Error, Unexpected, Visitor};
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum FrameType {
    Hello,
    Rooms,
    Page,
    Synced,
    Event,
    Ack,
    History,
    Members,
    Typing,
    Presence,
    Read,
    Resync,
    Error,
    Pong,
}

/// Every field of every server frame.
#[derive(Deserialize)]
struct FrameFields {
    #[serde(rename = "type")]
    ty: FrameType,
    protocol: Option<String>,
    site: Option<SiteId>,
    user: Option<UserId>,
    name: Option<String>,
    limits: Option<Limits>,
    rooms: Option<Vec<RoomInfo>>,
    room: Option<RoomId>,
    events: Option<Vec<Event>>,
    more: Option<bool>,
    #[serde(default)]
    reset: bool,
    event: Option<Event>,
    client_id: Option<ClientId>,
    seq: Option<Seq>,
    ts: Option<i64>,
    users: Option<Vec<Presence>>,
    members: Option<Vec<Member>>,
    next: Option<UserId>,
    reason: Option<String>,
    code: Option<ErrorCode>,
    message: Option<String>,
    retry_after_ms: Option<u64>,
    nonce: Option<u64>,
}

/// The field `name`, or the error a derived decoder gives for its absence.
fn need<T, E: Error>(value: Option<T>, name: &'static str) -> Result<T, E> {
    value.ok_or_else(|| E::missing_field(name))
}

impl FrameFields {
    fn frame<E: Error>(self) -> Result<ServerFrame, E> {
        Ok(match self.ty {
            FrameType::Hello => ServerFrame::Hello {
                protocol: need(self.protocol, "protocol")?,
                site: need(self.site, "site")?,
                user: need(self.user, "user")?,
                name: self.name,
                limits: need(self.limits, "limits")?,
            },
            FrameType::Rooms => ServerFrame::Rooms {
                rooms: need(self.rooms, "rooms")?,
            },
            FrameType::Page => ServerFrame::Page {
                room: need(self.room, "room")?,
                events: need(self.events, "events")?,
                more: need(self.more, "more")?,
                reset: self.reset,
            },
            FrameType::Synced => ServerFrame::Synced {},
            FrameType::Event => ServerFrame::Event {
                event: need(self.event, "event")?,
            },
            FrameType::Ack => ServerFrame::Ack {
                client_id: need(self.client_id, "client_id")?,
                room: need(self.room, "room")?,
                seq: need(self.seq, "seq")?,
                ts: need(self.ts, "ts")?,
            },
            FrameType::History => ServerFrame::History {
                room: need(self.room, "room")?,
                events: need(self.events, "events")?,
                more: need(self.more, "more")?,
            },
            FrameType::Members => ServerFrame::Members {
                room: need(self.room, "room")?,
                members: need(self.members, "members")?,
                next: self.next,
            },
            FrameType::Typing => ServerFrame::Typing {
                room: need(self.room, "room")?,
                user: need(self.user, "user")?,
            },
            FrameType::Presence => ServerFrame::Presence {
                users: need(self.users, "users")?,
            },
            FrameType::Read => ServerFrame::Read {
                room: need(self.room, "room")?,
                user: need(self.user, "user")?,
                seq: need(self.seq, "seq")?,
            },
            FrameType::Resync => ServerFrame::Resync {
                reason: need(self.reason, "reason")?,
            },
            FrameType::Error => ServerFrame::Error {
                code: need(self.code, "code")?,
                message: need(self.message, "message")?,
                client_id: self.client_id,
                room: self.room,
                retry_after_ms: self.retry_after_ms,
            },
            FrameType::Pong => ServerFrame::Pong { nonce: self.nonce },
        })
    }
}

impl<'de> Deserialize<'de> for ServerFrame {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        FrameFields::deserialize(deserializer)?.frame()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindTag {
    Message,
    MemberJoined,
    MemberLeft,
    Deleted,
    MessageDeleted,
}

/// Every field of every kind of event.
#[derive(Deserialize)]
struct EventFields {
    room: RoomId,
    seq: Seq,
    ts: i64,
    sender: Option<UserId>,
    kind: KindTag,
    body: Option<String>,
    client_id: Option<ClientId>,
    #[serde(default)]
    files: Vec<Attachment>,
    user: Option<UserId>,
    target: Option<Seq>,
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let f = EventFields::deserialize(deserializer)?;
        let kind = match f.kind {
            KindTag::Message => EventKind::Message {
                body: need(f.body, "body")?,
                client_id: f.client_id,
                files: f.files,
            },
            KindTag::MemberJoined => EventKind::MemberJoined {
                user: need(f.user, "user")?,
            },
            KindTag::MemberLeft => EventKind::MemberLeft {
                user: need(f.user, "user")?,
            },
            KindTag::Deleted => EventKind::Deleted {
                client_id: f.client_id,
            },
            KindTag::MessageDeleted => EventKind::MessageDeleted {
                target: need(f.target, "target")?,
            },
        };
        Ok(Event {
            room: f.room,
            seq: f.seq,
            ts: f.ts,
            sender: f.sender,
            kind,
        })
    }
}

/// Reads an error code by its wire name ([`ErrorCode::parse`]).
struct CodeVisitor;

impl Visitor<'_> for CodeVisitor {
    type Value = ErrorCode;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an error code")
    }

    fn visit_str<E: Error>(self, text: &str) -> Result<ErrorCode, E> {
        ErrorCode::parse(text).ok_or_else(|| E::invalid_value(Unexpected::Str(text), &self))
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(CodeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_field_is_named_and_unknown_fields_are_ignored() {
        let err =
            serde_json::from_str::<ServerFrame>(r#"{"type":"ack","room":"r1","seq":1,"ts":2}"#)
                .expect_err("no client_id");
        assert!(
            err.to_string().contains("missing field `client_id`"),
            "{err}"
        );
        let frame: ServerFrame =
            serde_json::from_str(r#"{"type":"pong","later":true}"#).expect("pong");
        assert_eq!(frame, ServerFrame::Pong { nonce: None });
        let err = serde_json::from_str::<ServerFrame>(r#"{"type":"later"}"#).expect_err("unknown");
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }

    #[test]
    fn every_error_code_reads_back_and_an_unknown_one_is_refused() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(code).expect("encode");
            assert_eq!(
                serde_json::from_str::<ErrorCode>(&json).expect("decode"),
                *code
            );
        }
        assert!(serde_json::from_str::<ErrorCode>(r#""nope""#).is_err());
    }

    #[test]
    fn events_of_each_kind_read_back() {
        let texts = [
            r#"{"room":"r1","seq":3,"ts":9,"sender":"al","kind":"message","body":"hi","files":[]}"#,
            r#"{"room":"r1","seq":4,"ts":9,"kind":"member_joined","user":"bo"}"#,
            r#"{"room":"r1","seq":5,"ts":9,"sender":"al","kind":"member_left","user":"bo"}"#,
            r#"{"room":"r1","seq":3,"ts":9,"sender":"al","kind":"deleted"}"#,
            r#"{"room":"r1","seq":6,"ts":9,"kind":"message_deleted","target":3}"#,
        ];
        for text in texts {
            let event: Event = serde_json::from_str(text).expect("decode");
            let again: Event =
                serde_json::from_str(&serde_json::to_string(&event).expect("encode"))
                    .expect("again");
            assert_eq!(event, again);
        }
        let err =
            serde_json::from_str::<Event>(r#"{"room":"r1","seq":4,"ts":9,"kind":"member_left"}"#)
                .expect_err("no user");
        assert!(err.to_string().contains("missing field `user`"), "{err}");
    }
}
