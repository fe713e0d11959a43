//! What the store keeps of the chat: the shapes the chat hands to the
//! store ([`super::Change`]) and gets back from it ([`super::Chat::hydrate`],
//! [`super::Chat::load`]). They belong to the chat, not to IndexedDB: the
//! store depends on them, never the reverse.

use natter_shared::{RoomId, RoomInfo, Seq, UserId};
use serde::{Deserialize, Serialize};

/// What the room list and the sync engine keep per room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomRecord {
    /// The key; equal to `info.id`.
    pub id: RoomId,
    /// The room as the server last described it.
    pub info: RoomInfo,
    /// The highest seq held with nothing missing below it.
    pub cursor: Seq,
    /// The commit time of the event at the cursor, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_ts: Option<i64>,
    /// Events that count as unread past the read marker.
    pub unread: u32,
    /// The user's read marker as this device knows it (it may be ahead of
    /// the server's until the next connection says so).
    #[serde(default)]
    pub read: Seq,
    /// `unread` covers the events up to this seq.
    #[serde(default)]
    pub counted: Seq,
    /// The latest message, for the room list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Preview>,
    /// The lowest seq cached; older history is fetched on scroll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<Seq>,
    /// True once the server said nothing older exists.
    #[serde(default)]
    pub complete: bool,
}

impl RoomRecord {
    /// A room seen for the first time.
    pub fn new(info: RoomInfo) -> Self {
        RoomRecord {
            id: info.id.clone(),
            info,
            cursor: 0,
            cursor_ts: None,
            unread: 0,
            read: 0,
            counted: 0,
            last: None,
            oldest: None,
            complete: false,
        }
    }
}

/// The latest message of a room, as the room list shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    /// Who wrote it; `None` for the site's own messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<UserId>,
    /// The message as written (shown as text).
    pub body: String,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    /// The message's seq (absent in records written before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
}
