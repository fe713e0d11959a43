//! The JSON bodies of the HTTP API (`/api/v1`) that a site's backend calls
//! with its API key. Shared so that a Rust backend can use the same types.

use crate::ids::{ClientId, FileId, RoomId, Seq, UserId};
use crate::protocol::{ErrorCode, Event, Member, RoomInfo, RoomKind};
use serde::{Deserialize, Serialize};

/// `POST /api/v1/rooms`: create a group room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    pub title: String,
    #[serde(default)]
    pub members: Vec<Member>,
}

/// `POST /api/v1/dialogs`: open (or find) the dialog between two users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct OpenDialog {
    pub users: Vec<Member>,
}

/// `POST /api/v1/rooms/{room}/members`: add a member to a group room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AddMember {
    pub user: Member,
}

/// `POST /api/v1/rooms/{room}/messages`: post a message as a member, or
/// as the system when `from` is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    #[serde(default)]
    pub from: Option<UserId>,
    pub body: String,
    /// Makes the post idempotent, like a client's `send`. Without one, the
    /// server makes one (the stored message carries it), so that a write
    /// it retries itself is never stored twice.
    #[serde(default)]
    pub client_id: Option<ClientId>,
    /// Files uploaded for `from` (required with files); with files, the
    /// body may be empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileId>,
}

/// Body of `PUT /api/v1/file-types`: the site's own allow-list
/// (comma-separated types, families like `image/*`, or `*`), or `null`
/// for the server's default. The answer gives the list in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileTypes {
    pub types: Option<String>,
}

/// Answer of `GET /api/v1/rooms/{room}/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    pub events: Vec<Event>,
    /// More events exist beyond this page in the direction asked.
    pub more: bool,
}

/// Answer of `GET /api/v1/users/{user}/rooms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomList {
    pub rooms: Vec<RoomInfo>,
    /// More rooms follow: ask again with `after` set to this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<RoomId>,
}

/// Answer of `GET /session`: the server takes the token, for this user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub user: crate::UserId,
}

/// Answer of `GET /api/v1/rooms/{room}/members`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberList {
    pub members: Vec<crate::Member>,
    /// More members follow: ask again with `after` set to this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<crate::UserId>,
}

/// `GET /api/v1/site`: the site as its backend sees it (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SiteInfo {
    pub id: crate::ids::SiteId,
    pub name: String,
    /// The origins allowed to embed the widget.
    pub origins: Vec<String>,
    /// Until when (Unix seconds) tokens signed with the token secret
    /// before the last rotation still work, if that is still ahead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<i64>,
}

/// `PATCH /api/v1/site`: what to change; what is left out stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SiteChange {
    /// 1 to 200 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `https://host` or `http://host:port` each, 1 to 50 of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origins: Option<Vec<String>>,
}

/// `POST /api/v1/site/rotate-secret`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RotateSecret {
    /// Seconds the old secret keeps verifying tokens: 0 to 2592000 (30
    /// days).
    pub grace_secs: u64,
}

/// The answer to `POST /api/v1/site/rotate-secret`: shown only now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTokenSecret {
    pub token_secret: String,
    /// Until when (Unix seconds) tokens signed with the old one work.
    pub previous_secret_until: i64,
}

/// The answer to `POST /api/v1/site/rotate-key`: shown only now; the key
/// used for the call no longer works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewApiKey {
    pub api_key: String,
}

/// `GET`/`PUT /api/v1/settings`: what a site shows its people of each
/// other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Whether members see each other's read markers, per kind of room.
    /// Off, a marker still reaches its owner's other devices.
    pub receipts: Receipts,
    /// Whether members see who is online and when others were last seen.
    pub presence: bool,
}

/// Read receipts per kind of room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Receipts {
    pub dialog: bool,
    pub group: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            receipts: Receipts {
                dialog: true,
                group: true,
            },
            presence: true,
        }
    }
}

impl Settings {
    /// Whether members see each other's read markers in this kind of room.
    pub fn receipts(&self, kind: RoomKind) -> bool {
        match kind {
            RoomKind::Dialog => self.receipts.dialog,
            RoomKind::Group => self.receipts.group,
        }
    }
}

/// `PUT /api/v1/rooms/{room}/members/{user}/mute`: mute a member for a
/// while.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Mute {
    /// Seconds from now, at most a year.
    pub secs: u64,
}

/// The answer to a mute: until when the member may not post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Muted {
    pub room: RoomId,
    pub user: UserId,
    /// Milliseconds since the Unix epoch.
    pub until: i64,
}

/// `POST /reports`: report someone else's message to the site's
/// moderators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewReport {
    pub room: RoomId,
    /// The message's seq.
    pub seq: Seq,
    /// Why, in the reporter's words (at most 1000 bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A message a member reported to the site's moderators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    pub id: String,
    pub room: RoomId,
    /// The reported message's seq.
    pub seq: Seq,
    pub reporter: UserId,
    /// What the reporter said, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

/// `GET /api/v1/reports`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportList {
    pub reports: Vec<Report>,
    /// Older reports follow: ask again with `before` set to this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// One entry of a site's audit log: who did what, to what, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: u64,
    /// `api` for the site's backend (its API key), `cli` for the command
    /// line, `admin:EMAIL` for an admin in the panel.
    pub actor: String,
    /// What was done, e.g. `message.delete`, `user.ban`, `member.mute`.
    pub action: String,
    /// What it was done to: a room and seq, a user, an endpoint…
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}

/// `GET /api/v1/audit`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditLog {
    pub entries: Vec<AuditEntry>,
    /// Older entries follow: ask again with `before` set to this id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// Answer of `GET /api/v1/users/{user}/unread`: what waits for a user
/// (for e-mail digests, say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UnreadCounts {
    /// The sum over the rooms.
    pub total: u64,
    /// Every room of the user, with an unread count or not.
    pub rooms: Vec<RoomUnread>,
}

/// One room's read state for a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomUnread {
    pub room: RoomId,
    /// The user's read marker.
    pub read: Seq,
    /// Events after it that count as unread.
    pub unread: u32,
}

/// Body of `PUT /api/v1/rooms/{room}/members/{user}/read`: move the
/// member's read marker to `seq` (never back). The answer is a
/// [`RoomUnread`] for that member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SetRead {
    pub seq: Seq,
}

/// Body of every HTTP error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A stable code and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// With `too_many_requests`: milliseconds to wait before trying again
    /// (also in the `Retry-After` header, in whole seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}
