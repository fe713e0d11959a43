//! What the person has read, and who is online.
//!
//! Each room keeps the user's read marker as this device knows it, and an
//! unread count. The server's count (in `rooms`) covers the room as it
//! described it; each event that counts and arrives after that adds one
//! ([`counts_as_unread`]: messages of others, changes of one's own
//! membership), and moving the marker takes away what it passes.
//!
//! The marker moves when the person sees messages: while they can see
//! the open room's end ([`Chat::set_reading`]) everything that arrives
//! there is read at once; otherwise the view says how far they scrolled
//! ([`Chat::mark_read`]). A marker moved offline goes out before the next
//! `sync`, so that the server counts with it (or, past the first few,
//! after `synced`). The server's `read` frames move it too (read on another
//! device), and tell where the other members are (receipts).

use super::{Change, Chat, Room};
use natter_shared::protocol::counts_as_unread;
use natter_shared::{ClientFrame, Presence, RoomId, RoomInfo, Seq, UserId};

impl Chat {
    /// Whether the person can see the open room's latest messages (the
    /// chat open, the page visible, scrolled to the end). Seeing them
    /// reads them: returns the `read` frame to send, if any.
    pub fn set_reading(&mut self, reading: bool) -> Vec<ClientFrame> {
        self.reading = reading;
        self.read_on_sight()
    }

    /// The user's read marker in a room, as this device knows it.
    pub fn read_of(&self, room: &RoomId) -> Option<Seq> {
        self.room(room).map(|r| r.read)
    }

    /// True while the person can see the open room's latest messages.
    pub fn is_reading(&self) -> bool {
        self.reading
    }

    /// The person has seen `room` up to `seq`: the marker moves there
    /// (never back) and the unread count drops. Returns the `read` frame
    /// while live; otherwise it goes out after the next `synced`.
    pub fn mark_read(&mut self, room: &RoomId, seq: Seq) -> Option<ClientFrame> {
        if !self.advance_read(room, seq) {
            return None;
        }
        self.live.then(|| ClientFrame::Read {
            room: room.clone(),
            seq,
        })
    }

    /// What arrives in the room the person is reading is read at once.
    pub(super) fn read_on_sight(&mut self) -> Vec<ClientFrame> {
        if !self.reading {
            return Vec::new();
        }
        let Some(room) = self.open.clone() else {
            return Vec::new();
        };
        let latest = self
            .room(&room)
            .and_then(|r| r.events.keys().next_back().copied());
        latest
            .and_then(|seq| self.mark_read(&room, seq))
            .into_iter()
            .collect()
    }

    /// Moves the marker on this device; true when it moved.
    fn advance_read(&mut self, room: &RoomId, seq: Seq) -> bool {
        let me = self.me.as_ref().map(|m| m.id.clone());
        let Some(r) = self.room_mut(room) else {
            return false;
        };
        if seq <= r.read {
            return false;
        }
        let passed = passed_unread(r, me.as_ref(), r.read, seq);
        r.read = seq;
        r.unread = if seq >= r.counted {
            0
        } else {
            r.unread.saturating_sub(passed)
        };
        if let Some(record) = self.record(room) {
            self.changes.push(Change::Rooms(vec![record]));
        }
        true
    }

    /// The `read` frames of markers this device moved that the server has
    /// not heard of: sent after `synced`.
    pub(super) fn unsent_reads(&self) -> Vec<ClientFrame> {
        self.rooms
            .iter()
            .filter(|r| r.read > r.info.read)
            .map(|r| ClientFrame::Read {
                room: r.info.id.clone(),
                seq: r.read,
            })
            .collect()
    }

    /// `read`: a member's marker moved (ours: on another device).
    pub(super) fn on_read(&mut self, room: &RoomId, user: UserId, seq: Seq) -> Vec<ClientFrame> {
        let mine = self.me.as_ref().is_some_and(|m| m.id == user);
        let Some(r) = self.room_mut(room) else {
            return Vec::new();
        };
        if let Some(m) = r.info.members.iter_mut().find(|m| m.id == user) {
            m.read = Some(m.read.unwrap_or(0).max(seq));
        }
        if mine {
            r.info.read = r.info.read.max(seq);
            if !self.advance_read(room, seq)
                && let Some(record) = self.record(room)
            {
                self.changes.push(Change::Rooms(vec![record]));
            }
        } else if let Some(record) = self.record(room) {
            // The receipt is kept with the room, for the next start.
            self.changes.push(Change::Rooms(vec![record]));
        }
        Vec::new()
    }

    /// `presence`: who is online now.
    pub(super) fn on_presence(&mut self, users: Vec<Presence>) -> Vec<ClientFrame> {
        for p in users {
            self.presence.insert(p.user.clone(), p);
        }
        Vec::new()
    }

    /// What is known of a user's presence.
    pub fn presence_of(&self, user: &UserId) -> Option<&Presence> {
        self.presence.get(user)
    }

    /// Every presence known, to hand to other tabs.
    pub fn presences(&self) -> Vec<Presence> {
        self.presence.values().cloned().collect()
    }

    /// Takes presence another tab heard.
    pub fn take_presence(&mut self, users: Vec<Presence>) {
        self.on_presence(users);
    }

    /// The room as `rooms` describes it: the server's marker and count,
    /// and ours where this device read further while the server did not
    /// hear.
    pub(super) fn settle_counts(&mut self, info: &RoomInfo) {
        let me = self.me.as_ref().map(|m| m.id.clone());
        let Some(r) = self.room_mut(&info.id) else {
            return;
        };
        let read = r.read.max(info.read);
        let passed = passed_unread(r, me.as_ref(), info.read, read);
        r.read = read;
        r.unread = if read >= info.last_seq {
            0
        } else {
            info.unread.saturating_sub(passed)
        };
        r.counted = r.counted.max(info.last_seq);
    }

    /// Counts the events a room just gained: each that counts, past the
    /// marker and not yet counted.
    pub(super) fn count_new(&mut self, room: &RoomId, seqs: &[Seq]) {
        let me = self.me.as_ref().map(|m| m.id.clone());
        let Some(r) = self.room_mut(room) else {
            return;
        };
        for &seq in seqs {
            let counts = (r.events.get(&seq))
                .is_some_and(|e| me.as_ref().is_some_and(|me| counts_as_unread(e, me)));
            if counts && seq > r.counted && seq > r.read {
                r.unread += 1;
            }
            r.counted = r.counted.max(seq);
        }
    }
}

/// How many held events that count lie in `(from, to]`.
fn passed_unread(r: &Room, me: Option<&UserId>, from: Seq, to: Seq) -> u32 {
    let Some(me) = me else { return 0 };
    if to <= from {
        return 0;
    }
    let n = r
        .events
        .range(from.saturating_add(1)..=to)
        .filter(|(_, e)| counts_as_unread(e, me))
        .count();
    u32::try_from(n).unwrap_or(u32::MAX)
}
