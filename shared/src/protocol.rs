//! The v1 wire protocol: JSON text frames over a WebSocket, each an object
//! tagged by `"type"`. `docs/protocol.md` documents every frame with an
//! example; a test decodes each example, so the two cannot drift.
//!
//! A session: the client opens `/ws?site=SITE` asking for the
//! [`PROTOCOL`] subprotocol, sends [`ClientFrame::Auth`], receives
//! [`ServerFrame::Hello`], sends [`ClientFrame::Sync`] with its cursors and
//! receives [`ServerFrame::Rooms`], one or more [`ServerFrame::Page`]s, then
//! [`ServerFrame::Synced`]. From then on it sends messages (acked with
//! [`ServerFrame::Ack`] after commit) and receives live
//! [`ServerFrame::Event`]s.

use crate::ids::{ClientId, RoomId, Seq, SiteId, UserId};
use serde::{Deserialize, Serialize};

/// The WebSocket subprotocol (`Sec-WebSocket-Protocol`) of this version.
pub const PROTOCOL: &str = "natter.v1";

/// A room's cursor: the highest seq the client holds for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub room: RoomId,
    pub seq: Seq,
}

/// Frames a client sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientFrame {
    /// First frame of every connection: the token the site's backend signed.
    Auth { token: String },
    /// Catch up: for each room the client knows, the highest seq it holds.
    /// Rooms it does not list are announced and their latest page sent.
    Sync {
        #[serde(default)]
        cursors: Vec<Cursor>,
    },
    /// Post a message. Retrying with the same `client_id` is safe: the
    /// stored message is acked again, never duplicated.
    Send {
        client_id: ClientId,
        room: RoomId,
        body: String,
    },
    /// Older history: up to `limit` events with seq below `before`, newest
    /// last.
    History {
        room: RoomId,
        before: Seq,
        #[serde(default)]
        limit: Option<u32>,
    },
    /// The user is typing in a room. Ephemeral: never stored.
    Typing { room: RoomId },
    /// Application-level keepalive (browsers cannot send WebSocket pings).
    Ping {
        #[serde(default)]
        nonce: Option<u64>,
    },
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Authentication succeeded.
    Hello {
        protocol: String,
        site: SiteId,
        user: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        limits: Limits,
    },
    /// The rooms the user is a member of, sent first in answer to `sync`,
    /// and for a single room when the user joins it later.
    Rooms { rooms: Vec<RoomInfo> },
    /// One page of catch-up for a room, in seq order. `more` is true when
    /// another page for this room follows.
    Page {
        room: RoomId,
        events: Vec<Event>,
        more: bool,
    },
    /// Catch-up is complete: every room is current.
    Synced {},
    /// A live event in a room.
    Event { event: Event },
    /// A message of this connection was committed with this seq.
    Ack {
        client_id: ClientId,
        room: RoomId,
        seq: Seq,
        ts: i64,
    },
    /// Answer to `history`. `more` is true when older events exist.
    History {
        room: RoomId,
        events: Vec<Event>,
        more: bool,
    },
    /// Someone else is typing in a room.
    Typing { room: RoomId, user: UserId },
    /// The connection fell behind: live events were dropped for it. Send
    /// `sync` again with your cursors to fill the gap.
    Resync { reason: String },
    /// A request failed. `client_id` names the refused `send`, `room` the
    /// room concerned, when there is one.
    Error {
        code: ErrorCode,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<RoomId>,
    },
    /// Answer to `ping`.
    Pong {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<u64>,
    },
}

impl ServerFrame {
    /// An error frame without a client id or room.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        ServerFrame::Error {
            code,
            message: message.into(),
            client_id: None,
            room: None,
        }
    }
}

/// The limits in force, announced in `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_body_bytes: usize,
    pub page_size: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: crate::limits::MAX_FRAME_BYTES,
            max_body_bytes: crate::limits::MAX_BODY_BYTES,
            page_size: crate::limits::PAGE_SIZE,
        }
    }
}

/// A 1:1 dialog or a group room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    Dialog,
    Group,
}

impl RoomKind {
    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Dialog => "dialog",
            RoomKind::Group => "group",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "dialog" => Some(RoomKind::Dialog),
            "group" => Some(RoomKind::Group),
            _ => None,
        }
    }
}

/// A member of a room, with the display name the site gave them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub id: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// What a client needs to show a room in its list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    pub id: RoomId,
    pub kind: RoomKind,
    /// Group rooms have a title; a dialog is named after the other member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub members: Vec<Member>,
    /// The seq of the room's latest event (0 for an empty room).
    pub last_seq: Seq,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// One event in a room. Every change in a room is an event with the room's
/// next seq, so one cursor per room catches up on everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub room: RoomId,
    pub seq: Seq,
    /// Commit time, milliseconds since the Unix epoch.
    pub ts: i64,
    /// Who caused it; absent for system messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<UserId>,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A message. `client_id` is the sender's id for it (absent for
    /// messages posted through the HTTP API without one).
    Message {
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
    },
    /// `user` became a member.
    MemberJoined { user: UserId },
    /// `user` stopped being a member.
    MemberLeft { user: UserId },
}

impl EventKind {
    /// The stored name of the kind.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Message { .. } => "message",
            EventKind::MemberJoined { .. } => "member_joined",
            EventKind::MemberLeft { .. } => "member_left",
        }
    }
}

