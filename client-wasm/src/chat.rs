//! The chat as plain data: who we are, the rooms we are in, each room's
//! lines in seq order and our own sends that still wait for the server.
//!
//! [`Chat::apply`] takes every server frame and returns the frames to send
//! in answer (the `sync` after `hello`, the resends after `synced`), so the
//! protocol decisions live here, away from the socket and the DOM, and are
//! unit-tested natively. The app keeps one `Chat` in a signal; the views
//! read [`Line`]s and [`RoomEntry`]s out of it.

use natter_shared::protocol::{TextError, check_body};
use natter_shared::{
    ClientFrame, ClientId, Cursor, Event, EventKind, Limits, Member, RoomId, RoomInfo, RoomKind,
    Seq, ServerFrame, UserId,
};

/// Everything the widget knows about the user's chats.
#[derive(Debug, Clone, Default)]
pub struct Chat {
    /// The authenticated user, from `hello`.
    me: Option<Member>,
    /// The limits the server announced.
    limits: Limits,
    /// Rooms in the order the server listed them.
    rooms: Vec<Room>,
    /// True between `synced` and the next disconnect or `resync`: live
    /// events flow and sends go out at once.
    live: bool,
    /// The last error the server reported that is not about one send.
    notice: Option<String>,
}

/// One room and what we hold of it.
#[derive(Debug, Clone)]
struct Room {
    info: RoomInfo,
    /// Confirmed events, ascending seq, as display lines.
    lines: Vec<Line>,
    /// Our sends the room has not confirmed with an event yet.
    outbox: Vec<Outgoing>,
    /// Highest seq applied: events at or below it are duplicates.
    cursor: Seq,
}

/// A send waiting for its event.
#[derive(Debug, Clone)]
struct Outgoing {
    client_id: ClientId,
    body: String,
    ts: i64,
    state: Delivery,
}

/// Where one of our messages is on its way to the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Not acknowledged yet; resent after every reconnect.
    Pending,
    /// Committed by the server; its event has not arrived yet.
    Acked,
    /// Refused by the server; not resent.
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
}

/// What the room list shows for one room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEntry {
    pub id: RoomId,
    pub name: String,
    pub kind: RoomKind,
}

/// Why [`Chat::compose`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposeError {
    /// The room is not (or no longer) in the list.
    UnknownRoom,
    /// Empty, too long or containing NUL.
    Body(TextError),
}

impl std::fmt::Display for ComposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComposeError::UnknownRoom => f.write_str("This conversation is no longer available."),
            ComposeError::Body(e) => e.fmt(f),
        }
    }
}

