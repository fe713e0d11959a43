//! What each server frame does to the chat: one method per frame, behind
//! [`Chat::apply`]. Each returns the frames to send in answer, and records
//! what must be stored as [`Change`]s.

use super::{Change, Chat, DELETED, Preview, Room};
use natter_shared::sync::{Incoming, Settled};
use natter_shared::{
    Attachment, ClientFrame, ClientId, ErrorCode, Event, EventKind, Limits, Member, RoomId,
    RoomInfo, Seq, ServerFrame, UserId,
};

/// Most markers moved offline sent before `sync`: each of a room the
/// connection does not follow yet costs the server a lookup, and counts
/// against the same rate as `sync` itself.
const READS_BEFORE_SYNC: usize = 16;

impl Chat {
    /// Applies one server frame; returns the frames to send in answer.
    pub fn apply(&mut self, frame: ServerFrame) -> Vec<ClientFrame> {
        let mut answer = self.answer(frame);
        answer.extend(self.read_on_sight());
        answer
    }

    fn answer(&mut self, frame: ServerFrame) -> Vec<ClientFrame> {
        match frame {
            ServerFrame::Hello {
                user, name, limits, ..
            } => self.on_hello(user, name, limits),
            ServerFrame::Rooms { rooms } => self.on_rooms(rooms),
            ServerFrame::Page {
                room,
                events,
                reset,
                ..
            } => self.on_page(&room, events, reset),
            ServerFrame::Synced {} => self.on_synced(),
            ServerFrame::Event { event } => self.on_event(event),
            ServerFrame::Ack {
                client_id,
                room,
                seq,
                ts,
            } => self.on_ack(client_id, &room, seq, ts),
            ServerFrame::Error {
                code,
                message,
                client_id: Some(client_id),
                ..
            } => self.on_refused(&client_id, code, &message),
            ServerFrame::Error {
                code,
                message,
                room,
                ..
            } => self.on_error(code, &message, room.as_ref()),
            ServerFrame::Resync { .. } => vec![self.sync()],
            ServerFrame::History { room, events, more } => self.on_history(&room, events, more),
            ServerFrame::Read { room, user, seq } => self.on_read(&room, user, seq),
            ServerFrame::Presence { users } => self.on_presence(users),
            ServerFrame::Members { room, members, .. } => self.on_members(&room, members),
            // Typing is the engine's (it never touches the store).
            ServerFrame::Typing { .. } | ServerFrame::Pong { .. } => Vec::new(),
        }
    }

    /// `hello`: who we are and the limits in force; we answer with `sync`,
    /// after the markers this device moved while the server could not hear
    /// (a few: the rest go after `synced`). The server takes them first,
    /// so the counts in its `rooms` include them: this device may no longer
    /// hold the messages it read (a reload), and could not take them off
    /// the server's count itself.
    fn on_hello(&mut self, user: UserId, name: Option<String>, limits: Limits) -> Vec<ClientFrame> {
        // A renewed token on a live connection: the same session.
        if self.live && self.me.as_ref().is_some_and(|me| me.id == user) {
            self.limits = limits;
            return Vec::new();
        }
        if self.me.as_ref().is_some_and(|me| me.id != user) {
            // Another user (the host page switched tokens): nothing
            // of the previous one may show, or be sent as the new one.
            *self = Chat::default();
        }
        self.changes.push(Change::User(user.clone()));
        self.me = Some(Member::new(user, name));
        self.limits = limits;
        self.notice = None;
        let mut frames: Vec<ClientFrame> = self
            .unsent_reads()
            .into_iter()
            .take(READS_BEFORE_SYNC)
            .collect();
        frames.push(self.sync());
        frames
    }

    /// `rooms`: in answer to `sync`, the frames up to `synced` list every
    /// room: rooms missing from them are rooms we were removed from (see
    /// [`Chat::on_synced`]). Later it announces one room we joined.
    fn on_rooms(&mut self, rooms: Vec<RoomInfo>) -> Vec<ClientFrame> {
        let ids: Vec<RoomId> = rooms.iter().map(|r| r.id.clone()).collect();
        if !self.live {
            (self.listed.get_or_insert_with(Default::default)).extend(ids.iter().cloned());
        }
        for info in rooms {
            self.upsert_room(info.clone());
            self.settle_counts(&info);
        }
        let records = ids.iter().filter_map(|id| self.record(id)).collect();
        self.changes.push(Change::Rooms(records));
        Vec::new()
    }

