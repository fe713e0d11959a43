//! Sans-IO synchronisation logic: the decisions of the widget's sync
//! engine, as plain state machines that a test drives without a socket or
//! a browser. The browser side only feeds them what happened (a message
//! written, a connection up or down, an ack, a page, an event) and does
//! what they answer.
//!
//! - [`Outbox`]: messages written but not yet acknowledged. It decides
//!   what to send next (in order, a bounded window in flight), what an
//!   ack settles, and what a reconnect resends. Retries are safe because
//!   the server stores one message per client id.
//! - [`Cursors`]: per room, the highest seq held without a gap. It decides
//!   what to ask for on (re)connect, and whether a page or a live event
//!   extends the room, repeats what is held, or reveals a gap.

use crate::ids::{ClientId, FileId, RoomId, Seq};
use crate::protocol::{ClientFrame, Cursor, ErrorCode, Event};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// A message waiting to be delivered, as stored in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub client_id: ClientId,
    pub room: RoomId,
    pub body: String,
    /// When the person wrote it, milliseconds since the Unix epoch.
    pub created_at: i64,
    /// Files sent with it, in the person's order; it goes out once all
    /// are uploaded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<OutgoingFile>,
}

/// A file attached to a message on its way. Its bytes stay on the device
/// (under `key`) until the upload finished and gave it an `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutgoingFile {
    /// Where the device keeps its bytes; unique per file attached.
    pub key: String,
    /// The name it had on the device (text, never markup).
    pub name: String,
    pub size: u64,
    /// The type the browser declared; the server sniffs the real one.
    #[serde(rename = "type")]
    pub mime: String,
    /// The server's id, once all of it is uploaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<FileId>,
}

impl OutboxEntry {
    /// The `send` frame for this entry.
    pub fn frame(&self) -> ClientFrame {
        ClientFrame::Send {
            client_id: self.client_id,
            room: self.room.clone(),
            body: self.body.clone(),
            files: self.files.iter().filter_map(|f| f.id.clone()).collect(),
        }
    }

    /// True once every file is uploaded: only then may it be sent.
    pub fn ready(&self) -> bool {
        self.files.iter().all(|f| f.id.is_some())
    }
}

/// Where an outbox entry stands. Decoded from a flat struct (see
/// [`crate::protocol`]'s frames): a derived decoder of a tagged enum
/// buffers every record twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EntryState {
    /// Waiting for a connection or for room in the window.
    Queued,
    /// Sent on the current connection; its ack has not come yet.
    InFlight,
    /// Refused for good (e.g. not a member any more); kept until the
    /// person retries or discards it.
    Failed { code: ErrorCode, message: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum StateTag {
    Queued,
    InFlight,
    Failed,
}

/// Every field of every [`EntryState`].
#[derive(Deserialize)]
struct StateFields {
    state: StateTag,
    code: Option<ErrorCode>,
    message: Option<String>,
}

impl<'de> Deserialize<'de> for EntryState {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let f = StateFields::deserialize(deserializer)?;
        Ok(match f.state {
            StateTag::Queued => EntryState::Queued,
            StateTag::InFlight => EntryState::InFlight,
            StateTag::Failed => EntryState::Failed {
                code: f.code.ok_or_else(|| D::Error::missing_field("code"))?,
                message: f
                    .message
                    .ok_or_else(|| D::Error::missing_field("message"))?,
            },
        })
    }
}

/// What an error frame for a send means for that send.
pub fn is_permanent(code: ErrorCode) -> bool {
    !matches!(
        code,
        ErrorCode::Internal | ErrorCode::ShuttingDown | ErrorCode::TooManyRequests
    )
}

/// The outbox state machine.
#[derive(Debug, Clone)]
pub struct Outbox {
    entries: VecDeque<(OutboxEntry, EntryState)>,
    window: usize,
}

/// What an answer from the server did to the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Delivered with this seq: remove it from storage, mark the message sent.
    Acked {
        entry: OutboxEntry,
        seq: Seq,
        ts: i64,
    },
    /// Refused for good: mark the message failed.
    Failed {
        client_id: ClientId,
        code: ErrorCode,
        message: String,
    },
    /// A transient refusal: it will be sent again.
    Requeued { client_id: ClientId },
    /// The answer named no entry of this outbox (already settled).
    Unknown,
}

impl Outbox {
    /// An empty outbox sending at most `window` messages ahead of acks.
    pub fn new(window: usize) -> Self {
        Outbox {
            entries: VecDeque::new(),
            window: window.max(1),
        }
    }

