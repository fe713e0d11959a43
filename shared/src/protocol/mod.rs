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

use crate::ids::{ClientId, FileId, RoomId, Seq, SiteId, UserId};
use serde::{Deserialize, Serialize};

mod errors;
mod flat;

pub use errors::{DecodeError, ErrorCode};

/// The WebSocket subprotocol (`Sec-WebSocket-Protocol`) of this version.
pub const PROTOCOL: &str = "natter.v1";

/// A room's cursor: the highest seq the client holds for it, and the
/// commit time of the event at that seq. The time lets the server tell
/// that the client's copy is of another history of the room (a database
/// restored from a backup): the room is then sent again from scratch
/// (`page` with `reset`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    pub room: RoomId,
    pub seq: Seq,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
}

impl Cursor {
    /// A cursor without the event's time.
    pub fn new(room: RoomId, seq: Seq) -> Self {
        Cursor {
            room,
            seq,
            ts: None,
        }
    }
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
    /// `files` are ids of files this user uploaded (see `docs/protocol.md`,
    /// "Files"); with files, the body (a caption) may be empty.
    Send {
        client_id: ClientId,
        room: RoomId,
        body: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<FileId>,
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
    /// The person has seen the room up to `seq`: the user's read marker
    /// moves there (never back). Answered by nothing; the user's other
    /// devices, and the room's members where receipts are on, get `read`.
    Read { room: RoomId, seq: Seq },
    /// A room's members by user id, after `after`: answered by `members`.
    Members {
        room: RoomId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<UserId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<u32>,
    },
    /// Application-level keepalive (browsers cannot send WebSocket pings).
    Ping {
        #[serde(default)]
        nonce: Option<u64>,
    },
}

/// Someone's presence, as the members of their rooms see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub user: UserId,
    /// True while they have a connection open (on any device or node).
    pub online: bool,
    /// When they were last online, milliseconds since the Unix epoch
    /// (absent while online, and for someone never seen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<i64>,
}

/// Frames the server sends. Decoded by [`flat`]'s one-pass decoder (the
/// same JSON the derived one would take, in a fraction of the widget's
/// code).
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// another page for this room follows. `reset` is true when the
    /// client's copy of the room is not of the room's history (its cursor
    /// is ahead of the room, or the event at its cursor is another one):
    /// the client drops what it holds of the room and starts again from
    /// this page, the room's latest.
    Page {
        room: RoomId,
        events: Vec<Event>,
        more: bool,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        reset: bool,
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
    /// Answer to `members`: the next members by user id; `next` is the
    /// `after` of the following page, absent on the last.
    Members {
        room: RoomId,
        members: Vec<Member>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<UserId>,
    },
    /// Someone else is typing in a room.
    Typing { room: RoomId, user: UserId },
    /// Who of the people the user shares a room with is online: all of
    /// them after `rooms` in answer to `sync`, then each change. Never
    /// stored, never replayed.
    Presence { users: Vec<Presence> },
    /// A member's read marker moved: they have seen the room up to `seq`.
    /// Sent for the user's own marker (read on another device) and, where
    /// the site shows receipts, for the other members'.
    Read {
        room: RoomId,
        user: UserId,
        seq: Seq,
    },
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
        /// With `too_many_requests`: milliseconds until the request is
        /// taken. A throttled request is not refused: the server holds it
        /// and answers it then.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
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
            retry_after_ms: None,
        }
    }
}

/// The limits in force, announced in `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub max_frame_bytes: usize,
    pub max_body_bytes: usize,
    pub page_size: u32,
    /// Largest file, in bytes.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// Most files one message may carry.
    #[serde(default = "default_max_files")]
    pub max_files_per_message: usize,
    /// The file types this site takes: MIME types, families (`image/*`)
    /// or `*`. The server checks the type it sniffs from the bytes.
    #[serde(default)]
    pub file_types: Vec<String>,
    /// Most members a room's [`RoomInfo`] lists; `members` pages the rest.
    #[serde(default = "default_members_listed")]
    pub members_listed: u32,
    /// Most pages one `history` request is answered with (1 from a
    /// server that does not say).
    #[serde(default = "default_history_pages")]
    pub history_pages: u32,
}

fn default_history_pages() -> u32 {
    1
}

fn default_members_listed() -> u32 {
    crate::limits::MEMBERS_LISTED
}

fn default_max_file_bytes() -> u64 {
    crate::limits::MAX_FILE_BYTES
}

fn default_max_files() -> usize {
    crate::limits::MAX_FILES_PER_MESSAGE
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: crate::limits::MAX_FRAME_BYTES,
            max_body_bytes: crate::limits::MAX_BODY_BYTES,
            page_size: crate::limits::PAGE_SIZE,
            max_file_bytes: crate::limits::MAX_FILE_BYTES,
            max_files_per_message: crate::limits::MAX_FILES_PER_MESSAGE,
            file_types: crate::limits::DEFAULT_FILE_TYPES
                .split(',')
                .map(str::to_string)
                .collect(),
            members_listed: crate::limits::MEMBERS_LISTED,
            history_pages: crate::limits::HISTORY_PAGES,
        }
    }
}