    /// `members`: a page of a room's members joins the ones it lists.
    fn on_members(&mut self, room: &RoomId, members: Vec<Member>) -> Vec<ClientFrame> {
        let Some(r) = self.room_mut(room) else {
            return Vec::new();
        };
        let last_seq = r.info.last_seq;
        for mut m in members {
            match r.info.members.iter_mut().find(|x| x.id == m.id) {
                Some(known) => {
                    m.read = kept_mark(known.read, m.read, last_seq);
                    *known = m;
                }
                None => r.info.members.push(m),
            }
        }
        r.info.members.sort_by(|a, b| a.id.cmp(&b.id));
        let records = self.record(room).into_iter().collect();
        self.changes.push(Change::Rooms(records));
        Vec::new()
    }

    /// `page`: a room's catch-up; a gap in it asks for `sync` again. A
    /// reset page replaces all the room held (its copy was of another
    /// history).
    fn on_page(&mut self, room: &RoomId, events: Vec<Event>, reset: bool) -> Vec<ClientFrame> {
        if self.room(room).is_none() {
            return Vec::new();
        }
        if reset {
            self.cursors.forget(room);
            if let Some(r) = self.room_mut(room) {
                r.events.clear();
                r.last = None;
                r.oldest = None;
                r.complete = false;
                // What this device read was of the other history.
                r.read = r.info.read;
                r.unread = r.info.unread;
                r.counted = r.info.last_seq;
            }
        }
        let (fresh, gap) = self.cursors.apply_page(room, &events);
        if reset {
            if !self.absorb(room, &fresh)
                && let Some(record) = self.record(room)
            {
                self.changes.push(Change::Reset(record, fresh));
            }
            return Vec::new();
        }
        self.store_events(room, fresh);
        if gap { vec![self.sync()] } else { Vec::new() }
    }

    /// `synced`: caught up; rooms no `rooms` frame of this catch-up listed
    /// are forgotten; live events flow, markers moved offline and the
    /// outbox go out.
    fn on_synced(&mut self) -> Vec<ClientFrame> {
        if let Some(listed) = self.listed.take() {
            let gone: Vec<RoomId> = (self.rooms.iter())
                .map(|r| r.info.id.clone())
                .filter(|id| !listed.contains(id))
                .collect();
            gone.iter().for_each(|id| self.forget(id));
        }
        self.live = true;
        let mut frames = self.unsent_reads();
        frames.extend(self.sends());
        frames
    }

    /// `event`: a live event; one past a gap asks for `sync` again.
    fn on_event(&mut self, event: Event) -> Vec<ClientFrame> {
        // Not a room of ours (yet): nothing to show it in.
        if self.room(&event.room).is_none() {
            return Vec::new();
        }
        match self.cursors.apply_event(&event) {
            Incoming::Next => self.store_events(&event.room.clone(), vec![event]),
            Incoming::Duplicate => {}
            // Kept out of the store: the cursor did not reach it,
            // and the catch-up that follows brings it again.
            Incoming::Gap { .. } => return vec![self.sync()],
        }
        Vec::new()
    }

    /// `ack`: our message is stored at `seq`; the window has room again.
    /// A message of text alone is then known whole: the cursor moves past
    /// it and its event, when it comes, is a duplicate. One with files is
    /// shown with what this device knows of them until its event brings
    /// what the server made of them (type, size in pixels, thumbnail), so
    /// the cursor waits for that event.
    fn on_ack(
        &mut self,
        client_id: ClientId,
        room: &RoomId,
        seq: Seq,
        ts: i64,
    ) -> Vec<ClientFrame> {
        if let Settled::Acked { entry, .. } = self.outbox.ack(&client_id, seq, ts) {
            if self.cursors.get(room).is_some_and(|cursor| seq <= cursor) {
                // A retry's ack (the room has its event, perhaps deleted
                // since): nothing to write over what is held.
                self.changes.push(Change::Sent(entry));
                return self.sends();
            }
            if entry.files.is_empty() {
                self.cursors.apply_ack(room, seq, ts);
            }
            let files = (entry.files.iter())
                .filter_map(|f| {
                    Some(Attachment {
                        id: f.id.clone()?,
                        name: f.name.clone(),
                        size: f.size,
                        mime: f.mime.clone(),
                        width: None,
                        height: None,
                        thumb: false,
                    })
                })
                .collect();
            let event = Event {
                room: room.clone(),
                seq,
                ts,
                sender: self.me.clone().map(|m| m.id),
                kind: EventKind::Message {
                    body: entry.body.clone(),
                    client_id: Some(client_id),
                    files,
                },
            };
            if let Some(r) = self.room_mut(room)
                && r.last.as_ref().is_none_or(|l| l.seq < Some(seq))
            {
                r.last = Some(Preview {
                    sender: event.sender.clone(),
                    body: entry.body.clone(),
                    ts,
                    seq: Some(seq),
                });
            }
            self.hold(event.clone());
            let record = self.record(room);
            self.changes
                .push(Change::Acked(Box::new(entry), event, record));
        }
        self.sends()
    }