    /// Rebuilds the outbox from storage (oldest first); nothing is in
    /// flight after a restart.
    pub fn restore(
        window: usize,
        stored: impl IntoIterator<Item = (OutboxEntry, EntryState)>,
    ) -> Self {
        let mut outbox = Outbox::new(window);
        for (entry, state) in stored {
            let state = match state {
                EntryState::InFlight => EntryState::Queued,
                other => other,
            };
            outbox.entries.push_back((entry, state));
        }
        outbox
    }

    /// A message the person just wrote.
    pub fn push(&mut self, entry: OutboxEntry) {
        if self.position(&entry.client_id).is_none() {
            self.entries.push_back((entry, EntryState::Queued));
        }
    }

    /// What to send now, in order, keeping at most `window` in flight.
    /// The returned entries are marked in flight. A message whose files
    /// are still uploading holds back the later ones of its room (so the
    /// room gets them in the order written), not those of other rooms.
    pub fn next_batch(&mut self) -> Vec<OutboxEntry> {
        let mut in_flight = self
            .entries
            .iter()
            .filter(|(_, s)| *s == EntryState::InFlight)
            .count();
        let mut batch = Vec::new();
        let mut held: Vec<RoomId> = Vec::new();
        for (entry, state) in self.entries.iter_mut() {
            if in_flight >= self.window {
                break;
            }
            if *state == EntryState::Queued && (!entry.ready() || held.contains(&entry.room)) {
                if !held.contains(&entry.room) {
                    held.push(entry.room.clone());
                }
                continue;
            }
            if *state == EntryState::Queued {
                *state = EntryState::InFlight;
                in_flight += 1;
                batch.push(entry.clone());
            }
        }
        batch
    }

    /// An `ack` arrived.
    pub fn ack(&mut self, client_id: &ClientId, seq: Seq, ts: i64) -> Settled {
        match self.position(client_id) {
            Some(i) => match self.entries.remove(i) {
                Some((entry, _)) => Settled::Acked { entry, seq, ts },
                None => Settled::Unknown,
            },
            None => Settled::Unknown,
        }
    }

    /// An `error` frame naming one of our sends arrived.
    pub fn reject(&mut self, client_id: &ClientId, code: ErrorCode, message: &str) -> Settled {
        let Some(i) = self.position(client_id) else {
            return Settled::Unknown;
        };
        let state = &mut self.entries[i].1;
        if is_permanent(code) {
            *state = EntryState::Failed {
                code,
                message: message.to_string(),
            };
            Settled::Failed {
                client_id: *client_id,
                code,
                message: message.to_string(),
            }
        } else {
            *state = EntryState::Queued;
            Settled::Requeued {
                client_id: *client_id,
            }
        }
    }

    /// The connection dropped: whatever was in flight will be sent again
    /// (the server answers a repeat with the stored message).
    pub fn on_disconnect(&mut self) {
        for (_, state) in self.entries.iter_mut() {
            if *state == EntryState::InFlight {
                *state = EntryState::Queued;
            }
        }
    }

    /// The person asked to retry a failed message.
    pub fn retry(&mut self, client_id: &ClientId) -> bool {
        match self.position(client_id) {
            Some(i) if matches!(self.entries[i].1, EntryState::Failed { .. }) => {
                self.entries[i].1 = EntryState::Queued;
                true
            }
            _ => false,
        }
    }

    /// A file of an entry finished uploading as `id`. Returns the entry as
    /// it is now, if this changed it.
    pub fn uploaded(&mut self, client_id: &ClientId, key: &str, id: FileId) -> Option<OutboxEntry> {
        let i = self.position(client_id)?;
        let entry = &mut self.entries[i].0;
        let file = entry.files.iter_mut().find(|f| f.key == key)?;
        if file.id.as_ref() == Some(&id) {
            return None;
        }
        file.id = Some(id);
        Some(entry.clone())
    }

    /// Files still to upload, oldest message first: those of queued
    /// messages (a refused one waits for the person's retry).
    pub fn uploads(&self) -> Vec<(ClientId, OutgoingFile)> {
        self.entries
            .iter()
            .filter(|(_, s)| *s == EntryState::Queued)
            .flat_map(|(e, _)| {
                (e.files.iter())
                    .filter(|f| f.id.is_none())
                    .map(|f| (e.client_id, f.clone()))
            })
            .collect()
    }

    /// The person gave up on a message.
    pub fn discard(&mut self, client_id: &ClientId) -> Option<OutboxEntry> {
        let i = self.position(client_id)?;
        self.entries.remove(i).map(|(e, _)| e)
    }

    /// Every entry, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &(OutboxEntry, EntryState)> {
        self.entries.iter()
    }

    /// Entries not yet acknowledged.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, client_id: &ClientId) -> Option<usize> {
        self.entries
            .iter()
            .position(|(e, _)| &e.client_id == client_id)
    }
}

