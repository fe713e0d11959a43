//! The chat as plain data: who we are, the rooms we are in and each
//! room's lines, with our own messages shown pending until the room has
//! them.
//!
//! The protocol decisions are the shared sans-IO state machines':
//! [`Cursors`] says whether an event is new, repeated or reveals a gap, and
//! [`Outbox`] what to send, what an ack settles and what a reconnect
//! resends. `Chat` drives them with the server's frames and keeps what the
//! views need. [`Chat::apply`] (in `frames`, one method per frame) returns
//! the frames to send in answer (the `sync` after `hello`, the outbox
//! after `synced`), so the socket code only carries frames; everything
//! here is unit-tested natively (`tests.rs`). The person's messages on
//! their way (compose, retry, discard, adopt) are `outbox`'s.
//!
//! Every change that must outlive the page is also recorded as a
//! [`Change`]; the sync engine takes them ([`Chat::take_changes`]) and
//! writes them to IndexedDB before the view shows them. [`Chat::hydrate`]
//! rebuilds a chat from what the store holds. The shapes the store keeps
//! are this module's [`records`].

mod frames;
mod outbox;
pub mod records;

#[cfg(test)]
mod tests;

pub use outbox::ComposeError;
pub use records::{Preview, RoomMessages, RoomRecord};

use natter_shared::sync::{Cursors, EntryState, Outbox, OutboxEntry};
use natter_shared::{
    ClientFrame, ClientId, Event, Limits, Member, RoomId, RoomInfo, RoomKind, Seq, UserId,
};
use std::collections::BTreeMap;

/// Everything the widget knows about the user's chats.
#[derive(Debug, Clone)]
pub struct Chat {
    /// The authenticated user, from `hello`.
    me: Option<Member>,
    /// The limits the server announced.
    limits: Limits,
    /// Rooms in the order the server listed them.
    rooms: Vec<Room>,
    cursors: Cursors,
    outbox: Outbox,
    /// True between `synced` and the next disconnect or `sync`: live
    /// events flow and sends go out at once.
    live: bool,
    /// The last error the server reported that is not about one send.
    notice: Option<String>,
    /// The room the person is looking at: its messages are not unread.
    open: Option<RoomId>,
    /// What must be stored, oldest first.
    changes: Vec<Change>,
}

/// A change to store, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// The user signed in (from `hello`).
    User(UserId),
    /// Rooms to write as they are now.
    Rooms(Vec<RoomRecord>),
    /// A room we are no longer in.
    Forget(RoomId),
    /// Events of one room, with the room as it is after them: one
    /// transaction (a catch-up page, a live event, a history page).
    Events(RoomRecord, Vec<Event>),
    /// A message the person wrote.
    Composed(OutboxEntry),
    /// Our message was stored as this event.
    Acked(OutboxEntry, Event, Option<RoomRecord>),
    /// An outbox entry changed state (refused for good, or retried).
    State(OutboxEntry, EntryState),
    /// The person gave up on a message refused for good.
    Discarded(OutboxEntry),
}

/// One room and the lines we hold of it.
#[derive(Debug, Clone)]
struct Room {
    info: RoomInfo,
    unread: u32,
    last: Option<Preview>,
    oldest: Option<Seq>,
    complete: bool,
    /// Lines by seq. Keyed so that an ack and the event of the same
    /// message, or a page repeating a gap's event, land on one line.
    lines: BTreeMap<Seq, Line>,
}

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
    pub delivery: Delivery,
    /// Our message not yet in the room: what a retry names.
    pub client_id: Option<ClientId>,
}

/// What the room list shows for one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEntry {
    pub id: RoomId,
    pub name: String,
    pub kind: RoomKind,
    /// Messages from others not seen yet.
    pub unread: u32,
    /// `Author: body` of the latest message, if any.
    pub preview: Option<String>,
}

impl Default for Chat {
    fn default() -> Self {
        Chat {
            me: None,
            limits: Limits::default(),
            rooms: Vec::new(),
            cursors: Cursors::default(),
            outbox: Outbox::new(outbox::WINDOW),
            live: false,
            notice: None,
            open: None,
            changes: Vec::new(),
        }
    }
}