    /// `error` about one of our sends. Failed entries show as such; a
    /// transient refusal is queued again and goes out with the next batch
    /// (the next ack, message or reconnect, or [`Chat::resend`] a while
    /// later), not in a tight loop.
    fn on_refused(
        &mut self,
        client_id: &ClientId,
        code: ErrorCode,
        message: &str,
    ) -> Vec<ClientFrame> {
        if let Settled::Failed { .. } = self.outbox.reject(client_id, code, message) {
            self.record_state(client_id);
        }
        Vec::new()
    }

    /// Any other `error`: shown as a notice; `not_member` of a room
    /// forgets it; `too_many_requests` (a request held back) and
    /// `token_expired` (a fresh token is on its way) show nothing.
    fn on_error(
        &mut self,
        code: ErrorCode,
        message: &str,
        room: Option<&RoomId>,
    ) -> Vec<ClientFrame> {
        // Not a member (any more): the room leaves the list, which says
        // as much. (A marker moved offline in a room the user was taken
        // out of meanwhile is answered so, before the `sync`.)
        if let (ErrorCode::NotMember, Some(room)) = (code, room) {
            self.forget(room);
            return Vec::new();
        }
        // Throttled: the server holds the request and answers it later;
        // nothing failed.
        // The token expired: the page is asked for a fresh one while the
        // connection goes on.
        if matches!(code, ErrorCode::TooManyRequests | ErrorCode::TokenExpired) {
            return Vec::new();
        }
        self.forget_asked();
        self.notice = Some(format!("{}: {message}", code.as_str()));
        Vec::new()
    }

    /// `history`: an older page of a room, asked for on scroll.
    fn on_history(&mut self, room: &RoomId, events: Vec<Event>, more: bool) -> Vec<ClientFrame> {
        if self.room(room).is_none() {
            return Vec::new();
        }
        let cursor = self.cursors.get(room).unwrap_or(0);
        // Older than the cursor only: newer ones come by catch-up.
        let older: Vec<Event> = events.into_iter().filter(|e| e.seq <= cursor).collect();
        if let Some(r) = self.room_mut(room) {
            r.complete = !more;
            r.asked = None;
            if let Some(first) = older.first() {
                r.oldest = Some(r.oldest.map_or(first.seq, |o| o.min(first.seq)));
            }
        }
        for event in older.iter().cloned() {
            self.hold(event);
        }
        if let Some(record) = self.record(room) {
            self.changes.push(Change::Events(record, older));
        }
        Vec::new()
    }

    /// The `sync` frame from our cursors; live events stop until `synced`.
    fn sync(&mut self) -> ClientFrame {
        self.live = false;
        self.listed = None;
        self.cursors.sync_frame()
    }

    /// A room as the server lists it. The members' read markers it
    /// carries may be older than ones this chat already heard of (the
    /// server writes them a moment later, and another node may have
    /// listed the room): a receipt shown never goes back.
    fn upsert_room(&mut self, mut info: RoomInfo) {
        match self.rooms.iter_mut().find(|r| r.info.id == info.id) {
            Some(r) => {
                for m in &mut info.members {
                    let known = r.info.members.iter().find(|k| k.id == m.id);
                    if let Some(known) = known {
                        m.read = kept_mark(known.read, m.read, info.last_seq);
                    }
                }
                r.info = info;
            }
            None => self.rooms.push(Room::new(info)),
        }
    }

    fn forget(&mut self, room: &RoomId) {
        if self.room(room).is_some() {
            self.changes.push(Change::Forget(room.clone()));
        }
        self.rooms.retain(|r| r.info.id != *room);
        self.cursors.forget(room);
    }

