//! Who is online, as the people who share a room with them see it.
//!
//! A user is online while one of their connections is synced on this node
//! or another; when their last one closes they stay online for a grace
//! period, so a reload does not flicker them offline. Each change goes as
//! a `presence` frame to the connections that follow one of their rooms
//! (never to their own), and a connection that syncs is told who of its
//! room-mates is online. Presence is never stored as an event and never
//! replayed; only "last seen" is kept, on the user's row.
//!
//! With several nodes, each tells the others when one of its users comes
//! or goes, with their rooms, and every so often which users it holds, so
//! a node that vanished without a word stops counting after a while
//! ([`crate::broker`] carries both). This module keeps the count; it
//! neither waits nor talks to the broker: the broker calls it and says
//! what it answers.

use crate::hub::Hub;
use natter_shared::{Presence as Seen, RoomId, SiteId, UserId};
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A user of a site.
pub type Key = (SiteId, UserId);

/// The presence of this node's and the other nodes' users; cheap to clone.
#[derive(Clone)]
pub struct Presence {
    hub: Hub,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    local: HashMap<Key, Local>,
    /// Users other nodes hold: by node, their rooms and when last heard of.
    remote: HashMap<Key, HashMap<Arc<str>, Remote>>,
    next_departure: u64,
}

/// A user with connections on this node, or leaving it.
#[derive(Default)]
struct Local {
    conns: usize,
    rooms: BTreeSet<RoomId>,
    /// Set while their last connection closed and the grace period runs:
    /// which departure it is, so a later one does not end an earlier one.
    leaving: Option<u64>,
}

struct Remote {
    rooms: Vec<RoomId>,
    heard: Instant,
}

impl Inner {
    /// This departure is the user's latest here, and they did not come back.
    fn is_leaving(&self, key: &Key, departure: u64) -> bool {
        self.local.get(key).and_then(|l| l.leaving) == Some(departure)
    }

    fn online(&self, key: &Key) -> bool {
        self.local.contains_key(key) || self.remote.get(key).is_some_and(|n| !n.is_empty())
    }

    /// Every room the user is known to be in, here or elsewhere.
    fn rooms_of(&self, key: &Key) -> Vec<RoomId> {
        let mut rooms: BTreeSet<RoomId> = self
            .local
            .get(key)
            .map(|l| l.rooms.clone())
            .unwrap_or_default();
        if let Some(nodes) = self.remote.get(key) {
            for remote in nodes.values() {
                rooms.extend(remote.rooms.iter().cloned());
            }
        }
        rooms.into_iter().collect()
    }
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "presence")]
struct PresenceFrame<'a> {
    users: [&'a Seen; 1],
}

/// A user's last connection on this node closed for good (the grace
/// period passed): what to tell the other nodes and to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone {
    pub rooms: Vec<RoomId>,
    /// Milliseconds since the Unix epoch.
    pub last_seen: i64,
}

