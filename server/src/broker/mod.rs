//! Cross-node fan-out. Every committed event, room announcement, typing
//! notice and read marker goes to this node's [`Hub`] and, when a broker is
//! configured (`--broker nats://…`), to every other node through it.
//! Without one, fan-out stays in this process: a single node.
//!
//! The broker is a messenger, never the record. It carries only events
//! already committed; the database stays the one source of truth, and
//! nothing depends on the broker delivering everything:
//!
//! - a connection that receives an event past a gap reads the missing
//!   ones from the store first (`ws::deliver`), so a dropped or reordered
//!   message only arrives later;
//! - a node whose link to the broker dropped, or whose subscription fell
//!   behind, tells each of its connections to resync from its cursors
//!   once the link is back, so the tail is never missed either;
//! - a node that may have failed to publish (its link dropped with
//!   messages in flight, or its queue to the broker overflowed) asks
//!   every other node to do the same;
//! - what is lost without anyone noticing (the last events of a node
//!   killed before it published them) is found by a periodic sweep that
//!   compares what reached this node with what is stored.
//!
//! `nats` holds the link itself, `wire` the messages between nodes, and
//! `sweep` the sweep.

mod nats;
mod sweep;
mod wire;

pub use nats::{BrokerError, BrokerTask};

use crate::hub::{ConnId, Hub, Moved};
use crate::metrics::Metrics;
use crate::presence::{Key, Presence};
use crate::store::Store;
use natter_shared::{Event, RoomId, SiteId, UserId};
use std::sync::Arc;
use std::time::Duration;
use wire::Msg;

/// The fan-out every part of the server publishes through; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    hub: Hub,
    link: Option<nats::Link>,
    presence: Presence,
    /// Where "last seen" is kept.
    store: Store,
    /// How long a user whose last connection closed still shows online.
    grace: Duration,
}

impl Broker {
    /// Fan-out within this process only. `grace`: see [`Broker::depart`].
    pub fn local(hub: Hub, store: Store, grace: Duration) -> Broker {
        Broker {
            presence: Presence::new(hub.clone()),
            hub,
            link: None,
            store,
            grace,
        }
    }

    /// Fan-out through the NATS server at `url` as well, on subjects under
    /// `prefix`. Messages from other nodes go into `hub`; every
    /// `sweep_every`, the rooms followed here are compared with `store`.
    /// The node starts even while the broker is unreachable, and keeps
    /// trying to reach it.
    pub async fn connect(
        url: &str,
        prefix: &str,
        hub: Hub,
        store: Store,
        grace: Duration,
        sweep_every: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<(Broker, BrokerTask), BrokerError> {
        let presence = Presence::new(hub.clone());
        let (link, task) = nats::connect(
            url,
            prefix,
            hub.clone(),
            presence.clone(),
            store.clone(),
            sweep_every,
            metrics,
        )
        .await?;
        Ok((
            Broker {
                hub,
                link: Some(link),
                presence,
                store,
                grace,
            },
            task,
        ))
    }

    /// A committed event: to this node's connections, then to the others.
    pub fn event(&self, site: &SiteId, event: &Event) {
        self.hub.publish_event(site, event);
        note_membership(&self.presence, site, event);
        if let Some(link) = &self.link {
            link.offer(Msg::Event {
                site: site.clone(),
                event: event.clone(),
            });
        }
    }

    /// A room just created for these members, on every node.
    pub fn announce_room(&self, site: &SiteId, room: &RoomId, members: &[UserId]) {
        self.hub.announce_room(site, room, members);
        note_members(&self.presence, site, room, members);
        if let Some(link) = &self.link {
            link.offer(Msg::Room {
                site: site.clone(),
                room: room.clone(),
                members: members.to_vec(),
            });
        }
    }

    /// `user` is typing in `room`, on every node (best effort, and at most
    /// once per the hub's typing interval).
    pub fn typing(&self, room: &RoomId, user: &UserId) {
        if !self.hub.typing(room, user) {
            return;
        }
        if let Some(link) = &self.link {
            link.offer(Msg::Typing {
                room: room.clone(),
                user: user.clone(),
            });
        }
    }

    /// `user` has read `room` up to `seq`: to their connections on every
    /// node (but `from`, the one that said so), and to the room's when
    /// `public` (receipts shown). A message lost between nodes shows at
    /// the next sync, from the database.
    pub fn read(
        &self,
        room: &RoomId,
        user: &UserId,
        moved: Moved,
        public: bool,
        from: Option<ConnId>,
    ) {
        self.hub.read(room, user, moved, public, from);
        if let Some(link) = &self.link {
            link.offer(Msg::Read {
                room: room.clone(),
                user: user.clone(),
                after: moved.after,
                seq: moved.seq,
                public,
            });
        }
    }

    /// A site banned a user: their connections close, here and on the
    /// other nodes.
    pub fn ban(&self, site: &SiteId, user: &UserId) {
        self.hub.ban(site, user);
        if let Some(link) = &self.link {
            link.offer(Msg::Ban {
                site: site.clone(),
                user: user.clone(),
            });
        }
    }

    /// A connection of the user synced, following `rooms`: they are
    /// online, for the people who share a room with them.
    pub fn arrive(&self, key: &Key, rooms: &[RoomId]) {
        if self.presence.arrive(key, rooms)
            && let Some(link) = &self.link
        {
            link.offer(Msg::Arrive {
                site: key.0.clone(),
                user: key.1.clone(),
                rooms: rooms.to_vec(),
            });
        }
    }

    /// A synced connection of the user closed. When it was their last, they
    /// stay online for the grace period, then go offline (unless they came
    /// back), and "last seen" is kept.
    pub fn depart(&self, key: Key) {
        let Some(departure) = self.presence.depart(&key) else {
            return;
        };
        let broker = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(broker.grace).await;
            if !broker.presence.is_leaving(&key, departure) {
                return;
            }
            // Kept before anyone is told: a room-mate who reloads on
            // seeing them go offline reads it back.
            let now = crate::store::now_ms();
            if let Err(err) = broker.store.set_last_seen(&key.0, &key.1, now).await {
                tracing::warn!(error = %err, "could not keep when a user was last seen");
            }
            let Some(gone) = broker.presence.expire(&key, departure, now) else {
                return;
            };
            if let Some(link) = &broker.link {
                link.offer(Msg::Depart {
                    site: key.0.clone(),
                    user: key.1.clone(),
                    last_seen: gone.last_seen,
                });
            }
        });
    }

    /// Who is online, for the presence of these users.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// `None` without a broker; otherwise whether the link is up.
    pub fn connected(&self) -> Option<bool> {
        self.link.as_ref().map(nats::Link::connected)
    }
}

/// A membership change in a committed event (from this node or another),
/// for presence: whose comings and goings a room's members are told.
fn note_membership(presence: &Presence, site: &SiteId, event: &Event) {
    let Some((user, joined)) = event.kind.membership() else {
        return;
    };
    presence.membership(&(site.clone(), user.clone()), &event.room, joined);
}

/// A new room's members, for presence (as [`note_membership`]).
fn note_members(presence: &Presence, site: &SiteId, room: &RoomId, members: &[UserId]) {
    for user in members {
        presence.membership(&(site.clone(), user.clone()), room, true);
    }
}