/// What a live event means for a room's cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Incoming {
    /// The next one: store it; the cursor advanced.
    Next,
    /// Already held: ignore it.
    Duplicate,
    /// Events are missing before it: store it if you like, but ask the
    /// server to `sync` from the cursor, which stays where it is.
    Gap { cursor: Seq },
}

/// Per-room cursors: the highest seq held with nothing missing below it
/// (down to where the cache starts), and the commit time of the event at
/// that seq when it is known (the server checks it, see [`Cursor`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursors {
    rooms: BTreeMap<RoomId, Mark>,
}

/// One room's cursor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Mark {
    seq: Seq,
    ts: Option<i64>,
}

impl Mark {
    fn of(event: &Event) -> Mark {
        Mark {
            seq: event.seq,
            ts: Some(event.ts),
        }
    }
}

impl Cursors {
    /// Cursors restored from storage: each room's seq and, when known, the
    /// time of the event at it.
    pub fn from_stored(stored: impl IntoIterator<Item = (RoomId, Seq, Option<i64>)>) -> Self {
        Cursors {
            rooms: stored
                .into_iter()
                .map(|(room, seq, ts)| (room, Mark { seq, ts }))
                .collect(),
        }
    }

    /// The `sync` frame to send on (re)connect.
    pub fn sync_frame(&self) -> ClientFrame {
        ClientFrame::Sync {
            cursors: self
                .rooms
                .iter()
                .map(|(room, mark)| Cursor {
                    room: room.clone(),
                    seq: mark.seq,
                    ts: mark.ts,
                })
                .collect(),
        }
    }

    /// The cursor of a room, if the room is known.
    pub fn get(&self, room: &RoomId) -> Option<Seq> {
        self.rooms.get(room).map(|m| m.seq)
    }

    /// The time of the event at a room's cursor, when known.
    pub fn time(&self, room: &RoomId) -> Option<i64> {
        self.rooms.get(room).and_then(|m| m.ts)
    }

    /// Applies a catch-up page. For a room the client listed, the page
    /// continues from the cursor; for a new room it is the latest page and
    /// starts the cursor. Returns the events to store (those not held yet)
    /// and whether a gap was found (then: sync again).
    pub fn apply_page(&mut self, room: &RoomId, events: &[Event]) -> (Vec<Event>, bool) {
        let Some(&start) = self.rooms.get(room) else {
            let mark = events.last().map(Mark::of).unwrap_or_default();
            self.rooms.insert(room.clone(), mark);
            return (events.to_vec(), false);
        };
        let mut mark = start;
        let mut fresh = Vec::new();
        for e in events {
            if e.seq <= mark.seq {
                continue;
            }
            if e.seq != mark.seq.saturating_add(1) {
                self.rooms.insert(room.clone(), mark);
                return (fresh, true);
            }
            mark = Mark::of(e);
            fresh.push(e.clone());
        }
        self.rooms.insert(room.clone(), mark);
        (fresh, false)
    }

    /// Applies a live event.
    pub fn apply_event(&mut self, event: &Event) -> Incoming {
        match self.rooms.get(&event.room).map(|m| m.seq) {
            None => {
                // A room we just joined: its history starts here for us.
                self.rooms.insert(event.room.clone(), Mark::of(event));
                Incoming::Next
            }
            Some(cursor) if event.seq <= cursor => Incoming::Duplicate,
            Some(cursor) if event.seq == cursor.saturating_add(1) => {
                self.rooms.insert(event.room.clone(), Mark::of(event));
                Incoming::Next
            }
            Some(cursor) => Incoming::Gap { cursor },
        }
    }

    /// Records our own message's ack: if it is the next seq, the cursor
    /// advances (the event may arrive later and is then a duplicate).
    pub fn apply_ack(&mut self, room: &RoomId, seq: Seq, ts: i64) -> bool {
        match self.rooms.get(room).map(|m| m.seq) {
            Some(cursor) if seq == cursor.saturating_add(1) => {
                let mark = Mark { seq, ts: Some(ts) };
                self.rooms.insert(room.clone(), mark);
                true
            }
            _ => false,
        }
    }

    /// Forgets a room: the user left it, or the server is sending it
    /// again from scratch (the next page starts it anew).
    pub fn forget(&mut self, room: &RoomId) {
        self.rooms.remove(room);
    }

    /// Every (room, cursor).
    pub fn iter(&self) -> impl Iterator<Item = (&RoomId, Seq)> {
        self.rooms.iter().map(|(r, m)| (r, m.seq))
    }
}

#[cfg(test)]
mod tests;