impl Presence {
    /// Presence told through `hub`.
    pub fn new(hub: Hub) -> Self {
        Presence {
            hub,
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A connection of the user synced, following `rooms`. True when the
    /// user came online on this node (the other nodes are to be told).
    pub fn arrive(&self, key: &Key, rooms: &[RoomId]) -> bool {
        let mut inner = self.lock();
        let was_online = inner.online(key);
        let here_before = inner.local.contains_key(key);
        let local = inner.local.entry(key.clone()).or_default();
        local.conns += 1;
        local.leaving = None;
        local.rooms.extend(rooms.iter().cloned());
        if !was_online {
            self.tell(&inner, key, true, None);
        }
        !here_before
    }

    /// A synced connection of the user closed. When it was their last on
    /// this node, the grace period starts: returns its number, to hand to
    /// [`Presence::expire`] once it has passed.
    pub fn depart(&self, key: &Key) -> Option<u64> {
        let mut inner = self.lock();
        inner.next_departure += 1;
        let departure = inner.next_departure;
        let local = inner.local.get_mut(key)?;
        local.conns = local.conns.saturating_sub(1);
        if local.conns > 0 {
            return None;
        }
        local.leaving = Some(departure);
        Some(departure)
    }

    /// True while this departure is the user's latest on this node and
    /// they have not come back.
    pub fn is_leaving(&self, key: &Key, departure: u64) -> bool {
        self.lock().is_leaving(key, departure)
    }

    /// The grace period of a departure passed: unless the user came back,
    /// they are gone from this node (and offline, unless another node
    /// holds them).
    pub fn expire(&self, key: &Key, departure: u64, now_ms: i64) -> Option<Gone> {
        let mut inner = self.lock();
        if !inner.is_leaving(key, departure) {
            return None;
        }
        let rooms = inner.rooms_of(key);
        let local = inner.local.remove(key)?;
        if !inner.online(key) {
            self.tell_rooms(&rooms, key, false, Some(now_ms));
        }
        Some(Gone {
            rooms: local.rooms.into_iter().collect(),
            last_seen: now_ms,
        })
    }

    /// Another node holds the user now.
    pub fn remote_arrive(&self, node: &Arc<str>, key: &Key, rooms: Vec<RoomId>) {
        let mut inner = self.lock();
        let was_online = inner.online(key);
        let remote = Remote {
            rooms,
            heard: Instant::now(),
        };
        inner
            .remote
            .entry(key.clone())
            .or_default()
            .insert(node.clone(), remote);
        if !was_online {
            self.tell(&inner, key, true, None);
        }
    }

    /// Another node no longer holds the user.
    pub fn remote_depart(&self, node: &Arc<str>, key: &Key, last_seen: i64) {
        let mut inner = self.lock();
        let rooms = inner.rooms_of(key);
        let Some(nodes) = inner.remote.get_mut(key) else {
            return;
        };
        if nodes.remove(node).is_none() {
            return;
        }
        if nodes.is_empty() {
            inner.remote.remove(key);
        }
        if !inner.online(key) {
            self.tell_rooms(&rooms, key, false, Some(last_seen));
        }
    }

    /// Another node says which users it holds: they stay counted (and
    /// count from now on, if its word of their arrival was lost).
    pub fn remote_still(&self, node: &Arc<str>, users: &[Key]) {
        let mut inner = self.lock();
        let now = Instant::now();
        for key in users {
            let remote = inner
                .remote
                .entry(key.clone())
                .or_default()
                .entry(node.clone())
                .or_insert_with(|| Remote {
                    rooms: Vec::new(),
                    heard: now,
                });
            remote.heard = now;
        }
    }

    /// Forgets what other nodes said longer ago than `max_age` (a node
    /// that stopped without a word); those users go offline.
    pub fn forget_stale(&self, max_age: Duration, now_ms: i64) {
        let mut inner = self.lock();
        let stale: Vec<(Key, Arc<str>)> = inner
            .remote
            .iter()
            .flat_map(|(key, nodes)| {
                nodes
                    .iter()
                    .filter(|(_, r)| r.heard.elapsed() > max_age)
                    .map(|(node, _)| (key.clone(), node.clone()))
            })
            .collect();
        for (key, node) in stale {
            let rooms = inner.rooms_of(&key);
            if let Some(nodes) = inner.remote.get_mut(&key) {
                nodes.remove(&node);
                if nodes.is_empty() {
                    inner.remote.remove(&key);
                }
            }
            if !inner.online(&key) {
                self.tell_rooms(&rooms, &key, false, Some(now_ms));
            }
        }
    }

    /// The user joined or left a room (through any node): from now on
    /// their comings and goings are told to its members, or no longer.
    /// One who joins while online shows online there at once.
    pub fn membership(&self, key: &Key, room: &RoomId, joined: bool) {
        let mut inner = self.lock();
        if let Some(local) = inner.local.get_mut(key) {
            if joined {
                local.rooms.insert(room.clone());
            } else {
                local.rooms.remove(room);
            }
        }
        if let Some(nodes) = inner.remote.get_mut(key) {
            for remote in nodes.values_mut() {
                remote.rooms.retain(|r| r != room);
                if joined {
                    remote.rooms.push(room.clone());
                }
            }
        }
        if joined && inner.online(key) {
            self.tell_rooms(std::slice::from_ref(room), key, true, None);
        }
    }

    /// The users this node holds (those leaving included).
    pub fn held(&self) -> Vec<Key> {
        self.lock().local.keys().cloned().collect()
    }

    /// Which of these users of a site are online.
    pub fn online(&self, site: &SiteId, users: &[UserId]) -> Vec<bool> {
        let inner = self.lock();
        users
            .iter()
            .map(|u| inner.online(&(site.clone(), u.clone())))
            .collect()
    }

    fn tell(&self, inner: &Inner, key: &Key, online: bool, last_seen: Option<i64>) {
        self.tell_rooms(&inner.rooms_of(key), key, online, last_seen);
    }

    /// Sends the change to the connections following any of `rooms`.
    fn tell_rooms(&self, rooms: &[RoomId], key: &Key, online: bool, last_seen: Option<i64>) {
        let seen = Seen {
            user: key.1.clone(),
            online,
            last_seen,
        };
        self.hub
            .notify_rooms(rooms, &key.1, &PresenceFrame { users: [&seen] });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Delivery;
    use natter_shared::ServerFrame;

    fn key(user: &str) -> Key {
        (
            SiteId::parse("s_1").expect("a site id"),
            UserId::parse(user).expect("a user id"),
        )
    }

    fn room() -> RoomId {
        RoomId::parse("r_1").expect("a room id")
    }

    fn told(mailbox: &crate::hub::Mailbox) -> Vec<Seen> {
        let mut seen = Vec::new();
        while let Some(Delivery::Presence(frame)) = mailbox.try_recv() {
            match serde_json::from_str::<ServerFrame>(frame.as_str()) {
                Ok(ServerFrame::Presence { users }) => seen.extend(users),
                other => panic!("not a presence frame: {other:?}"),
            }
        }
        seen
    }

    #[tokio::test]
    async fn room_mates_see_arrivals_and_departures_after_the_grace() {
        let hub = Hub::default();
        let presence = Presence::new(hub.clone());
        let (bob, alice) = (key("bob"), key("alice"));
        let watcher = hub.register(alice.0.clone(), alice.1.clone(), 8);
        hub.begin_sync(watcher.id);
        hub.follow(watcher.id, [(room(), 0)]);

        assert!(presence.arrive(&bob, &[room()]));
        assert!(!presence.arrive(&bob, &[room()]), "a second tab");
        let seen = told(&watcher.mailbox);
        assert_eq!(seen.len(), 1, "one arrival: {seen:?}");
        assert!(seen[0].online);

        assert_eq!(presence.depart(&bob), None, "one tab is still open");
        let last = presence.depart(&bob).expect("the last one closed");
        assert!(presence.is_leaving(&bob, last));
        assert!(
            told(&watcher.mailbox).is_empty(),
            "still online in the grace"
        );
        assert_eq!(
            presence.online(&bob.0, std::slice::from_ref(&bob.1)),
            [true]
        );

        // Back within the grace: the old departure ends nothing.
        presence.arrive(&bob, &[room()]);
        assert!(!presence.is_leaving(&bob, last));
        assert_eq!(presence.expire(&bob, last, 5), None);
        assert!(told(&watcher.mailbox).is_empty(), "no flicker");

        let last = presence.depart(&bob).expect("gone again");
        let gone = presence.expire(&bob, last, 7).expect("gone for good");
        assert_eq!(gone.rooms, [room()]);
        let seen = told(&watcher.mailbox);
        assert_eq!(
            seen,
            [Seen {
                user: bob.1.clone(),
                online: false,
                last_seen: Some(7)
            }]
        );
    }

    #[tokio::test]
    async fn presence_follows_the_rooms_a_user_joins_and_leaves() {
        let hub = Hub::default();
        let presence = Presence::new(hub.clone());
        let bob = key("bob");
        let (old, new) = (room(), RoomId::parse("r_2").expect("a room id"));
        let watch = |room: &RoomId| {
            let w = hub.register(bob.0.clone(), UserId::parse("alice").expect("id"), 8);
            hub.begin_sync(w.id);
            hub.follow(w.id, [(room.clone(), 0)]);
            w
        };
        let (in_old, in_new) = (watch(&old), watch(&new));
        let remote: Arc<str> = "node-b".into();
        presence.arrive(&bob, std::slice::from_ref(&old));
        presence.remote_arrive(&remote, &bob, vec![old.clone()]);
        assert_eq!(told(&in_old.mailbox).len(), 1);
        assert!(told(&in_new.mailbox).is_empty(), "not a room of his yet");

        // He joins the new room while online: its members see him online.
        presence.membership(&bob, &new, true);
        let seen = told(&in_new.mailbox);
        assert_eq!((seen.len(), seen[0].online), (1, true), "{seen:?}");
        // He leaves the old one: his going is no longer told there, on
        // this node's count nor on the other's.
        presence.membership(&bob, &old, false);
        presence.remote_depart(&remote, &bob, 3);
        let last = presence.depart(&bob).expect("his last connection");
        let gone = presence.expire(&bob, last, 5).expect("gone");
        assert_eq!(gone.rooms, std::slice::from_ref(&new));
        assert!(told(&in_old.mailbox).is_empty(), "a former room-mate");
        let seen = told(&in_new.mailbox);
        assert_eq!((seen.len(), seen[0].online), (1, false), "{seen:?}");
    }

    #[tokio::test]
    async fn another_nodes_user_counts_until_it_says_otherwise_or_falls_silent() {
        let hub = Hub::default();
        let presence = Presence::new(hub.clone());
        let bob = key("bob");
        let watcher = hub.register(bob.0.clone(), UserId::parse("alice").expect("id"), 8);
        hub.begin_sync(watcher.id);
        hub.follow(watcher.id, [(room(), 0)]);
        let (a, b): (Arc<str>, Arc<str>) = ("node-a".into(), "node-b".into());

        presence.remote_arrive(&a, &bob, vec![room()]);
        presence.remote_arrive(&b, &bob, vec![room()]);
        assert_eq!(told(&watcher.mailbox).len(), 1);
        presence.remote_depart(&a, &bob, 3);
        assert!(told(&watcher.mailbox).is_empty(), "node b still holds him");
        presence.remote_still(&b, std::slice::from_ref(&bob));
        presence.forget_stale(Duration::from_secs(60), 4);
        assert_eq!(
            presence.online(&bob.0, std::slice::from_ref(&bob.1)),
            [true]
        );
        presence.forget_stale(Duration::ZERO, 9);
        let seen = told(&watcher.mailbox);
        assert_eq!(seen.len(), 1);
        assert_eq!((seen[0].online, seen[0].last_seen), (false, Some(9)));
    }
}
