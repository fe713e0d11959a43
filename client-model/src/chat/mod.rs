//! The chat as plain data: who we are, the rooms we are in and the events
//! we hold of each, with our own messages shown pending until the room has
//! them.
//!
//! The protocol decisions are the shared sans-IO state machines':
//! [`Cursors`] says whether an event is new, repeated or reveals a gap, and
//! [`Outbox`] what to send, what an ack settles and what a reconnect
//! resends. `Chat` drives them and keeps what the views need:
//!
//! - this file: the state, and what the store gives back to it
//!   ([`Chat::hydrate`], [`Chat::load`]);
//! - [`records`]: the shapes the store keeps (rooms, previews, a room's
//!   cached messages);
//! - `frames`: one method per server frame, behind [`Chat::apply`], which
//!   returns the frames to send in answer (the `sync` after `hello`, the
//!   outbox after `synced`), so the socket code only carries frames;
//! - `outbox`: the person's messages: compose, retry, discard, and
//!   adopting what another tab wrote;
//! - `reading`: read markers, unread counts and presence;
//! - `view`: what the views show, built from the held events when read
//!   (so a member renamed later shows under the new name).
//!
//! Every change that must outlive the page is also recorded as a
//! [`Change`]; the sync engine takes them ([`Chat::take_changes`]) and
//! writes them to IndexedDB before the view shows them. Everything here is
//! unit-tested natively (`tests.rs`).

mod frames;
mod outbox;
mod reading;
pub mod records;
mod view;

#[cfg(test)]
mod tests;

pub use outbox::ComposeError;
pub use records::{Preview, RoomRecord};
pub use view::{Delivery, Line, RoomEntry, TINTS};

use natter_shared::sync::{Cursors, EntryState, Outbox, OutboxEntry};
use natter_shared::{ClientFrame, Event, Limits, Member, Presence, RoomId, RoomInfo, Seq, UserId};
use std::collections::BTreeMap;

/// Messages a room loads per step: from the store when it opens or
/// scrolls up, and from the server (`history`) once the store has no
/// older ones.
pub const PAGE: u32 = 50;

/// What a deleted message shows instead of its text.
pub const DELETED: &str = "Message deleted";

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
    /// The room the person is looking at.
    open: Option<RoomId>,
    /// True while the person can see the open room's latest messages (the
    /// chat open, the page visible, scrolled to the end): what arrives
    /// there is read at once.
    reading: bool,
    /// Who of the people we share a room with is online (never stored).
    presence: BTreeMap<UserId, Presence>,
    /// What must be stored, oldest first.
    changes: Vec<Change>,
    /// During catch-up, the rooms `rooms` frames listed so far (a long
    /// list comes in several); at `synced` the others are forgotten.
    listed: Option<std::collections::HashSet<RoomId>>,
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
    Acked(Box<OutboxEntry>, Event, Option<RoomRecord>),
    /// An outbox entry changed state (refused for good, or retried).
    State(OutboxEntry, EntryState),
    /// The person gave up on a message refused for good, or cancelled one
    /// still uploading its files.
    Discarded(OutboxEntry),
    /// Our message is stored and its event is held already (it came
    /// before the ack, or the ack is a retry's): the entry goes, and the
    /// event stays as it is.
    Sent(OutboxEntry),
    /// The server sent a room afresh: drop every event held of it, then
    /// store these, with the room as it is after them.
    Reset(RoomRecord, Vec<Event>),
}

impl Change {
    /// True when storing it adds events to a room (which other tabs then
    /// re-read).
    pub fn stores_events(&self) -> bool {
        matches!(
            self,
            Change::Events(..) | Change::Acked(..) | Change::Reset(..)
        )
    }
}

/// One room and the events we hold of it.
#[derive(Debug, Clone)]
struct Room {
    info: RoomInfo,
    /// Members who left while we watched: their lines keep their names.
    former: Vec<Member>,
    unread: u32,
    /// The user's read marker as this device knows it.
    read: Seq,
    /// `unread` covers the events up to this seq: the server's count
    /// covers the room as `rooms` described it, and each event counted
    /// since moves it.
    counted: Seq,
    last: Option<Preview>,
    oldest: Option<Seq>,
    complete: bool,
    /// A history page asked for (the events before this seq) and not yet
    /// answered: scrolling on asks for it once, not once per scroll.
    asked: Option<Seq>,
    /// Events by seq. Keyed so that an ack and the event of the same
    /// message, or a page repeating a gap's event, land on one line.
    events: BTreeMap<Seq, Event>,
}

