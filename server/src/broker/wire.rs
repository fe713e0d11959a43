//! What nodes say to each other through the broker: JSON, one message per
//! broker message, each on the subject of its kind under the cluster's
//! prefix (`natter.event`, `natter.room`, …), and each naming the node
//! that sent it so that a node ignores its own.

use natter_shared::{Event, RoomId, Seq, SiteId, UserId};
use serde::{Deserialize, Serialize};

/// One message and its sender, as received.
#[derive(Debug, Deserialize)]
pub(super) struct Envelope {
    /// The sending node's random id.
    pub node: String,
    pub msg: Msg,
}

/// One message and its sender, as sent (borrowed: nothing is copied).
#[derive(Debug, Serialize)]
pub(super) struct Outgoing<'a> {
    pub node: &'a str,
    pub msg: &'a Msg,
}

/// What one node tells the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Msg {
    /// An event committed on the sending node.
    Event { site: SiteId, event: Event },
    /// A room created with these members.
    Room {
        site: SiteId,
        room: RoomId,
        members: Vec<UserId>,
    },
    /// A member is typing (ephemeral).
    Typing { room: RoomId, user: UserId },
    /// A member's read marker moved; `public` when the room's other
    /// members may see it.
    Read {
        room: RoomId,
        user: UserId,
        /// Where the marker was (0 from a node that did not say: the
        /// receipt then goes to the whole room).
        #[serde(default)]
        after: Seq,
        seq: Seq,
        public: bool,
    },
    /// A user came online on the sending node; these are their rooms.
    Arrive {
        site: SiteId,
        user: UserId,
        rooms: Vec<RoomId>,
    },
    /// A user's last connection on the sending node closed (and the grace
    /// period passed).
    Depart {
        site: SiteId,
        user: UserId,
        last_seen: i64,
    },
    /// The users the sending node holds, said every so often: a node
    /// that stops saying it is forgotten.
    Holding { users: Vec<(SiteId, UserId)> },
    /// The sender may have failed to publish some events: every node tells
    /// its connections to resync from their cursors.
    Resync,
    /// A site banned a user: their connections on every node close.
    Ban { site: SiteId, user: UserId },
}

impl Msg {
    /// The last token of the message's subject.
    pub fn kind(&self) -> &'static str {
        match self {
            Msg::Event { .. } => "event",
            Msg::Room { .. } => "room",
            Msg::Typing { .. } => "typing",
            Msg::Read { .. } => "read",
            Msg::Arrive { .. } => "arrive",
            Msg::Depart { .. } => "depart",
            Msg::Holding { .. } => "holding",
            Msg::Resync => "resync",
            Msg::Ban { .. } => "ban",
        }
    }
}

/// A subject prefix: dot-separated tokens of ASCII letters, digits, `-`
/// and `_` (no wildcards, no spaces), at most 128 bytes.
pub(super) fn valid_prefix(prefix: &str) -> bool {
    const MAX_PREFIX_BYTES: usize = 128;
    prefix.len() <= MAX_PREFIX_BYTES
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use natter_shared::EventKind;

    #[test]
    fn an_event_survives_the_trip() {
        let msg = Msg::Event {
            site: SiteId::parse("s_1").expect("a site id"),
            event: Event {
                room: RoomId::parse("r_1").expect("a room id"),
                seq: 3,
                ts: 1_700_000_000_000,
                sender: Some(UserId::parse("a").expect("a user id")),
                kind: EventKind::Message {
                    body: "hi".into(),
                    client_id: None,
                    files: Vec::new(),
                },
            },
        };
        let json = serde_json::to_vec(&Outgoing {
            node: "n_1",
            msg: &msg,
        })
        .expect("serialises");
        let back: Envelope = serde_json::from_slice(&json).expect("parses");
        assert_eq!((back.node.as_str(), back.msg), ("n_1", msg));
    }

    #[test]
    fn prefixes_are_plain_subject_tokens() {
        assert!(valid_prefix("natter"));
        assert!(valid_prefix("natter.prod-1.eu_west"));
        for bad in [
            "", "natter.", ".natter", "nat ter", "natter.*", "natter.>", "a..b",
        ] {
            assert!(!valid_prefix(bad), "{bad:?} is refused");
        }
    }
}