/// A 1:1 dialog or a group room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Member {
    pub id: UserId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Their read marker: the highest seq they have seen. Given for the
    /// user themself, and for the others where the site shows receipts
    /// for this kind of room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Seq>,
}

impl Member {
    /// A member without a read marker.
    pub fn new(id: UserId, name: Option<String>) -> Self {
        Member {
            id,
            name,
            read: None,
        }
    }
}

/// What a client needs to show a room in its list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomInfo {
    pub id: RoomId,
    pub kind: RoomKind,
    /// Group rooms have a title; a dialog is named after the other member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub members: Vec<Member>,
    /// How many members the room has. `members` lists all of them up to
    /// [`Limits::members_listed`]; past it, the user and the members who
    /// read furthest, and the request `members` pages through everyone.
    #[serde(default)]
    pub member_count: u32,
    /// The seq of the room's latest event (0 for an empty room).
    pub last_seq: Seq,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// The user's read marker in this room.
    #[serde(default)]
    pub read: Seq,
    /// Events after the marker that count as unread for the user (see
    /// [`counts_as_unread`]).
    #[serde(default)]
    pub unread: u32,
}

/// One event in a room. Every change in a room is an event with the room's
/// next seq, so one cursor per room catches up on everything. Decoded by
/// [`flat`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum EventKind {
    /// A message. `client_id` is the sender's id for it (absent for
    /// messages posted through the HTTP API without one).
    Message {
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
        /// Attached files, in the order the sender gave them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<Attachment>,
    },
    /// `user` became a member.
    MemberJoined { user: UserId },
    /// `user` stopped being a member.
    MemberLeft { user: UserId },
    /// A message the site deleted: what is left of it where it was (its
    /// sender and time; no body, no files). `client_id` still answers the
    /// sender's retries.
    Deleted {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<ClientId>,
    },
    /// The tombstone of a deletion, appended to the room: the message at
    /// seq `target` was deleted (clients holding it drop its content).
    MessageDeleted { target: Seq },
}

/// A file as a message carries it. The type is the one the server sniffed
/// from the bytes; images have their size (so a client lays them out
/// before loading) and, when `thumb`, a thumbnail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    pub id: FileId,
    /// The name the uploader gave it: text, never markup.
    pub name: String,
    /// Bytes.
    pub size: u64,
    #[serde(rename = "type")]
    pub mime: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thumb: bool,
}

impl EventKind {
    /// Whose membership the event changed and how (joined: true, left:
    /// false); None for any other kind.
    pub fn membership(&self) -> Option<(&UserId, bool)> {
        match self {
            EventKind::MemberJoined { user } => Some((user, true)),
            EventKind::MemberLeft { user } => Some((user, false)),
            EventKind::Message { .. }
            | EventKind::Deleted { .. }
            | EventKind::MessageDeleted { .. } => None,
        }
    }

    /// The stored name of the kind.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Message { .. } => "message",
            EventKind::MemberJoined { .. } => "member_joined",
            EventKind::MemberLeft { .. } => "member_left",
            EventKind::Deleted { .. } => "deleted",
            EventKind::MessageDeleted { .. } => "message_deleted",
        }
    }

    /// What is left of the event once deleted: a message becomes
    /// [`EventKind::Deleted`] with its client id; any other kind stays.
    pub fn deleted(&self) -> EventKind {
        match self {
            EventKind::Message { client_id, .. } => EventKind::Deleted {
                client_id: *client_id,
            },
            other => other.clone(),
        }
    }
}

/// True when `event` counts as unread for `me` once past their marker:
/// a message someone else (or the site) posted, or a change of `me`'s own
/// membership made by someone else. Other members coming and going is
/// noise, and one's own messages are read. The server's count in `rooms`
/// follows the same rule.
pub fn counts_as_unread(event: &Event, me: &UserId) -> bool {
    if event.sender.as_ref() == Some(me) {
        return false;
    }
    match &event.kind {
        EventKind::Message { .. } => true,
        EventKind::MemberJoined { user } | EventKind::MemberLeft { user } => user == me,
        EventKind::Deleted { .. } | EventKind::MessageDeleted { .. } => false,
    }
}

/// Every client frame's `type` (a test holds it to [`ClientFrame`]'s
/// variants): one of these that does not decode is malformed
/// (`bad_frame`), any other is unknown (`unknown_frame`).
const CLIENT_TYPES: &[&str] = &[
    "auth", "sync", "send", "history", "typing", "read", "members", "ping",
];

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

#[cfg(test)]
mod tests;
