//! Local fan-out: which connection of this node follows which room, and
//! delivery of committed events to them.
//!
//! An event is serialised ONCE into a frame and the same bytes are queued
//! for every subscribed connection. Each connection has a bounded queue
//! (its [`Mailbox`]); one that is full is not waited for: it is marked
//! lagged, unsubscribed, and told to ask the client to resync from its
//! cursor. A slow or dead client never slows a room down.

mod head;
mod mailbox;

use crate::maps::{FastMap, FastSet};
use axum::extract::ws::Utf8Bytes;
use head::{Head, user_key};
pub use mailbox::{Full, Mailbox};
use natter_shared::{Event, RoomId, Seq, SiteId, UserId};
use serde::Serialize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Past this many (room, user) pairs remembered for typing, the ones
/// older than the interval are forgotten (at most once an interval).
const TYPED_PRUNE_AT: usize = 10_000;

/// How often one typist's `typing` goes out per room, by default.
pub const TYPING_EVERY: Duration = Duration::from_secs(2);

/// A connection's id within this node.
pub type ConnId = u64;

/// What the hub queues for a connection: one pointer and a tag (16
/// bytes), so that a busy connection's queue stays small.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A committed event.
    Event(Arc<Published>),
    /// A room the user was just made a member of at creation.
    NewRoom(Box<RoomId>),
    /// A ready frame that is not an event (`typing`, `read`), shared by
    /// its recipients.
    Notice(Arc<Utf8Bytes>),
    /// A ready `presence` frame, shared by its recipients: a connection
    /// whose site shows no presence drops it.
    Presence(Arc<Utf8Bytes>),
}

const _: () = assert!(std::mem::size_of::<Delivery>() == 16);

/// A committed event and its frame, serialised once.
#[derive(Debug)]
pub struct Published {
    pub room: RoomId,
    pub seq: Seq,
    /// The whole `{"type":"event",…}` frame.
    pub frame: Utf8Bytes,
    /// Set for member events: whose membership changed and how.
    pub member: Option<(UserId, bool)>,
}

/// A read marker's move: from `after` (what it was, as far as the mover
/// knows; lower is safe) to `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moved {
    pub after: Seq,
    pub seq: Seq,
}

struct ConnEntry {
    site: SiteId,
    user: UserId,
    /// `user_key(&user)`, to match receipts with authors.
    user_key: u64,
    mailbox: Arc<Mailbox>,
    rooms: FastSet<RoomId>,
    /// Subscribed after a sync, and not lagged since.
    live: bool,
}

struct Inner {
    next_id: ConnId,
    conns: FastMap<ConnId, ConnEntry>,
    rooms: FastMap<RoomId, FastSet<ConnId>>,
    users: FastMap<(SiteId, UserId), FastSet<ConnId>>,
    /// For each followed room, the latest seq known to have reached this
    /// hub (published here, or read from the store by a sync), with the
    /// authors of the latest events.
    heads: FastMap<RoomId, Head>,
    /// When each (room, user) last had a `typing` passed on.
    typed: FastMap<(RoomId, UserId), Instant>,
    /// When `typed` was last rid of its old entries.
    typed_pruned: Instant,
    /// At most one `typing` per (room, user) this often; zero: every one.
    typing_every: Duration,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            next_id: 0,
            conns: FastMap::default(),
            rooms: FastMap::default(),
            users: FastMap::default(),
            heads: FastMap::default(),
            typed: FastMap::default(),
            typed_pruned: Instant::now(),
            typing_every: TYPING_EVERY,
        }
    }
}

impl Inner {
    fn unsubscribe(&mut self, id: ConnId) {
        let Some(entry) = self.conns.get_mut(&id) else {
            return;
        };
        entry.live = false;
        for room in entry.rooms.drain() {
            if let Some(subs) = self.rooms.get_mut(&room) {
                subs.remove(&id);
                if subs.is_empty() {
                    self.rooms.remove(&room);
                    self.heads.remove(&room);
                }
            }
        }
    }

    fn subscribe_one(&mut self, id: ConnId, room: &RoomId) {
        if let Some(entry) = self.conns.get_mut(&id) {
            entry.rooms.insert(room.clone());
            self.rooms.entry(room.clone()).or_default().insert(id);
        }
    }

    /// Has the connection follow a room new to it, and tells it of the room.
    fn announce_to(&mut self, id: ConnId, room: &RoomId) {
        self.subscribe_one(id, room);
        self.offer(id, Delivery::NewRoom(Box::new(room.clone())));
    }