/// Stable error codes, in error frames and in HTTP error bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON or does not match any frame's shape.
    BadFrame,
    /// The frame's `type` is not one this protocol knows.
    UnknownFrame,
    /// A frame other than `auth` arrived before authentication.
    Unauthenticated,
    /// The token is malformed or its signature is wrong.
    TokenInvalid,
    /// The token's `alg` is not HS256 (`none` included).
    TokenAlgorithm,
    /// The token's `exp` has passed.
    TokenExpired,
    /// The token's `nbf` is still in the future.
    TokenNotYetValid,
    /// The token was signed for another site.
    TokenWrongSite,
    /// The request names a site that does not exist.
    UnknownSite,
    /// The caller is not a member of the room (or it does not exist, or it
    /// belongs to another site: the answer is the same on purpose).
    NotMember,
    /// The room does not exist in this site.
    RoomNotFound,
    /// A field is missing, malformed or out of its limits.
    InvalidInput,
    /// The message body is empty or longer than the limit.
    BodyInvalid,
    /// Too many requests in flight on this connection.
    TooManyRequests,
    /// The API key is missing or wrong.
    Unauthorized,
    /// Already exists (e.g. a member who is already in the room).
    Conflict,
    /// Not found (HTTP API).
    NotFound,
    /// Something failed on the server; it is logged there.
    Internal,
    /// The server is shutting down.
    ShuttingDown,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::UnknownFrame => "unknown_frame",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::TokenInvalid => "token_invalid",
            ErrorCode::TokenAlgorithm => "token_algorithm",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TokenNotYetValid => "token_not_yet_valid",
            ErrorCode::TokenWrongSite => "token_wrong_site",
            ErrorCode::UnknownSite => "unknown_site",
            ErrorCode::NotMember => "not_member",
            ErrorCode::RoomNotFound => "room_not_found",
            ErrorCode::InvalidInput => "invalid_input",
            ErrorCode::BodyInvalid => "body_invalid",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Internal => "internal",
            ErrorCode::ShuttingDown => "shutting_down",
        }
    }
}

/// Why a client frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl DecodeError {
    /// The error code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::UnknownType(_) => ErrorCode::UnknownFrame,
            DecodeError::Malformed(_) => ErrorCode::BadFrame,
        }
    }
}

const CLIENT_TYPES: &[&str] = &["auth", "sync", "send", "history", "typing", "ping"];

impl ClientFrame {
    /// Decodes a client frame, telling an unknown `type` apart from a
    /// malformed frame so the client gets the right error code.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => Ok(frame),
            Err(err) => {
                #[derive(Deserialize)]
                struct Tag {
                    #[serde(rename = "type")]
                    ty: String,
                }
                match serde_json::from_str::<Tag>(text) {
                    Ok(tag) if !CLIENT_TYPES.contains(&tag.ty.as_str()) => {
                        Err(DecodeError::UnknownType(tag.ty.chars().take(64).collect()))
                    }
                    _ => Err(DecodeError::Malformed(err.to_string())),
                }
            }
        }
    }
}

/// Why a message body, title or name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{what} is {len} bytes, over the limit of {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{0} contains a NUL character")]
    Nul(&'static str),
}

/// Checks a message body: not blank, at most `max` bytes, no NUL.
pub fn check_body(body: &str, max: usize) -> Result<(), TextError> {
    check_text("message body", body, max)
}

/// Checks a title or a display name: not blank, at most `max` bytes, no NUL.
pub fn check_text(what: &'static str, text: &str, max: usize) -> Result<(), TextError> {
    if text.trim().is_empty() {
        return Err(TextError::Empty(what));
    }
    if text.len() > max {
        return Err(TextError::TooLong {
            what,
            len: text.len(),
            max,
        });
    }
    if text.contains('\0') {
        return Err(TextError::Nul(what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_type_and_malformed_frames_get_different_codes() {
        let unknown = ClientFrame::decode(r#"{"type":"teleport"}"#).unwrap_err();
        assert_eq!(unknown.code(), ErrorCode::UnknownFrame);
        let malformed = ClientFrame::decode(r#"{"type":"send","room":"r"}"#).unwrap_err();
        assert_eq!(malformed.code(), ErrorCode::BadFrame);
        let not_json = ClientFrame::decode("{{{").unwrap_err();
        assert_eq!(not_json.code(), ErrorCode::BadFrame);
    }

    #[test]
    fn events_flatten_their_kind() {
        let ev = Event {
            room: RoomId::parse("r1").unwrap(),
            seq: 3,
            ts: 1,
            sender: None,
            kind: EventKind::MemberJoined {
                user: UserId::parse("bob").unwrap(),
            },
        };
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["kind"], "member_joined");
        assert_eq!(json["user"], "bob");
        assert!(json.get("sender").is_none());
        let back: Event = serde_json::from_value(json).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn error_codes_serialise_as_their_names() {
        for code in [
            ErrorCode::BadFrame,
            ErrorCode::TokenWrongSite,
            ErrorCode::NotMember,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
        }
    }

    #[test]
    fn bodies_are_checked() {
        assert!(check_body("hi", 10).is_ok());
        assert_eq!(check_body("  ", 10), Err(TextError::Empty("message body")));
        assert!(matches!(
            check_body("x".repeat(11).as_str(), 10),
            Err(TextError::TooLong { .. })
        ));
        assert!(check_body("a\0b", 10).is_err());
    }
}