    /// New events of a room the cursors accepted: held, counted, and
    /// recorded for the store with the room as it is after them.
    fn store_events(&mut self, room: &RoomId, mut events: Vec<Event>) {
        if self.absorb(room, &events) {
            return;
        }
        // A deleted message held here is stored as it is now too (the
        // store also empties one it holds and this chat does not).
        let targets: Vec<Seq> = (events.iter())
            .filter_map(|e| match e.kind {
                EventKind::MessageDeleted { target } => Some(target),
                _ => None,
            })
            .collect();
        if let Some(r) = self.room(room) {
            events.extend(targets.iter().filter_map(|t| r.events.get(t)).cloned());
        }
        if let Some(record) = self.record(room) {
            self.changes.push(Change::Events(record, events));
        }
    }

    /// Holds new events of a room and counts those unread; true when one
    /// says we left (the room is then forgotten).
    fn absorb(&mut self, room: &RoomId, events: &[Event]) -> bool {
        let me = self.me.as_ref().map(|m| m.id.clone());
        if let Some(r) = self.room_mut(room) {
            for e in events {
                match &e.kind {
                    EventKind::Message { body, .. } => {
                        r.last = Some(Preview {
                            sender: e.sender.clone(),
                            body: body.clone(),
                            ts: e.ts,
                            seq: Some(e.seq),
                        });
                    }
                    EventKind::MessageDeleted { target } => {
                        if let Some(last) = r.last.as_mut().filter(|l| l.seq == Some(*target)) {
                            last.body = DELETED.into();
                        }
                    }
                    _ => {}
                }
                if r.oldest.is_none_or(|o| e.seq < o) {
                    r.oldest = Some(e.seq);
                }
            }
        }
        for e in events.iter().cloned() {
            self.hold(e);
        }
        let seqs: Vec<Seq> = events.iter().map(|e| e.seq).collect();
        self.count_new(room, &seqs);
        let left = events.iter().any(
            |e| matches!(&e.kind, EventKind::MemberLeft { user } if Some(user) == me.as_ref()),
        );
        if left {
            self.forget(room);
        }
        left
    }

    /// Holds an event of a room (from the server, the store or an ack) for
    /// the view, and applies what it says: our own message is settled, a
    /// member joins or leaves.
    pub(super) fn hold(&mut self, event: Event) {
        if self.room(&event.room).is_none() {
            return;
        }
        let me = self.me.as_ref().map(|m| &m.id);
        if let EventKind::Message {
            client_id: Some(cid),
            ..
        } = &event.kind
            && event.sender.is_some()
            && event.sender.as_ref() == me
        {
            // Our own message, seen before its ack (or after a reconnect
            // lost the ack): the room has it, so it is settled, and leaves
            // the stored outbox too.
            if let Settled::Acked { entry, .. } = self.outbox.ack(cid, event.seq, event.ts) {
                self.changes.push(Change::Sent(entry));
            }
        }
        let Some(r) = self.room_mut(&event.room) else {
            return;
        };
        match &event.kind {
            EventKind::Message { .. } | EventKind::Deleted { .. } => {}
            EventKind::MessageDeleted { target } => {
                if let Some(held) = r.events.get_mut(target) {
                    held.kind = held.kind.deleted();
                }
            }
            EventKind::MemberJoined { user } => {
                if r.info.members.iter().all(|m| m.id != *user) {
                    r.info.members.push(Member::new(user.clone(), None));
                }
            }
            EventKind::MemberLeft { user } => {
                // Kept aside, so the lines about them keep their name.
                let (gone, stay): (Vec<Member>, Vec<Member>) = std::mem::take(&mut r.info.members)
                    .into_iter()
                    .partition(|m| m.id == *user);
                r.info.members = stay;
                if !gone.is_empty() {
                    r.former.retain(|m| m.id != *user);
                    r.former.extend(gone);
                }
            }
        }
        r.events.insert(event.seq, event);
    }
}

/// A member's read marker once the server sent `fresh`, where this chat
/// held `known`: the higher one, so that a receipt never goes back, but
/// not past the room's latest event (a room whose history the server
/// replaced keeps nothing of the one before). None where the server sends
/// none: the site shows no receipts there (now).
fn kept_mark(known: Option<Seq>, fresh: Option<Seq>, last_seq: Seq) -> Option<Seq> {
    let fresh = fresh?;
    let known = known.filter(|&k| k <= last_seq).unwrap_or(0);
    Some(fresh.max(known))
}