impl Chat {
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
            })
            .collect()
    }

    /// The room's lines: its history, then our sends still on their way.
    pub fn lines(&self, room: &RoomId) -> Vec<Line> {
        let Some(r) = self.room(room) else {
            return Vec::new();
        };
        let me = self.me.as_ref();
        let outgoing = r.outbox.iter().map(|o| Line {
            // The state is part of the key so the view redraws on change.
            key: format!("o{}{:?}", o.client_id, o.state),
            author: me.map(display),
            body: o.body.clone(),
            ts: o.ts,
            mine: true,
            delivery: o.state.clone(),
        });
        r.lines.iter().cloned().chain(outgoing).collect()
    }

    /// The frame that catches up every known room from its cursor.
    pub fn sync_frame(&self) -> ClientFrame {
        let cursors = self
            .rooms
            .iter()
            .map(|r| Cursor {
                room: r.info.id.clone(),
                seq: r.cursor,
            })
            .collect();
        ClientFrame::Sync { cursors }
    }

    /// The connection dropped: live events stop until the next `synced`.
    pub fn on_disconnect(&mut self) {
        self.live = false;
    }

    /// Queues a message of ours and returns its `send` frame. The line
    /// shows as pending at once; the caller sends the frame if the chat is
    /// live, otherwise it goes out after the next `synced`.
    pub fn compose(
        &mut self,
        room: &RoomId,
        client_id: ClientId,
        body: String,
        now: i64,
    ) -> Result<ClientFrame, ComposeError> {
        check_body(&body, self.limits.max_body_bytes).map_err(ComposeError::Body)?;
        let r = self.room_mut(room).ok_or(ComposeError::UnknownRoom)?;
        r.outbox.push(Outgoing {
            client_id,
            body: body.clone(),
            ts: now,
            state: Delivery::Pending,
        });
        Ok(ClientFrame::Send {
            client_id,
            room: room.clone(),
            body,
        })
    }

    /// Applies one server frame; returns the frames to send in answer.
    pub fn apply(&mut self, frame: ServerFrame) -> Vec<ClientFrame> {
        match frame {
            ServerFrame::Hello {
                user, name, limits, ..
            } => {
                self.me = Some(Member { id: user, name });
                self.limits = limits;
                self.live = false;
                self.notice = None;
                return vec![self.sync_frame()];
            }
            ServerFrame::Rooms { rooms } => {
                // While syncing the list is complete: rooms missing from it
                // are rooms we were removed from. Later it announces one
                // room we joined.
                if !self.live {
                    self.rooms
                        .retain(|r| rooms.iter().any(|info| info.id == r.info.id));
                }
                for info in rooms {
                    self.upsert_room(info);
                }
            }
            ServerFrame::Page { events, .. } => {
                for event in events {
                    self.apply_event(event);
                }
            }
            ServerFrame::Synced {} => {
                self.live = true;
                return self.resends();
            }
            ServerFrame::Event { event } => self.apply_event(event),
            ServerFrame::Ack {
                client_id,
                room,
                seq,
                ..
            } => {
                if let Some(r) = self.room_mut(&room) {
                    if seq <= r.cursor {
                        // Its event is already in the history.
                        r.outbox.retain(|o| o.client_id != client_id);
                    } else if let Some(o) = r.outbox.iter_mut().find(|o| o.client_id == client_id) {
                        o.state = Delivery::Acked;
                    }
                }
            }
            ServerFrame::Resync { .. } => {
                self.live = false;
                return vec![self.sync_frame()];
            }
            ServerFrame::Error {
                code,
                message,
                client_id: Some(client_id),
                ..
            } => {
                let failed = self
                    .rooms
                    .iter_mut()
                    .flat_map(|r| r.outbox.iter_mut())
                    .find(|o| o.client_id == client_id);
                if let Some(o) = failed {
                    o.state = Delivery::Failed(format!("{}: {message}", code.as_str()));
                }
            }
            ServerFrame::Error { code, message, .. } => {
                self.notice = Some(format!("{}: {message}", code.as_str()));
            }
            // Older history is not requested yet; typing is not shown yet.
            ServerFrame::History { .. } | ServerFrame::Typing { .. } | ServerFrame::Pong { .. } => {
            }
        }
        Vec::new()
    }

    /// The `send` frames of every message not yet acknowledged.
    fn resends(&self) -> Vec<ClientFrame> {
        self.rooms
            .iter()
            .flat_map(|r| {
                r.outbox
                    .iter()
                    .filter(|o| o.state == Delivery::Pending)
                    .map(|o| ClientFrame::Send {
                        client_id: o.client_id,
                        room: r.info.id.clone(),
                        body: o.body.clone(),
                    })
            })
            .collect()
    }

    fn upsert_room(&mut self, info: RoomInfo) {
        match self.rooms.iter_mut().find(|r| r.info.id == info.id) {
            Some(r) => r.info = info,
            None => self.rooms.push(Room {
                info,
                lines: Vec::new(),
                outbox: Vec::new(),
                cursor: 0,
            }),
        }
    }

    /// Adds one event to its room, once: events at or below the room's
    /// cursor were applied already (a page and a live event may overlap).
    fn apply_event(&mut self, event: Event) {
        let me = self.me.clone();
        let Some(r) = self.room_mut(&event.room) else {
            // Not a room of ours (any more): nothing to show it in.
            return;
        };
        if event.seq <= r.cursor {
            return;
        }
        r.cursor = event.seq;
        let mine = me
            .as_ref()
            .is_some_and(|m| event.sender.as_ref() == Some(&m.id));
        let author = event.sender.as_ref().map(|id| member_name(&r.info, id));
        let body = match &event.kind {
            EventKind::Message { body, client_id } => {
                if let (true, Some(cid)) = (mine, client_id) {
                    r.outbox.retain(|o| o.client_id != *cid);
                }
                body.clone()
            }
            EventKind::MemberJoined { user } => {
                if !r.info.members.iter().any(|m| m.id == *user) {
                    r.info.members.push(Member {
                        id: user.clone(),
                        name: None,
                    });
                }
                format!("{} joined", member_name(&r.info, user))
            }
            EventKind::MemberLeft { user } => {
                let line = format!("{} left", member_name(&r.info, user));
                r.info.members.retain(|m| m.id != *user);
                line
            }
        };
        let system = !matches!(event.kind, EventKind::Message { .. });
        r.lines.push(Line {
            key: format!("s{}", event.seq),
            author: if system { None } else { author },
            body,
            ts: event.ts,
            mine,
            delivery: Delivery::Stored,
        });
        // We were removed: the room leaves the list.
        if let (EventKind::MemberLeft { user }, Some(me)) = (&event.kind, &me)
            && *user == me.id
        {
            self.rooms.retain(|r| r.info.id != event.room);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    fn room_id(id: &str) -> RoomId {
        RoomId::parse(id).unwrap()
    }

    fn cid(n: u8) -> ClientId {
        ClientId::parse(&format!("0191e6b2-7c3a-7d4e-8f00-1234567890{n:02x}")).unwrap()
    }

    fn hello(me: &str) -> ServerFrame {
        ServerFrame::Hello {
            protocol: "natter.v1".into(),
            site: natter_shared::SiteId::parse("demo").unwrap(),
            user: user(me),
            name: None,
            limits: Limits::default(),
        }
    }

    fn dialog() -> RoomInfo {
        RoomInfo {
            id: room_id("r_ab"),
            kind: RoomKind::Dialog,
            title: None,
            members: vec![
                Member {
                    id: user("alice"),
                    name: Some("Alice".into()),
                },
                Member {
                    id: user("bob"),
                    name: Some("Bob".into()),
                },
            ],
            last_seq: 0,
            created_at: 0,
        }
    }

    fn message(seq: Seq, from: &str, body: &str, client_id: Option<ClientId>) -> Event {
        Event {
            room: room_id("r_ab"),
            seq,
            ts: 1_000 * seq as i64,
            sender: Some(user(from)),
            kind: EventKind::Message {
                body: body.into(),
                client_id,
            },
        }
    }

    /// A chat signed in as alice, synced, with the alice–bob dialog.
    fn synced_alice() -> Chat {
        let mut chat = Chat::default();
        chat.apply(hello("alice"));
        chat.apply(ServerFrame::Rooms {
            rooms: vec![dialog()],
        });
        chat.apply(ServerFrame::Synced {});
        chat
    }

    #[test]
    fn hello_asks_for_sync_with_known_cursors() {
        let mut chat = Chat::default();
        let out = chat.apply(hello("alice"));
        assert_eq!(out, vec![ClientFrame::Sync { cursors: vec![] }]);

        let mut chat = synced_alice();
        chat.apply(ServerFrame::Event {
            event: message(7, "bob", "hi", None),
        });
        chat.on_disconnect();
        let out = chat.apply(hello("alice"));
        assert_eq!(
            out,
            vec![ClientFrame::Sync {
                cursors: vec![Cursor {
                    room: room_id("r_ab"),
                    seq: 7
                }]
            }]
        );
    }

    #[test]
    fn a_dialog_is_named_after_the_other_member() {
        let chat = synced_alice();
        assert_eq!(chat.room_entries()[0].name, "Bob");
    }

    #[test]
    fn events_are_applied_once_by_seq() {
        let mut chat = synced_alice();
        let page = ServerFrame::Page {
            room: room_id("r_ab"),
            events: vec![
                message(1, "bob", "one", None),
                message(2, "bob", "two", None),
            ],
            more: false,
        };
        chat.apply(page);
        chat.apply(ServerFrame::Event {
            event: message(2, "bob", "two", None),
        });
        chat.apply(ServerFrame::Event {
            event: message(3, "bob", "three", None),
        });
        let bodies: Vec<_> = chat
            .lines(&room_id("r_ab"))
            .into_iter()
            .map(|l| l.body)
            .collect();
        assert_eq!(bodies, ["one", "two", "three"]);
    }

    #[test]
    fn own_message_is_pending_until_its_event_arrives() {
        let mut chat = synced_alice();
        let room = room_id("r_ab");
        chat.compose(&room, cid(1), "hello".into(), 5).unwrap();
        assert_eq!(chat.lines(&room)[0].delivery, Delivery::Pending);
        assert_eq!(chat.lines(&room)[0].author.as_deref(), Some("alice"));

        chat.apply(ServerFrame::Ack {
            client_id: cid(1),
            room: room.clone(),
            seq: 1,
            ts: 9,
        });
        assert_eq!(chat.lines(&room)[0].delivery, Delivery::Acked);

        chat.apply(ServerFrame::Event {
            event: message(1, "alice", "hello", Some(cid(1))),
        });
        let lines = chat.lines(&room);
        assert_eq!(lines.len(), 1, "the pending line is replaced, not doubled");
        assert_eq!(lines[0].delivery, Delivery::Stored);
        assert!(lines[0].mine);
        assert_eq!(lines[0].author.as_deref(), Some("Alice"));
    }

    #[test]
    fn unacked_sends_are_resent_after_reconnect_and_refusals_are_not() {
        let mut chat = synced_alice();
        let room = room_id("r_ab");
        chat.compose(&room, cid(1), "kept".into(), 5).unwrap();
        chat.compose(&room, cid(2), "refused".into(), 6).unwrap();
        chat.apply(ServerFrame::Error {
            code: natter_shared::ErrorCode::TooManyRequests,
            message: "slow down".into(),
            client_id: Some(cid(2)),
            room: Some(room.clone()),
        });
        chat.on_disconnect();
        chat.apply(hello("alice"));
        let out = chat.apply(ServerFrame::Synced {});
        assert_eq!(
            out,
            vec![ClientFrame::Send {
                client_id: cid(1),
                room: room.clone(),
                body: "kept".into()
            }]
        );
        assert!(matches!(chat.lines(&room)[1].delivery, Delivery::Failed(_)));
    }

    #[test]
    fn blank_and_overlong_bodies_are_refused() {
        let mut chat = synced_alice();
        let room = room_id("r_ab");
        assert!(matches!(
            chat.compose(&room, cid(1), "  ".into(), 0),
            Err(ComposeError::Body(_))
        ));
        let long = "x".repeat(Limits::default().max_body_bytes + 1);
        assert!(chat.compose(&room, cid(1), long, 0).is_err());
        assert_eq!(
            chat.compose(&room_id("r_zz"), cid(1), "hi".into(), 0),
            Err(ComposeError::UnknownRoom)
        );
    }

    #[test]
    fn membership_events_update_members_and_removal_drops_the_room() {
        let mut chat = synced_alice();
        let room = room_id("r_ab");
        let membership = |seq, kind| ServerFrame::Event {
            event: Event {
                room: room_id("r_ab"),
                seq,
                ts: 1,
                sender: None,
                kind,
            },
        };
        chat.apply(membership(
            1,
            EventKind::MemberJoined {
                user: user("carol"),
            },
        ));
        let line = chat.lines(&room).pop().unwrap();
        assert_eq!((line.author, line.body.as_str()), (None, "carol joined"));

        chat.apply(membership(
            2,
            EventKind::MemberLeft {
                user: user("alice"),
            },
        ));
        assert!(chat.room_entries().is_empty());
    }
}
