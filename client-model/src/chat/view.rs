//! What the views show: the room list and a room's lines. Lines are built
//! from the held events each time they are read, with the names the room
//! knows now, so a member renamed later shows under the new name.

use super::{Chat, Room};
use natter_shared::sync::{EntryState, OutgoingFile};
use natter_shared::{
    Attachment, ClientId, Event, EventKind, Member, RoomId, RoomInfo, RoomKind, UserId,
};

/// Where one of our messages is on its way to the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// In the outbox: sent or about to be, not acknowledged yet.
    Pending,
    /// Refused for good; not resent.
    Failed(String),
    /// In the room's history.
    Stored,
}

/// What a view shows for one message or membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Stable while the line does not change; changes when it does.
    pub key: String,
    /// The author's display name; `None` for system lines.
    pub author: Option<String>,
    /// Shown as text, never parsed as HTML.
    pub body: String,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    /// Written by the signed-in user.
    pub mine: bool,
    /// Whether the room has it yet.
    pub delivery: Delivery,
    /// Our message not yet in the room: what a retry names.
    pub client_id: Option<ClientId>,
    /// Files the message carries, in the sender's order.
    pub files: Vec<Attachment>,
    /// Our message's files on their way (kept on this device until
    /// uploaded), in the order attached.
    pub outgoing: Vec<OutgoingFile>,
}

/// What the room list shows for one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEntry {
    /// The room.
    pub id: RoomId,
    /// A group's title, or a dialog's other member.
    pub name: String,
    /// Dialog or group.
    pub kind: RoomKind,
    /// Messages from others not seen yet.
    pub unread: u32,
    /// `Author: body` of the latest message, if any.
    pub preview: Option<String>,
}

impl Chat {
    /// The rooms for the room list.
    pub fn room_entries(&self) -> Vec<RoomEntry> {
        let me = self.me.as_ref().map(|m| &m.id);
        self.rooms
            .iter()
            .map(|r| RoomEntry {
                id: r.info.id.clone(),
                name: room_name(&r.info, me),
                kind: r.info.kind,
                unread: r.unread,
                preview: r.last.as_ref().map(|p| match &p.sender {
                    Some(id) => format!("{}: {}", r.name_of(id), p.body),
                    None => p.body.clone(),
                }),
            })
            .collect()
    }

    /// The room's lines: its history, then our messages still on their way.
    pub fn lines(&self, room: &RoomId) -> Vec<Line> {
        let Some(r) = self.room(room) else {
            return Vec::new();
        };
        let me = self.me.as_ref().map(|m| &m.id);
        let author = me.map(|id| r.name_of(id));
        let stored = r.events.values().map(|e| r.line(e, me));
        let outgoing = self
            .outbox
            .entries()
            .filter(|(e, _)| e.room == *room)
            .map(|(e, state)| {
                let delivery = match state {
                    EntryState::Queued | EntryState::InFlight => Delivery::Pending,
                    EntryState::Failed { code, message } => {
                        Delivery::Failed(format!("{}: {message}", code.as_str()))
                    }
                };
                let uploaded = e.files.iter().filter(|f| f.id.is_some()).count();
                Line {
                    // The state (and how many files are up) is part of the
                    // key, so the view redraws on change.
                    key: format!("o{}{:?}{uploaded}", e.client_id, delivery),
                    author: author.clone(),
                    body: e.body.clone(),
                    ts: e.created_at,
                    mine: true,
                    delivery,
                    client_id: Some(e.client_id),
                    files: Vec::new(),
                    outgoing: e.files.clone(),
                }
            });
        stored.chain(outgoing).collect()
    }

    /// A member's display name in a room (their id if the room does not
    /// know them).
    pub fn name_in(&self, room: &RoomId, user: &UserId) -> String {
        self.room(room)
            .map(|r| r.name_of(user))
            .unwrap_or_else(|| user.to_string())
    }
}

impl Room {
    /// The line of a held event.
    fn line(&self, event: &Event, me: Option<&UserId>) -> Line {
        let (author, body, files) = match &event.kind {
            // A message without sender is the site's: shown as a system line.
            EventKind::Message { body, files, .. } => (
                event.sender.as_ref().map(|id| self.name_of(id)),
                body.clone(),
                files.clone(),
            ),
            EventKind::MemberJoined { user } => {
                (None, format!("{} joined", self.name_of(user)), Vec::new())
            }
            EventKind::MemberLeft { user } => {
                (None, format!("{} left", self.name_of(user)), Vec::new())
            }
        };
        Line {
            // Seqs repeat across rooms: the room is part of the key. So is
            // the name shown, so the view redraws a line after a rename.
            key: format!(
                "s{}/{}/{}",
                event.room,
                event.seq,
                author.as_deref().unwrap_or(&body)
            ),
            author,
            body,
            ts: event.ts,
            mine: event.sender.is_some() && event.sender.as_ref() == me,
            delivery: Delivery::Stored,
            client_id: None,
            files,
            outgoing: Vec::new(),
        }
    }

    /// A member's display name as the room knows it now (or knew it when
    /// they left), or their id.
    fn name_of(&self, id: &UserId) -> String {
        self.info
            .members
            .iter()
            .chain(&self.former)
            .filter(|m| m.id == *id)
            .find_map(|m| m.name.clone())
            .unwrap_or_else(|| id.to_string())
    }
}

/// A group's title, or for a dialog the other member's name.
fn room_name(info: &RoomInfo, me: Option<&UserId>) -> String {
    match info.kind {
        RoomKind::Group => info.title.clone().unwrap_or_else(|| info.id.to_string()),
        RoomKind::Dialog => info
            .members
            .iter()
            .find(|m| Some(&m.id) != me)
            .or(info.members.first())
            .map(display)
            .unwrap_or_else(|| info.id.to_string()),
    }
}

fn display(m: &Member) -> String {
    m.name.clone().unwrap_or_else(|| m.id.to_string())
}