    /// Queues without waiting; a full queue marks the connection lagged.
    fn offer(&mut self, id: ConnId, delivery: Delivery) {
        let Some(entry) = self.conns.get(&id) else {
            return;
        };
        if entry.mailbox.offer(delivery).is_err() {
            tracing::debug!(conn = id, "connection fell behind; asking it to resync");
            entry.mailbox.raise();
            self.unsubscribe(id);
        }
    }

    /// The connections following `room` that `keep` keeps.
    fn followers(&self, room: &RoomId, keep: impl Fn(&ConnEntry) -> bool) -> Vec<ConnId> {
        self.rooms
            .get(room)
            .map(|ids| {
                ids.iter()
                    .copied()
                    .filter(|id| self.conns.get(id).is_some_and(&keep))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn live_conns_of(&self, site: &SiteId, user: &UserId) -> Vec<ConnId> {
        self.users
            .get(&(site.clone(), user.clone()))
            .map(|ids| {
                ids.iter()
                    .copied()
                    .filter(|id| self.conns.get(id).is_some_and(|c| c.live))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The hub; cheap to clone.
#[derive(Clone, Default)]
pub struct Hub {
    // A std Mutex: every critical section is a few map operations and
    // non-blocking `try_send`s, and it is never held across an `.await`.
    inner: Arc<Mutex<Inner>>,
}

/// A connection's place in the hub; unregisters itself when dropped.
pub struct Registration {
    pub id: ConnId,
    /// What the hub queued for the connection, and its signals.
    pub mailbox: Arc<Mailbox>,
    hub: Hub,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.hub.unregister(self.id);
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "event")]
struct EventFrame<'a> {
    event: &'a Event,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "typing")]
struct TypingFrame<'a> {
    room: &'a RoomId,
    user: &'a UserId,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "read")]
struct ReadFrame<'a> {
    room: &'a RoomId,
    user: &'a UserId,
    seq: Seq,
}

/// Serialises a frame that goes to several connections, once.
fn shared_frame(frame: &impl Serialize) -> Option<Arc<Utf8Bytes>> {
    match serde_json::to_string(frame) {
        Ok(json) => Some(Arc::new(Utf8Bytes::from(json))),
        Err(err) => {
            tracing::error!(error = %err, "could not serialise a frame");
            None
        }
    }
}

impl Hub {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-updated
        // in a way that matters more than losing the hub; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a connection with a queue of `capacity` deliveries.
    pub fn register(&self, site: SiteId, user: UserId, capacity: usize) -> Registration {
        let mailbox = Arc::new(Mailbox::new(capacity));
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner
            .users
            .entry((site.clone(), user.clone()))
            .or_default()
            .insert(id);
        inner.conns.insert(
            id,
            ConnEntry {
                site,
                user_key: user_key(&user),
                user,
                mailbox: mailbox.clone(),
                rooms: FastSet::default(),
                live: false,
            },
        );
        Registration {
            id,
            mailbox,
            hub: self.clone(),
        }
    }

    fn unregister(&self, id: ConnId) {
        let mut inner = self.lock();
        inner.unsubscribe(id);
        if let Some(entry) = inner.conns.remove(&id) {
            let key = (entry.site, entry.user);
            if let Some(ids) = inner.users.get_mut(&key) {
                ids.remove(&id);
                if ids.is_empty() {
                    inner.users.remove(&key);
                }
            }
        }
    }

    /// A sync starts: the connection follows nothing yet, but is live, so
    /// rooms it joins (or that are created for it) from now on reach it.
    pub fn begin_sync(&self, id: ConnId) {
        let mut inner = self.lock();
        inner.unsubscribe(id);
        if let Some(entry) = inner.conns.get_mut(&id) {
            entry.live = true;
        }
    }

    /// Makes a live connection follow these rooms too; each comes with
    /// its latest seq as the caller read it from the store.
    pub fn follow(&self, id: ConnId, rooms: impl IntoIterator<Item = (RoomId, Seq)>) {
        let mut inner = self.lock();
        if inner.conns.get(&id).is_some_and(|c| c.live) {
            for (room, seq) in rooms {
                inner.subscribe_one(id, &room);
                inner.heads.entry(room).or_default().synced(seq);
            }
        }
    }

    /// Stops a connection following one room.
    pub fn unfollow(&self, id: ConnId, room: &RoomId) {
        let mut inner = self.lock();
        if let Some(subs) = inner.rooms.get_mut(room) {
            subs.remove(&id);
            if subs.is_empty() {
                inner.rooms.remove(room);
                inner.heads.remove(room);
            }
        }
        if let Some(entry) = inner.conns.get_mut(&id) {
            entry.rooms.remove(room);
        }
    }

    /// Stops a connection following anything (until its next sync).
    pub fn unsubscribe_all(&self, id: ConnId) {
        self.lock().unsubscribe(id);
    }

    /// Delivers a committed event to every connection following its room.
    /// A member who joins starts following the room with this event; one
    /// who leaves receives it, then stops.
    pub fn publish_event(&self, site: &SiteId, event: &Event) {
        let frame = match serde_json::to_string(&EventFrame { event }) {
            Ok(json) => Utf8Bytes::from(json),
            Err(err) => {
                tracing::error!(error = %err, "could not serialise an event");
                return;
            }
        };
        let member = event
            .kind
            .membership()
            .map(|(user, joined)| (user.clone(), joined));
        let published = Arc::new(Published {
            room: event.room.clone(),
            seq: event.seq,
            frame,
            member: member.clone(),
        });
        let mut inner = self.lock();
        if let Some((user, true)) = &member {
            for id in inner.live_conns_of(site, user) {
                inner.subscribe_one(id, &event.room);
            }
        }
        let targets: Vec<ConnId> = inner
            .rooms
            .get(&event.room)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default();
        if !targets.is_empty() {
            let author = event.sender.as_ref().map_or(0, user_key);
            let head = inner.heads.entry(event.room.clone()).or_default();
            head.published(event.seq, author);
        }
        for id in targets {
            inner.offer(id, Delivery::Event(published.clone()));
        }
        if let Some((user, false)) = &member {
            for id in inner.followers(&event.room, |c| &c.user == user) {
                if let Some(subs) = inner.rooms.get_mut(&event.room) {
                    subs.remove(&id);
                }
                if let Some(entry) = inner.conns.get_mut(&id) {
                    entry.rooms.remove(&event.room);
                }
            }
        }
    }

    /// Tells the live connections of these members about a new room.
    pub fn announce_room(&self, site: &SiteId, room: &RoomId, members: &[UserId]) {
        let mut inner = self.lock();
        for user in members {
            for id in inner.live_conns_of(site, user) {
                inner.announce_to(id, room);
            }
        }
    }

    /// Whether a live connection of `user` here does not follow `room`
    /// (a room whose announcement never came); with `announce`, such
    /// connections are then told of it, as by [`Hub::announce_room`].
    pub fn unannounced(&self, site: &SiteId, room: &RoomId, user: &UserId, announce: bool) -> bool {
        let mut inner = self.lock();
        let missing: Vec<ConnId> = inner
            .live_conns_of(site, user)
            .into_iter()
            .filter(|id| inner.conns.get(id).is_some_and(|c| !c.rooms.contains(room)))
            .collect();
        if announce {
            for &id in &missing {
                inner.announce_to(id, room);
            }
        }
        !missing.is_empty()
    }

    /// Passes on at most one `typing` per (room, user) every `every` (the
    /// others are dropped: an indicator shown for a few seconds needs no
    /// more).
    pub fn set_typing_interval(&self, every: Duration) {
        self.lock().typing_every = every;
    }

    /// Sends a `typing` frame to everyone following the room but the
    /// typist, unless the same typist's last one in the room went out less
    /// than the typing interval ago. True when it went out.
    pub fn typing(&self, room: &RoomId, user: &UserId) -> bool {
        let mut inner = self.lock();
        let now = Instant::now();
        let every = inner.typing_every;
        let key = (room.clone(), user.clone());
        if inner
            .typed
            .get(&key)
            .is_some_and(|t| now.duration_since(*t) < every)
        {
            return false;
        }
        // Old entries go now and then (not on every frame: with many
        // typists at once that would be a scan per frame).
        if inner.typed.len() >= TYPED_PRUNE_AT && now.duration_since(inner.typed_pruned) >= every {
            inner.typed.retain(|_, t| now.duration_since(*t) < every);
            inner.typed_pruned = now;
        }
        inner.typed.insert(key, now);
        let Some(frame) = shared_frame(&TypingFrame { room, user }) else {
            return false;
        };
        for id in inner.followers(room, |c| &c.user != user) {
            // Typing is best effort: never mark a connection lagged for it.
            if let Some(entry) = inner.conns.get(&id) {
                let _ = entry.mailbox.offer(Delivery::Notice(frame.clone()));
            }
        }
        true
    }

    /// Sends a `read` frame (the marker moved from `after` to `seq`) to the
    /// reader's own connections following the room and, when the room
    /// shows receipts (`public`), to those of the authors of the events it
    /// passed: a receipt shows only on one's own messages. Where this hub
    /// does not know all those authors, to every connection following the
    /// room. Never to `from`, the connection that moved it (it knows). A
    /// connection too full for it is told to resync (its `rooms` then
    /// carry the marker).
    pub fn read(
        &self,
        room: &RoomId,
        user: &UserId,
        moved: Moved,
        public: bool,
        from: Option<ConnId>,
    ) {
        let Moved { after, seq } = moved;
        let Some(frame) = shared_frame(&ReadFrame { room, user, seq }) else {
            return;
        };
        let mut inner = self.lock();
        let targets = {
            let authors = if public {
                inner
                    .heads
                    .get(room)
                    .and_then(|head| head.authors_between(after, seq))
            } else {
                Some(Default::default())
            };
            // At most AUTHORS_KEPT authors: a scan is cheaper than a sort.
            inner.followers(room, |c| {
                &c.user == user
                    || authors
                        .as_ref()
                        .is_none_or(|keys| keys.clone().any(|k| *k == c.user_key))
            })
        };
        for id in targets.into_iter().filter(|id| Some(*id) != from) {
            inner.offer(id, Delivery::Notice(frame.clone()));
        }
    }

    /// Sends a `presence` frame (best effort) once to every connection
    /// that follows any of `rooms`, except those of `about` (who it is
    /// about).
    pub fn notify_rooms(&self, rooms: &[RoomId], about: &UserId, frame: &impl Serialize) {
        let Some(frame) = shared_frame(frame) else {
            return;
        };
        let inner = self.lock();
        let mut told = FastSet::default();
        for room in rooms {
            for id in inner.rooms.get(room).into_iter().flatten() {
                let Some(entry) = inner.conns.get(id) else {
                    continue;
                };
                if &entry.user != about && told.insert(*id) {
                    let _ = entry.mailbox.offer(Delivery::Presence(frame.clone()));
                }
            }
        }
    }

    /// The user was banned: every connection of theirs on this node
    /// closes.
    pub fn ban(&self, site: &SiteId, user: &UserId) {
        let inner = self.lock();
        for id in inner
            .users
            .get(&(site.clone(), user.clone()))
            .into_iter()
            .flatten()
        {
            if let Some(entry) = inner.conns.get(id) {
                entry.mailbox.ban();
            }
        }
    }

    /// The latest seq of a room known to have reached this node, if
    /// someone here follows it.
    pub fn head(&self, room: &RoomId) -> Option<Seq> {
        self.lock().heads.get(room).map(|h| h.seq)
    }

    /// The live connections: synced, and following their rooms.
    pub fn live_connections(&self) -> Vec<ConnId> {
        let inner = self.lock();
        inner
            .conns
            .iter()
            .filter(|(_, c)| c.live)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Tells these connections to resync from their cursors, as if their
    /// queues had overflowed: for when this node may have missed events
    /// from other nodes (its broker link dropped or fell behind). Returns
    /// how many were live and so told.
    pub fn resync(&self, ids: &[ConnId]) -> usize {
        let mut inner = self.lock();
        let mut told = 0;
        for &id in ids {
            let Some(entry) = inner.conns.get(&id).filter(|c| c.live) else {
                continue;
            };
            entry.mailbox.raise();
            inner.unsubscribe(id);
            told += 1;
        }
        told
    }

    /// Each room someone on this node follows, with the latest seq known
    /// to have reached this node.
    pub fn heads(&self) -> Vec<(RoomId, Seq)> {
        let inner = self.lock();
        inner
            .rooms
            .iter()
            .filter(|(_, subs)| !subs.is_empty())
            .map(|(room, _)| (room.clone(), inner.heads.get(room).map_or(0, |h| h.seq)))
            .collect()
    }

    /// Connections registered on this node.
    pub fn connection_count(&self) -> usize {
        self.lock().conns.len()
    }
}

#[cfg(test)]
mod tests;