impl Chat {
    /// A chat rebuilt from the store: the user, the rooms with their
    /// cursors, the outbox. Nothing is in flight.
    pub fn hydrate(
        me: Option<UserId>,
        rooms: Vec<RoomRecord>,
        outbox: Vec<(OutboxEntry, EntryState)>,
    ) -> Chat {
        let mut chat = Chat {
            me: me.map(|id| Member { id, name: None }),
            outbox: Outbox::restore(outbox::WINDOW, outbox),
            cursors: Cursors::from_stored(rooms.iter().map(|r| (r.id.clone(), r.cursor))),
            ..Chat::default()
        };
        chat.rooms = rooms
            .into_iter()
            .map(|r| Room {
                info: r.info,
                unread: r.unread,
                last: r.last,
                oldest: r.oldest,
                complete: r.complete,
                lines: BTreeMap::new(),
            })
            .collect();
        chat
    }

    /// Shows cached events of a room (from the store).
    pub fn load(&mut self, room: &RoomId, cached: RoomMessages) {
        for event in cached.stored {
            if self
                .room(room)
                .is_some_and(|r| r.lines.contains_key(&event.seq))
            {
                continue;
            }
            self.show_event(event);
        }
    }

    /// Takes the changes to store, oldest first.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// The room the person looks at; its unread count drops to zero.
    pub fn set_open(&mut self, room: Option<RoomId>) {
        self.open = room.clone();
        let Some(room) = room else { return };
        if let Some(r) = self.room_mut(&room).filter(|r| r.unread > 0) {
            r.unread = 0;
            if let Some(record) = self.record(&room) {
                self.changes.push(Change::Rooms(vec![record]));
            }
        }
    }

    /// Unread messages in all rooms.
    pub fn unread_total(&self) -> u32 {
        self.rooms.iter().map(|r| r.unread).sum()
    }

    /// The `history` request for the room's next older page, unless all
    /// of it is held.
    pub fn older(&self, room: &RoomId) -> Option<ClientFrame> {
        let r = self.room(room)?;
        if r.complete {
            return None;
        }
        let before = r
            .lines
            .keys()
            .next()
            .copied()
            .or(r.oldest)
            .unwrap_or_else(|| self.cursors.get(room).unwrap_or(0) + 1);
        (before > 1).then(|| ClientFrame::History {
            room: room.clone(),
            before,
            limit: Some(50),
        })
    }

    /// The lowest seq shown in a room.
    pub fn first_shown(&self, room: &RoomId) -> Option<Seq> {
        self.room(room)?.lines.keys().next().copied()
    }

    /// The room as the store keeps it.
    fn record(&self, id: &RoomId) -> Option<RoomRecord> {
        let r = self.room(id)?;
        Some(RoomRecord {
            id: id.clone(),
            info: r.info.clone(),
            cursor: self.cursors.get(id).unwrap_or(0),
            unread: r.unread,
            last: r.last.clone(),
            oldest: r.oldest,
            complete: r.complete,
        })
    }

    /// A member's display name in a room (their id if the room does not
    /// know them).
    pub fn name_in(&self, room: &RoomId, user: &UserId) -> String {
        self.room(room)
            .map(|r| member_name(&r.info, user))
            .unwrap_or_else(|| user.to_string())
    }

    /// The signed-in user, once `hello` arrived.
    pub fn me(&self) -> Option<&Member> {
        self.me.as_ref()
    }

    /// True while live events flow (after `synced`).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The last server error not tied to one send.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

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
                    Some(id) => format!("{}: {}", member_name(&r.info, id), p.body),
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
        let author = self.me.as_ref().map(|m| member_name(&r.info, &m.id));
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
                Line {
                    // The state is part of the key so the view redraws on change.
                    key: format!("o{}{:?}", e.client_id, delivery),
                    author: author.clone(),
                    body: e.body.clone(),
                    ts: e.created_at,
                    mine: true,
                    delivery,
                    client_id: Some(e.client_id),
                }
            });
        r.lines.values().cloned().chain(outgoing).collect()
    }

    /// The connection dropped: live events stop until the next `synced`,
    /// and whatever was in flight will be sent again.
    pub fn on_disconnect(&mut self) {
        self.live = false;
        self.outbox.on_disconnect();
    }

    fn room(&self, id: &RoomId) -> Option<&Room> {
        self.rooms.iter().find(|r| r.info.id == *id)
    }

    fn room_mut(&mut self, id: &RoomId) -> Option<&mut Room> {
        self.rooms.iter_mut().find(|r| r.info.id == *id)
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

/// A member's display name as the room knows it, or their id.
fn member_name(info: &RoomInfo, id: &UserId) -> String {
    info.members
        .iter()
        .find(|m| m.id == *id)
        .map(display)
        .unwrap_or_else(|| id.to_string())
}

fn display(m: &Member) -> String {
    m.name.clone().unwrap_or_else(|| m.id.to_string())
}
