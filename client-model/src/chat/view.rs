//! What the views show: the room list and a room's lines. Lines are built
//! from the held events each time they are read, with the names the room
//! knows now, so a member renamed later shows under the new name.

use super::{Chat, DELETED, Room};
use natter_shared::sync::{EntryState, OutgoingFile};
use natter_shared::{
    Attachment, ClientId, Event, EventKind, Member, RoomId, RoomInfo, RoomKind, Seq, UserId,
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
    /// Our stored message: the other members who have read it (whose
    /// marker passed it), by name. Empty where the site shows no receipts.
    pub seen_by: Vec<String>,
    /// The event's seq, once the room has it.
    pub seq: Option<Seq>,
    /// The line is in a group room (receipts read "read by N").
    pub in_group: bool,
    /// A message the site deleted: `body` says so, and it has no files.
    pub deleted: bool,
}

/// What the room list shows for one room.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RoomEntry {
    /// The room.
    pub id: RoomId,
    /// A group's title, or a dialog's other member.
    pub name: String,
    /// Dialog or group.
    pub kind: RoomKind,
    /// Events that count as unread.
    pub unread: u32,
    /// `Author: body` of the latest message, if any.
    pub preview: Option<String>,
    /// When the latest message was written (ms), if any.
    pub last_ts: Option<i64>,
    /// A dialog's other member: whether they are online, when known.
    pub online: Option<bool>,
    /// Up to two letters for the avatar.
    pub initials: String,
    /// The avatar's colour, one of [`TINTS`], derived from the id (a
    /// dialog's: the other member's), so it never changes.
    pub tint: u8,
}

/// How many avatar colours there are.
pub const TINTS: u8 = 8;

impl Chat {
    /// The rooms for the room list, latest activity first.
    pub fn room_entries(&self) -> Vec<RoomEntry> {
        let me = self.me.as_ref().map(|m| &m.id);
        let mut entries: Vec<(i64, RoomEntry)> = self
            .rooms
            .iter()
            .map(|r| {
                let name = room_name(&r.info, me);
                let seed = self
                    .other_member(&r.info)
                    .map_or(r.info.id.as_str(), UserId::as_str);
                let active = r.last.as_ref().map_or(r.info.created_at, |p| p.ts);
                (
                    active,
                    RoomEntry {
                        id: r.info.id.clone(),
                        initials: initials(&name),
                        tint: tint(seed),
                        name,
                        kind: r.info.kind,
                        unread: r.unread,
                        preview: r.last.as_ref().map(|p| match &p.sender {
                            Some(id) => format!("{}: {}", r.name_of(id), p.body),
                            None => p.body.clone(),
                        }),
                        last_ts: r.last.as_ref().map(|p| p.ts),
                        online: self
                            .other_member(&r.info)
                            .and_then(|id| self.presence_of(id))
                            .map(|p| p.online),
                    },
                )
            })
            .collect();
        entries.sort_by(|(a, x), (b, y)| b.cmp(a).then_with(|| x.id.cmp(&y.id)));
        entries.into_iter().map(|(_, e)| e).collect()
    }

    /// A dialog's other member.
    pub fn other_member<'a>(&self, info: &'a RoomInfo) -> Option<&'a UserId> {
        let me = self.me.as_ref().map(|m| &m.id);
        (info.kind == RoomKind::Dialog)
            .then(|| info.members.iter().find(|m| Some(&m.id) != me))
            .flatten()
            .map(|m| &m.id)
    }

    /// A dialog's other member, in the open room's header: `Some(true)`
    /// online, `Some(false)` with when last seen (ms) if known.
    pub fn dialog_presence(&self, room: &RoomId) -> Option<(bool, Option<i64>)> {
        let r = self.room(room)?;
        let other = self.other_member(&r.info)?;
        self.presence_of(other).map(|p| (p.online, p.last_seen))
    }

    /// A group's members for its header: how many it has in all, and the
    /// listed ones by name with whether each is online (the user is),
    /// online first, then by name. `None` for a dialog.
    pub fn group_members(&self, room: &RoomId) -> Option<(u32, Vec<(String, bool)>)> {
        let r = self.room(room)?;
        if r.info.kind != RoomKind::Group {
            return None;
        }
        let me = self.me.as_ref().map(|m| &m.id);
        let mut members: Vec<(String, bool)> = r
            .info
            .members
            .iter()
            .map(|m| {
                let online = Some(&m.id) == me || self.presence_of(&m.id).is_some_and(|p| p.online);
                (r.name_of(&m.id), online)
            })
            .collect();
        members.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let listed = u32::try_from(members.len()).unwrap_or(u32::MAX);
        Some((r.info.member_count.max(listed), members))
    }

    /// The room's lines: its history, then our messages still on their way.
    pub fn lines(&self, room: &RoomId) -> Vec<Line> {
        let Some(r) = self.room(room) else {
            return Vec::new();
        };
        let me = self.me.as_ref().map(|m| &m.id);
        let author = me.map(|id| r.name_of(id));
        // A deletion's tombstone shows as the message it emptied.
        let stored = (r.events.values())
            .filter(|e| !matches!(e.kind, EventKind::MessageDeleted { .. }))
            .map(|e| r.line(e, me));
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
                    seen_by: Vec::new(),
                    seq: None,
                    in_group: r.info.kind == RoomKind::Group,
                    deleted: false,
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
            EventKind::Deleted { .. } => (
                event.sender.as_ref().map(|id| self.name_of(id)),
                DELETED.to_string(),
                Vec::new(),
            ),
            // Not shown (see `lines`).
            EventKind::MessageDeleted { .. } => (None, String::new(), Vec::new()),
        };
        let deleted = matches!(event.kind, EventKind::Deleted { .. });
        let mine = event.sender.is_some() && event.sender.as_ref() == me;
        let seen_by: Vec<String> = if mine {
            (self.info.members.iter())
                .filter(|m| Some(&m.id) != me && m.read.is_some_and(|r| r >= event.seq))
                .map(display)
                .collect()
        } else {
            Vec::new()
        };
        Line {
            // Seqs repeat across rooms: the room is part of the key. So is
            // the time (a room sent afresh may hold another event at the
            // seq), the name shown, so the view redraws a line after a
            // rename, and who has read it.
            key: format!(
                "s{}/{}/{}/{}/{}{}",
                event.room,
                event.seq,
                event.ts,
                author.as_deref().unwrap_or(&body),
                seen_by.len(),
                if deleted { "/deleted" } else { "" }
            ),
            author,
            body,
            ts: event.ts,
            mine,
            delivery: Delivery::Stored,
            client_id: None,
            files,
            outgoing: Vec::new(),
            seen_by,
            seq: Some(event.seq),
            in_group: self.info.kind == RoomKind::Group,
            deleted,
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

/// The first letters of the first two words, upper-cased.
fn initials(name: &str) -> String {
    name.split_whitespace()
        .filter_map(|w| w.chars().find(|c| c.is_alphanumeric()))
        .take(2)
        .flat_map(char::to_uppercase)
        .collect()
}

/// A colour index from an id (FNV-1a), the same on every device.
fn tint(id: &str) -> u8 {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    u8::try_from(hash % u32::from(TINTS)).unwrap_or(0)
}

fn display(m: &Member) -> String {
    m.name.clone().unwrap_or_else(|| m.id.to_string())
}
