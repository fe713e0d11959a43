//! Cross-node fan-out. Every committed event, room announcement and
//! typing notice goes to this node's [`Hub`] and, when a broker is
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

use crate::hub::Hub;
use crate::metrics::Metrics;
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
}

impl Broker {
    /// Fan-out within this process only.
    pub fn local(hub: Hub) -> Broker {
        Broker { hub, link: None }
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
        sweep_every: Duration,
        metrics: Arc<Metrics>,
    ) -> Result<(Broker, BrokerTask), BrokerError> {
        let (link, task) =
            nats::connect(url, prefix, hub.clone(), store, sweep_every, metrics).await?;
        Ok((
            Broker {
                hub,
                link: Some(link),
            },
            task,
        ))
    }

    /// A committed event: to this node's connections, then to the others.
    pub fn event(&self, site: &SiteId, event: &Event) {
        self.hub.publish_event(site, event);
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
        if let Some(link) = &self.link {
            link.offer(Msg::Room {
                site: site.clone(),
                room: room.clone(),
                members: members.to_vec(),
            });
        }
    }

    /// `user` is typing in `room`, on every node (best effort).
    pub fn typing(&self, room: &RoomId, user: &UserId) {
        self.hub.typing(room, user);
        if let Some(link) = &self.link {
            link.offer(Msg::Typing {
                room: room.clone(),
                user: user.clone(),
            });
        }
    }

    /// `None` without a broker; otherwise whether the link is up.
    pub fn connected(&self) -> Option<bool> {
        self.link.as_ref().map(nats::Link::connected)
    }
}