impl Room {
    fn new(info: RoomInfo) -> Room {
        Room {
            read: info.read,
            info,
            former: Vec::new(),
            unread: 0,
            counted: 0,
            last: None,
            oldest: None,
            complete: false,
            asked: None,
            events: BTreeMap::new(),
        }
    }
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
            reading: false,
            presence: BTreeMap::new(),
            changes: Vec::new(),
            listed: None,
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
            me: me.map(|id| Member::new(id, None)),
            outbox: Outbox::restore(outbox::WINDOW, outbox),
            cursors: Cursors::from_stored(
                rooms.iter().map(|r| (r.id.clone(), r.cursor, r.cursor_ts)),
            ),
            ..Chat::default()
        };
        chat.rooms = rooms
            .into_iter()
            .map(|r| Room {
                unread: r.unread,
                read: r.read,
                counted: r.counted,
                last: r.last,
                oldest: r.oldest,
                complete: r.complete,
                ..Room::new(r.info)
            })
            .collect();
        chat
    }

    /// Shows cached events of a room (from the store).
    pub fn load(&mut self, room: &RoomId, cached: Vec<Event>) {
        for event in cached {
            if self
                .room(room)
                .is_some_and(|r| r.events.contains_key(&event.seq))
            {
                continue;
            }
            self.hold(event);
        }
    }

    /// Takes the changes to store, oldest first.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// The room the person looks at (whether they can see it is
    /// [`Chat::set_reading`]'s).
    pub fn set_open(&mut self, room: Option<RoomId>) {
        self.open = room;
    }

    /// Messages in the outbox: not yet acknowledged by the server, or
    /// refused and kept for the person to retry or discard.
    pub fn unsent(&self) -> usize {
        self.outbox.len()
    }

    /// Unread messages in all rooms.
    pub fn unread_total(&self) -> u32 {
        self.rooms.iter().map(|r| r.unread).sum()
    }

    /// The `history` request for the room's next older page, unless all
    /// of it is held.
    pub fn older(&mut self, room: &RoomId) -> Option<ClientFrame> {
        let cursor = self.cursors.get(room).unwrap_or(0);
        let r = self.room_mut(room)?;
        if r.complete {
            return None;
        }
        let before = r
            .events
            .keys()
            .next()
            .copied()
            .or(r.oldest)
            .unwrap_or(cursor + 1);
        if before <= 1 || r.asked == Some(before) {
            return None;
        }
        r.asked = Some(before);
        Some(ClientFrame::History {
            room: room.clone(),
            before,
            limit: Some(PAGE),
        })
    }

    /// The lowest seq shown in a room.
    pub fn first_shown(&self, room: &RoomId) -> Option<Seq> {
        self.room(room)?.events.keys().next().copied()
    }

    /// The signed-in user, once `hello` arrived.
    pub fn me(&self) -> Option<&Member> {
        self.me.as_ref()
    }

    /// The limits the server announced (or the defaults, before it did).
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// True while live events flow (after `synced`).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// The last server error not tied to one send.
    pub fn notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    /// The connection dropped: live events stop until the next `synced`,
    /// and whatever was in flight will be sent again.
    pub fn on_disconnect(&mut self) {
        self.live = false;
        self.outbox.on_disconnect();
        self.forget_asked();
    }

    /// Pages asked for will not be answered (the connection dropped, or
    /// the server refused one): scrolling asks again.
    fn forget_asked(&mut self) {
        for r in &mut self.rooms {
            r.asked = None;
        }
    }

    /// The room as the store keeps it.
    fn record(&self, id: &RoomId) -> Option<RoomRecord> {
        let r = self.room(id)?;
        Some(RoomRecord {
            id: id.clone(),
            info: r.info.clone(),
            cursor: self.cursors.get(id).unwrap_or(0),
            cursor_ts: self.cursors.time(id),
            unread: r.unread,
            read: r.read,
            counted: r.counted,
            last: r.last.clone(),
            oldest: r.oldest,
            complete: r.complete,
        })
    }

    fn room(&self, id: &RoomId) -> Option<&Room> {
        self.rooms.iter().find(|r| r.info.id == *id)
    }

    fn room_mut(&mut self, id: &RoomId) -> Option<&mut Room> {
        self.rooms.iter_mut().find(|r| r.info.id == *id)
    }
}
