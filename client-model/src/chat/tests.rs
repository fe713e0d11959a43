//! The chat's behaviour, frame by frame, without a socket or a browser.

use super::{Change, Chat, ComposeError, DELETED, Delivery, RoomRecord};
use natter_shared::sync::{EntryState, OutboxEntry, OutgoingFile};
use natter_shared::{
    Attachment, ClientFrame, ClientId, Cursor, ErrorCode, Event, EventKind, Limits, Member, RoomId,
    RoomInfo, RoomKind, Seq, ServerFrame, SiteId, UserId,
};

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn r_ab() -> RoomId {
    RoomId::parse("r_ab").unwrap()
}

fn cid(n: u8) -> ClientId {
    ClientId::parse(&format!("0191e6b2-7c3a-7d4e-8f00-1234567890{n:02x}")).unwrap()
}

fn hello(me: &str) -> ServerFrame {
    ServerFrame::Hello {
        protocol: "natter.v1".into(),
        site: SiteId::parse("demo").unwrap(),
        user: user(me),
        name: None,
        limits: Limits::default(),
    }
}

fn dialog() -> RoomInfo {
    let member = |id: &str, name: &str| Member::new(user(id), Some(name.into()));
    RoomInfo {
        id: r_ab(),
        kind: RoomKind::Dialog,
        title: None,
        members: vec![member("alice", "Alice"), member("bob", "Bob")],
        member_count: 0,
        last_seq: 0,
        created_at: 0,
        read: 0,
        unread: 0,
    }
}

fn message(seq: Seq, from: &str, body: &str, client_id: Option<ClientId>) -> Event {
    Event {
        room: r_ab(),
        seq,
        ts: 1_000 * seq as i64,
        sender: Some(user(from)),
        kind: EventKind::Message {
            body: body.into(),
            client_id,
            files: Vec::new(),
        },
    }
}

fn live(event: Event) -> ServerFrame {
    ServerFrame::Event { event }
}

fn page(events: Vec<Event>) -> ServerFrame {
    ServerFrame::Page {
        room: r_ab(),
        events,
        more: false,
        reset: false,
    }
}

fn send(n: u8, body: &str) -> ClientFrame {
    ClientFrame::Send {
        client_id: cid(n),
        room: r_ab(),
        body: body.into(),
        files: Vec::new(),
    }
}

fn bodies(chat: &Chat) -> Vec<String> {
    chat.lines(&r_ab()).into_iter().map(|l| l.body).collect()
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

/// The server's `not_member` about the dialog: for a send (`client_id`),
/// or for the room itself.
fn not_member(client_id: Option<ClientId>) -> ServerFrame {
    ServerFrame::Error {
        code: ErrorCode::NotMember,
        message: "you are not a member of this room".into(),
        client_id,
        room: Some(r_ab()),
        retry_after_ms: None,
    }
}

/// Alice's chat rebuilt from the store: the dialog held up to seq 7, and
/// one message of hers (`cid(1)`) in the outbox.
fn rebuilt(body: &str, state: EntryState) -> Chat {
    let mut record = RoomRecord::new(dialog());
    record.cursor = 7;
    let entry = OutboxEntry {
        client_id: cid(1),
        room: r_ab(),
        body: body.into(),
        created_at: 1,
        files: Vec::new(),
    };
    Chat::hydrate(Some(user("alice")), vec![record], vec![(entry, state)])
}

#[test]
fn hello_asks_for_sync_from_the_known_cursors() {
    let mut chat = Chat::default();
    assert_eq!(
        chat.apply(hello("alice")),
        [ClientFrame::Sync { cursors: vec![] }]
    );

    let mut chat = synced_alice();
    chat.apply(page(vec![message(6, "bob", "hi", None)]));
    chat.apply(live(message(7, "bob", "there", None)));
    chat.on_disconnect();
    // With the time of the event at the cursor, for the server to check.
    let cursors = vec![Cursor {
        ts: Some(7_000),
        ..Cursor::new(r_ab(), 7)
    }];
    assert_eq!(chat.apply(hello("alice")), [ClientFrame::Sync { cursors }]);
}

#[test]
fn another_user_starts_from_scratch() {
    let mut chat = synced_alice();
    chat.apply(page(vec![message(1, "bob", "for alice", None)]));
    chat.compose(&r_ab(), cid(1), "from alice".into(), Vec::new(), 5)
        .unwrap();
    chat.on_disconnect();
    assert_eq!(
        chat.apply(hello("bob")),
        [ClientFrame::Sync { cursors: vec![] }]
    );
    assert!(chat.room_entries().is_empty());
    chat.apply(ServerFrame::Rooms {
        rooms: vec![dialog()],
    });
    assert!(
        chat.apply(ServerFrame::Synced {}).is_empty(),
        "alice's outbox is gone"
    );
    assert!(bodies(&chat).is_empty());
}

#[test]
fn a_renewed_token_goes_on_with_the_session_silently() {
    let mut chat = synced_alice();
    let expired = ServerFrame::error(ErrorCode::TokenExpired, "renew");
    assert!(chat.apply(expired).is_empty());
    assert_eq!(
        chat.notice(),
        None,
        "nothing to show: a token is on its way"
    );
    // `hello` again for the same user: no second catch-up.
    assert!(chat.apply(hello("alice")).is_empty());
    assert_eq!(bodies(&chat), bodies(&synced_alice()));
    // After a reconnect, `hello` asks for catch-up as always.
    chat.on_disconnect();
    assert!(matches!(
        chat.apply(hello("alice"))[..],
        [ClientFrame::Sync { .. }]
    ));
}

#[test]
fn a_room_list_in_several_frames_forgets_only_what_none_listed() {
    let mut chat = synced_alice();
    let group = |id: &str| {
        let mut info = dialog();
        info.id = RoomId::parse(id).unwrap();
        info.kind = RoomKind::Group;
        info
    };
    chat.apply(ServerFrame::Rooms {
        rooms: vec![group("g1"), group("g2")],
    });
    chat.on_disconnect();
    chat.apply(hello("alice"));
    // The dialog is gone; the catch-up lists g1, then g2 in a second frame.
    chat.apply(ServerFrame::Rooms {
        rooms: vec![group("g1")],
    });
    assert_eq!(
        chat.room_entries().len(),
        3,
        "nothing forgotten before synced"
    );
    chat.apply(ServerFrame::Rooms {
        rooms: vec![group("g2")],
    });
    chat.apply(ServerFrame::Synced {});
    let ids: Vec<String> = chat
        .room_entries()
        .iter()
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(
        ids.contains(&"g1".to_string()) && ids.contains(&"g2".to_string()),
        "{ids:?}"
    );
}

#[test]
fn a_dialog_is_named_after_the_other_member() {
    let chat = synced_alice();
    assert_eq!(chat.room_entries()[0].name, "Bob");
}

#[test]
fn events_are_shown_once_and_a_gap_asks_for_sync() {
    let mut chat = synced_alice();
    chat.apply(page(vec![
        message(1, "bob", "one", None),
        message(2, "bob", "two", None),
    ]));
    assert!(chat.apply(live(message(2, "bob", "two", None))).is_empty());
    assert!(
        chat.apply(live(message(3, "bob", "three", None)))
            .is_empty()
    );
    assert_eq!(bodies(&chat), ["one", "two", "three"]);

    let out = chat.apply(live(message(5, "bob", "five", None)));
    assert!(matches!(out.as_slice(), [ClientFrame::Sync { cursors }] if cursors[0].seq == 3));
    assert!(!chat.is_live());
    chat.apply(page(vec![
        message(4, "bob", "four", None),
        message(5, "bob", "five", None),
    ]));
    assert_eq!(bodies(&chat), ["one", "two", "three", "four", "five"]);
}

#[test]
fn own_message_is_pending_until_acked() {
    let mut chat = synced_alice();
    let out = chat
        .compose(&r_ab(), cid(1), "hello".into(), Vec::new(), 5)
        .unwrap();
    assert_eq!(out, [send(1, "hello")]);
    let line = &chat.lines(&r_ab())[0];
    assert_eq!(line.delivery, Delivery::Pending);
    assert_eq!(line.author.as_deref(), Some("Alice"));

    chat.apply(ServerFrame::Ack {
        client_id: cid(1),
        room: r_ab(),
        seq: 1,
        ts: 9,
    });
    chat.apply(live(message(1, "alice", "hello", Some(cid(1)))));
    let lines = chat.lines(&r_ab());
    assert_eq!(lines.len(), 1, "the ack and the event are one line");
    assert_eq!(
        (lines[0].delivery.clone(), lines[0].mine),
        (Delivery::Stored, true)
    );
}

#[test]
fn own_event_before_its_ack_settles_the_message() {
    let mut chat = synced_alice();
    chat.compose(&r_ab(), cid(1), "hello".into(), Vec::new(), 5)
        .unwrap();
    chat.take_changes();
    chat.apply(live(message(1, "alice", "hello", Some(cid(1)))));
    assert_eq!(bodies(&chat), ["hello"]);
    assert!(
        matches!(&chat.take_changes()[..], [Change::Sent(e), Change::Events(_, events)] if e.client_id == cid(1) && events.len() == 1),
        "the entry leaves the stored outbox too"
    );
    chat.apply(ServerFrame::Ack {
        client_id: cid(1),
        room: r_ab(),
        seq: 1,
        ts: 9,
    });
    assert_eq!(bodies(&chat), ["hello"]);
    assert!(chat.take_changes().is_empty(), "nothing more to store");
}

#[test]
fn a_retried_message_the_room_already_has_is_not_written_over() {
    // After a reload: the outbox still holds a message the room has had
    // since (its ack was lost), and the site deleted it meanwhile.
    let mut chat = rebuilt("oops", EntryState::Queued);
    chat.apply(hello("alice"));
    assert_eq!(chat.apply(ServerFrame::Synced {}), [send(1, "oops")]);
    chat.take_changes();
    // The server answers the retry with the message's original seq.
    chat.apply(ServerFrame::Ack {
        client_id: cid(1),
        room: r_ab(),
        seq: 5,
        ts: 5_000,
    });
    assert!(
        matches!(&chat.take_changes()[..], [Change::Sent(e)] if e.client_id == cid(1)),
        "only the entry goes; the held event stays as it is"
    );
    assert_eq!(chat.unsent(), 0);
}

#[test]
fn offline_messages_go_out_after_synced_and_refusals_are_not_resent() {
    let mut chat = synced_alice();
    chat.compose(&r_ab(), cid(1), "refused".into(), Vec::new(), 5)
        .unwrap();
    chat.apply(not_member(Some(cid(1))));
    chat.on_disconnect();
    let out = chat
        .compose(&r_ab(), cid(2), "later".into(), Vec::new(), 6)
        .unwrap();
    assert!(out.is_empty(), "nothing is sent while offline");

    chat.apply(hello("alice"));
    assert_eq!(chat.apply(ServerFrame::Synced {}), [send(2, "later")]);
    let lines = chat.lines(&r_ab());
    assert!(matches!(lines[0].delivery, Delivery::Failed(_)));
    assert_eq!(lines[1].delivery, Delivery::Pending);
}

#[test]
fn a_message_refused_for_a_passing_reason_goes_out_again_on_resend() {
    let mut chat = synced_alice();
    chat.compose(&r_ab(), cid(1), "busy".into(), Vec::new(), 5)
        .unwrap();
    let out = chat.apply(ServerFrame::Error {
        code: ErrorCode::Internal,
        message: "the database is away".into(),
        client_id: Some(cid(1)),
        room: Some(r_ab()),
        retry_after_ms: None,
    });
    assert!(out.is_empty(), "not at once: {out:?}");
    assert_eq!(chat.lines(&r_ab())[0].delivery, Delivery::Pending);
    assert_eq!(chat.resend(), [send(1, "busy")]);
    assert!(chat.resend().is_empty(), "in flight once");
}

#[test]
fn only_a_failed_message_can_be_discarded() {
    let mut chat = synced_alice();
    chat.compose(&r_ab(), cid(1), "refused".into(), Vec::new(), 5)
        .unwrap();
    chat.compose(&r_ab(), cid(2), "on its way".into(), Vec::new(), 6)
        .unwrap();
    chat.apply(not_member(Some(cid(1))));
    chat.take_changes();
    chat.discard(&cid(2));
    assert!(chat.take_changes().is_empty(), "a pending message stays");
    chat.discard(&cid(1));
    let changes = chat.take_changes();
    assert!(
        matches!(&changes[..], [Change::Discarded(e)] if e.client_id == cid(1)),
        "{changes:?}"
    );
    let lines = chat.lines(&r_ab());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].body, "on its way");
}

#[test]
fn messages_in_flight_are_resent_after_a_reconnect() {
    let mut chat = synced_alice();
    chat.compose(&r_ab(), cid(1), "hello".into(), Vec::new(), 5)
        .unwrap();
    chat.on_disconnect();
    chat.apply(hello("alice"));
    assert_eq!(chat.apply(ServerFrame::Synced {}), [send(1, "hello")]);
}

#[test]
fn blank_and_overlong_bodies_are_refused() {
    let mut chat = synced_alice();
    assert!(matches!(
        chat.compose(&r_ab(), cid(1), "  ".into(), Vec::new(), 0),
        Err(ComposeError::Body(_))
    ));
    let long = "x".repeat(Limits::default().max_body_bytes + 1);
    assert!(chat.compose(&r_ab(), cid(1), long, Vec::new(), 0).is_err());
    let elsewhere = RoomId::parse("r_zz").unwrap();
    assert_eq!(
        chat.compose(&elsewhere, cid(1), "hi".into(), Vec::new(), 0),
        Err(ComposeError::UnknownRoom)
    );
}

#[test]
fn membership_events_update_members_and_removal_drops_the_room() {
    let mut chat = synced_alice();
    let membership = |seq, kind| {
        live(Event {
            room: r_ab(),
            seq,
            ts: 1,
            sender: None,
            kind,
        })
    };
    chat.apply(membership(
        1,
        EventKind::MemberJoined {
            user: user("carol"),
        },
    ));
    let line = chat.lines(&r_ab()).pop().unwrap();
    assert_eq!((line.author, line.body.as_str()), (None, "carol joined"));

    chat.apply(membership(
        2,
        EventKind::MemberLeft {
            user: user("alice"),
        },
    ));
    assert!(chat.room_entries().is_empty());
    chat.on_disconnect();
    assert_eq!(
        chat.apply(hello("alice")),
        [ClientFrame::Sync { cursors: vec![] }]
    );
}

#[test]
fn a_rename_shows_on_lines_already_held() {
    let mut chat = synced_alice();
    chat.apply(live(message(1, "bob", "hi", None)));
    let before = chat.lines(&r_ab()).remove(0);
    assert_eq!(before.author.as_deref(), Some("Bob"));

    let mut renamed = dialog();
    renamed.members[1].name = Some("Robert".into());
    chat.apply(ServerFrame::Rooms {
        rooms: vec![renamed],
    });
    let after = chat.lines(&r_ab()).remove(0);
    assert_eq!(after.author.as_deref(), Some("Robert"));
    assert_ne!(before.key, after.key, "the view redraws the line");
    assert_eq!(chat.room_entries()[0].name, "Robert");
}

#[test]
fn a_member_who_left_keeps_their_name_on_earlier_lines() {
    let mut chat = synced_alice();
    chat.apply(live(message(1, "bob", "bye", None)));
    chat.apply(live(Event {
        room: r_ab(),
        seq: 2,
        ts: 2,
        sender: None,
        kind: EventKind::MemberLeft { user: user("bob") },
    }));
    let lines = chat.lines(&r_ab());
    assert_eq!(lines[0].author.as_deref(), Some("Bob"));
    assert_eq!(lines[1].body, "Bob left");
}

#[test]
fn unread_counts_others_messages_until_the_person_sees_them() {
    let mut chat = synced_alice();
    chat.take_changes();
    chat.apply(live(message(1, "bob", "one", None)));
    chat.apply(live(message(2, "alice", "mine", None)));
    assert_eq!(chat.unread_total(), 1);
    let entry = &chat.room_entries()[0];
    assert_eq!(entry.preview.as_deref(), Some("Alice: mine"));
    let stored = chat.take_changes();
    assert!(
        matches!(stored.last(), Some(Change::Events(room, events)) if room.unread == 1 && room.cursor == 2 && events.len() == 1)
    );

    // Open is not read: a closed panel or a hidden page reads nothing.
    chat.set_open(Some(r_ab()));
    assert_eq!(chat.unread_total(), 1);
    let read = chat.set_reading(true);
    assert_eq!(
        read,
        [ClientFrame::Read {
            room: r_ab(),
            seq: 2
        }]
    );
    assert_eq!(chat.unread_total(), 0);
    assert!(
        matches!(chat.take_changes().as_slice(), [Change::Rooms(r)] if r[0].unread == 0 && r[0].read == 2)
    );
    // While reading, what arrives is read at once.
    let answer = chat.apply(live(message(3, "bob", "seen", None)));
    assert_eq!(
        answer,
        [ClientFrame::Read {
            room: r_ab(),
            seq: 3
        }]
    );
    assert_eq!(chat.unread_total(), 0);
    chat.set_reading(false);
    assert!(
        chat.apply(live(message(4, "bob", "later", None)))
            .is_empty()
    );
    assert_eq!(chat.unread_total(), 1);
    // Scrolled up to 3 only: 4 stays unread; back is ignored.
    assert_eq!(chat.mark_read(&r_ab(), 3), None);
    assert_eq!(chat.unread_total(), 1);
}

fn counted_dialog(last_seq: Seq, read: Seq, unread: u32) -> RoomInfo {
    RoomInfo {
        member_count: 0,
        last_seq,
        read,
        unread,
        ..dialog()
    }
}

#[test]
fn a_fresh_device_takes_the_servers_count_and_pages_do_not_add_to_it() {
    let mut chat = Chat::default();
    chat.apply(hello("alice"));
    chat.apply(ServerFrame::Rooms {
        rooms: vec![counted_dialog(4, 1, 2)],
    });
    chat.apply(page(vec![
        message(1, "bob", "old", None),
        message(2, "bob", "a", None),
        message(3, "alice", "mine", None),
        message(4, "bob", "b", None),
    ]));
    chat.apply(ServerFrame::Synced {});
    assert_eq!(chat.unread_total(), 2);
    chat.apply(live(message(5, "bob", "c", None)));
    assert_eq!(chat.unread_total(), 3);
    // Read on another device up to 4: one left.
    chat.apply(ServerFrame::Read {
        room: r_ab(),
        user: user("alice"),
        seq: 4,
    });
    assert_eq!(chat.unread_total(), 1);
}

/// Alice reads a dialog of `last_seq` messages of Bob's up to `read`
/// while offline; the page reloads: her chat as rebuilt from the store,
/// holding none of the messages, with the `read` and `sync` its `hello`
/// answers.
fn read_offline_then_reloaded(last_seq: Seq, read: Seq) -> (Chat, Vec<ClientFrame>) {
    let mut chat = Chat::default();
    chat.apply(hello("alice"));
    chat.apply(ServerFrame::Rooms {
        rooms: vec![counted_dialog(last_seq, 0, last_seq as u32)],
    });
    chat.apply(page(
        (1..=last_seq)
            .map(|seq| message(seq, "bob", "m", None))
            .collect(),
    ));
    chat.apply(ServerFrame::Synced {});
    chat.on_disconnect();
    assert_eq!(
        chat.mark_read(&r_ab(), read),
        None,
        "offline: nothing to send yet"
    );
    assert_eq!(chat.unread_total(), (last_seq - read) as u32);
    // The room as last stored.
    let stored: Vec<RoomRecord> = chat
        .take_changes()
        .into_iter()
        .filter_map(|c| match c {
            Change::Rooms(r) => r.into_iter().next(),
            _ => None,
        })
        .next_back()
        .into_iter()
        .collect();
    let mut chat = Chat::hydrate(Some(user("alice")), stored, Vec::new());
    let out = chat.apply(hello("alice"));
    (chat, out)
}

#[test]
fn a_marker_moved_offline_goes_out_before_sync_and_the_count_is_the_servers() {
    let (mut chat, out) = read_offline_then_reloaded(3, 2);
    assert!(
        matches!(out.as_slice(), [ClientFrame::Read { room, seq: 2 }, ClientFrame::Sync { .. }] if *room == r_ab()),
        "{out:?}"
    );
    // The server took the marker before counting: one unread, which
    // this device, holding none of the messages, could not have worked
    // out from the count before it.
    chat.apply(ServerFrame::Rooms {
        rooms: vec![counted_dialog(3, 2, 1)],
    });
    chat.apply(page(Vec::new()));
    assert_eq!(chat.unread_total(), 1);
    assert_eq!(
        chat.apply(ServerFrame::Synced {}),
        [],
        "nothing left to send"
    );
    assert_eq!(chat.unread_total(), 1);
}

#[test]
fn a_marker_moved_offline_in_a_room_left_meanwhile_only_takes_the_room_away() {
    let (mut chat, _) = read_offline_then_reloaded(3, 2);
    // Taken out of the room while offline: the `read` sent before `sync`
    // is refused.
    chat.apply(not_member(None));
    assert!(chat.room_entries().is_empty());
    assert_eq!(chat.notice(), None, "no error to show: the room is gone");
}

#[test]
fn a_marker_the_server_did_not_take_goes_again_after_synced() {
    let (mut chat, _) = read_offline_then_reloaded(2, 2);
    // The server has not heard: its count is still 2, its marker 0.
    chat.apply(ServerFrame::Rooms {
        rooms: vec![counted_dialog(2, 0, 2)],
    });
    chat.apply(page(Vec::new()));
    assert_eq!(chat.unread_total(), 0, "what this device read stays read");
    let out = chat.apply(ServerFrame::Synced {});
    assert_eq!(
        out,
        [ClientFrame::Read {
            room: r_ab(),
            seq: 2
        }]
    );
}

#[test]
fn others_markers_show_who_read_our_messages() {
    let mut chat = synced_alice();
    chat.apply(live(message(1, "alice", "hi", None)));
    chat.apply(live(message(2, "alice", "there", None)));
    let seen = |chat: &Chat| -> Vec<Vec<String>> {
        chat.lines(&r_ab()).into_iter().map(|l| l.seen_by).collect()
    };
    assert_eq!(seen(&chat), [Vec::<String>::new(), Vec::new()]);
    chat.apply(ServerFrame::Read {
        room: r_ab(),
        user: user("bob"),
        seq: 1,
    });
    assert_eq!(seen(&chat), [vec!["Bob".to_string()], Vec::new()]);
    // Never back.
    chat.apply(ServerFrame::Read {
        room: r_ab(),
        user: user("bob"),
        seq: 0,
    });
    assert_eq!(seen(&chat)[0], ["Bob"]);
}

#[test]
fn a_receipt_never_goes_back_when_the_room_is_listed_again() {
    let mut chat = synced_alice();
    chat.apply(live(message(1, "alice", "hi", None)));
    chat.apply(live(message(2, "alice", "there", None)));
    chat.apply(ServerFrame::Read {
        room: r_ab(),
        user: user("bob"),
        seq: 2,
    });
    let seen = |chat: &Chat| -> Vec<Vec<String>> {
        chat.lines(&r_ab()).into_iter().map(|l| l.seen_by).collect()
    };
    let both = vec![vec!["Bob".to_string()], vec!["Bob".to_string()]];
    assert_eq!(seen(&chat), both);
    // A resync lists the room with bob's marker as the server last wrote
    // it, before his latest reading reached its database.
    let listed = |bob_read: Option<Seq>, last_seq: Seq| {
        let mut info = counted_dialog(last_seq, 2, 0);
        for m in &mut info.members {
            m.read = if m.id == user("bob") {
                bob_read
            } else {
                Some(2)
            };
        }
        info
    };
    chat.apply(ServerFrame::Rooms {
        rooms: vec![listed(Some(1), 2)],
    });
    assert_eq!(seen(&chat), both, "a listing does not take a receipt back");
    chat.apply(ServerFrame::Members {
        room: r_ab(),
        members: listed(Some(0), 2).members,
        next: None,
    });
    assert_eq!(seen(&chat), both, "nor does a page of members");
    // A later marker still moves it on; a site that turned receipts off
    // hides them.
    chat.apply(ServerFrame::Rooms {
        rooms: vec![listed(None, 2)],
    });
    assert_eq!(seen(&chat), [Vec::<String>::new(), Vec::new()]);
}

#[test]
fn a_reset_page_replaces_what_the_room_held() {
    let mut chat = synced_alice();
    chat.apply(live(message(1, "bob", "one", None)));
    chat.apply(live(message(2, "bob", "two", None)));
    chat.take_changes();
    chat.apply(ServerFrame::Page {
        room: r_ab(),
        events: vec![message(1, "bob", "restored", None)],
        more: false,
        reset: true,
    });
    assert_eq!(bodies(&chat), ["restored"]);
    assert!(
        matches!(chat.take_changes().as_slice(), [Change::Reset(r, e)] if r.cursor == 1 && e.len() == 1)
    );
    // The next message is seq 2 again, and shows.
    chat.apply(live(message(2, "bob", "new two", None)));
    assert_eq!(bodies(&chat), ["restored", "new two"]);
}

#[test]
fn a_dialog_shows_whether_the_other_is_online() {
    let mut chat = synced_alice();
    assert_eq!(chat.dialog_presence(&r_ab()), None);
    chat.apply(ServerFrame::Presence {
        users: vec![natter_shared::Presence {
            user: user("bob"),
            online: false,
            last_seen: Some(7),
        }],
    });
    assert_eq!(chat.dialog_presence(&r_ab()), Some((false, Some(7))));
    assert_eq!(chat.room_entries()[0].online, Some(false));
}

#[test]
fn a_group_lists_its_members_online_first() {
    let mut chat = synced_alice();
    let mut group = dialog();
    group.id = RoomId::parse("r_group").unwrap();
    group.kind = RoomKind::Group;
    group.title = Some("Team".into());
    group
        .members
        .push(Member::new(user("carol"), Some("Carol".into())));
    group.member_count = 5;
    chat.apply(ServerFrame::Rooms {
        rooms: vec![group.clone()],
    });
    assert_eq!(chat.group_members(&r_ab()), None, "a dialog lists none");
    let listed = |chat: &Chat| chat.group_members(&group.id).expect("a group");
    // Alice (the user) is online; nobody else is known to be.
    assert_eq!(
        listed(&chat),
        (
            5,
            vec![
                ("Alice".to_string(), true),
                ("Bob".to_string(), false),
                ("Carol".to_string(), false)
            ]
        )
    );
    chat.apply(ServerFrame::Presence {
        users: vec![natter_shared::Presence {
            user: user("carol"),
            online: true,
            last_seen: None,
        }],
    });
    assert_eq!(
        listed(&chat).1,
        vec![
            ("Alice".to_string(), true),
            ("Carol".to_string(), true),
            ("Bob".to_string(), false)
        ]
    );
}

#[test]
fn the_same_seq_in_two_rooms_makes_two_lines() {
    let mut chat = synced_alice();
    let mut lobby = dialog();
    lobby.id = RoomId::parse("r_lobby").unwrap();
    lobby.kind = RoomKind::Group;
    chat.apply(ServerFrame::Rooms {
        rooms: vec![lobby.clone()],
    });
    chat.apply(live(message(1, "bob", "dialog", None)));
    let mut other = message(1, "bob", "lobby", None);
    other.room = lobby.id.clone();
    chat.apply(live(other));
    assert_ne!(chat.lines(&r_ab())[0].key, chat.lines(&lobby.id)[0].key);
}

#[test]
fn history_adds_older_lines_and_says_when_all_is_held() {
    let mut chat = synced_alice();
    chat.apply(page(vec![message(5, "bob", "five", None)]));
    assert!(matches!(
        chat.older(&r_ab()),
        Some(ClientFrame::History { before: 5, .. })
    ));
    chat.take_changes();
    chat.apply(ServerFrame::History {
        room: r_ab(),
        events: vec![
            message(3, "bob", "three", None),
            message(4, "bob", "four", None),
        ],
        more: false,
    });
    assert_eq!(bodies(&chat), ["three", "four", "five"]);
    assert!(chat.older(&r_ab()).is_none(), "nothing older exists");
    assert!(
        matches!(chat.take_changes().as_slice(), [Change::Events(r, e)] if r.complete && r.oldest == Some(3) && e.len() == 2)
    );
}

#[test]
fn a_page_is_asked_for_once_until_it_is_answered_or_the_link_drops() {
    let mut chat = synced_alice();
    chat.apply(page(vec![message(5, "bob", "five", None)]));
    assert!(chat.older(&r_ab()).is_some());
    assert!(
        chat.older(&r_ab()).is_none(),
        "scrolling on while the page is on its way asks for nothing more"
    );
    chat.on_disconnect();
    assert!(
        matches!(
            chat.older(&r_ab()),
            Some(ClientFrame::History { before: 5, .. })
        ),
        "a page lost with the connection is asked for again"
    );
    chat.apply(ServerFrame::History {
        room: r_ab(),
        events: vec![message(4, "bob", "four", None)],
        more: true,
    });
    assert!(
        matches!(
            chat.older(&r_ab()),
            Some(ClientFrame::History { before: 4, .. })
        ),
        "once answered, the next page is asked for"
    );
    chat.apply(ServerFrame::Error {
        code: ErrorCode::Internal,
        message: "the store failed".into(),
        client_id: None,
        room: None,
        retry_after_ms: None,
    });
    assert!(
        chat.older(&r_ab()).is_some(),
        "a refused page is asked for again"
    );
}

#[test]
fn a_chat_rebuilt_from_the_store_syncs_from_its_cursors_and_resends_its_outbox() {
    let mut chat = rebuilt("offline", EntryState::InFlight);
    let cursors = vec![Cursor::new(r_ab(), 7)];
    assert_eq!(chat.apply(hello("alice")), [ClientFrame::Sync { cursors }]);
    assert_eq!(chat.apply(ServerFrame::Synced {}), [send(1, "offline")]);
}

fn pdf(key: &str, size: u64) -> OutgoingFile {
    OutgoingFile {
        key: key.into(),
        name: format!("{key}.pdf"),
        size,
        mime: "application/pdf".into(),
        id: None,
    }
}

#[test]
fn a_message_with_files_goes_out_once_they_are_uploaded() {
    let mut chat = synced_alice();
    let out = chat
        .compose(
            &r_ab(),
            cid(1),
            "  ".into(),
            vec![pdf("a", 10), pdf("b", 20)],
            5,
        )
        .unwrap();
    assert!(out.is_empty(), "nothing goes before the files: {out:?}");
    let lines = chat.lines(&r_ab());
    let line = lines.last().unwrap();
    assert_eq!((line.body.as_str(), line.outgoing.len()), ("", 2));
    assert_eq!(chat.uploads().len(), 2);
    chat.take_changes();
    let a = natter_shared::FileId::parse("fa").unwrap();
    assert!(chat.uploaded(&cid(1), "a", a.clone()).is_empty());
    assert!(
        matches!(&chat.take_changes()[..], [Change::State(e, EntryState::Queued)] if e.files[0].id.is_some()),
        "the uploaded file's id is stored"
    );
    let b = natter_shared::FileId::parse("fb").unwrap();
    let out = chat.uploaded(&cid(1), "b", b.clone());
    assert_eq!(
        out,
        [ClientFrame::Send {
            client_id: cid(1),
            room: r_ab(),
            body: String::new(),
            files: vec![a, b],
        }]
    );
}

#[test]
fn a_message_with_files_acked_before_its_event_keeps_what_the_server_made_of_them() {
    let mut chat = synced_alice();
    chat.compose(&r_ab(), cid(1), "look".into(), vec![pdf("a", 10)], 5)
        .unwrap();
    let id = natter_shared::FileId::parse("fa").unwrap();
    chat.uploaded(&cid(1), "a", id.clone());
    chat.take_changes();
    chat.apply(ServerFrame::Ack {
        client_id: cid(1),
        room: r_ab(),
        seq: 1,
        ts: 9,
    });
    // Until its event comes: the message, sent, with the file as sent.
    let line = chat.lines(&r_ab()).pop().unwrap();
    assert_eq!(line.delivery, Delivery::Stored);
    assert_eq!(
        line.files
            .iter()
            .map(|f| (&f.id, f.size))
            .collect::<Vec<_>>(),
        [(&id, 10)]
    );
    let entry = &chat.room_entries()[0];
    assert_eq!(entry.preview.as_deref(), Some("Alice: look"));
    chat.take_changes();
    // Its event brings what the server made of the file.
    let served = Attachment {
        id: id.clone(),
        name: "a.pdf".into(),
        size: 10,
        mime: "application/pdf".into(),
        width: Some(600),
        height: Some(800),
        thumb: true,
    };
    let mut event = message(1, "alice", "look", Some(cid(1)));
    event.kind = EventKind::Message {
        body: "look".into(),
        client_id: Some(cid(1)),
        files: vec![served.clone()],
    };
    chat.apply(live(event));
    let lines = chat.lines(&r_ab());
    assert_eq!(lines.len(), 1, "the ack and the event are one line");
    assert_eq!(lines[0].files, std::slice::from_ref(&served));
    assert!(
        matches!(&chat.take_changes()[..], [Change::Events(_, events)] if matches!(&events[0].kind, EventKind::Message { files, .. } if files == std::slice::from_ref(&served))),
        "the event is stored over the ack's"
    );
    // And the room goes on from it.
    chat.apply(live(message(2, "bob", "nice", None)));
    assert_eq!(bodies(&chat), ["look", "nice"]);
}

#[test]
fn an_own_message_acked_before_its_event_leads_the_room_list() {
    let mut chat = synced_alice();
    chat.apply(live(message(1, "bob", "hi", None)));
    chat.compose(&r_ab(), cid(1), "hello".into(), Vec::new(), 5)
        .unwrap();
    chat.apply(ServerFrame::Ack {
        client_id: cid(1),
        room: r_ab(),
        seq: 2,
        ts: 9_000,
    });
    let entry = &chat.room_entries()[0];
    assert_eq!(
        (entry.preview.as_deref(), entry.last_ts),
        (Some("Alice: hello"), Some(9_000))
    );
}

#[test]
fn files_beyond_the_limits_are_refused_before_anything_is_kept() {
    let mut chat = synced_alice();
    chat.take_changes();
    let limits = Limits::default();
    let too_many: Vec<_> = (0..=limits.max_files_per_message)
        .map(|i| pdf(&format!("f{i}"), 1))
        .collect();
    assert_eq!(
        chat.compose(&r_ab(), cid(1), "x".into(), too_many, 0),
        Err(ComposeError::TooManyFiles(limits.max_files_per_message))
    );
    assert!(matches!(
        chat.compose(
            &r_ab(),
            cid(1),
            "x".into(),
            vec![pdf("big", limits.max_file_bytes + 1)],
            0
        ),
        Err(ComposeError::FileTooLarge { .. })
    ));
    assert!(matches!(
        chat.compose(&r_ab(), cid(1), "x".into(), vec![pdf("empty", 0)], 0),
        Err(ComposeError::EmptyFile(_))
    ));
    let mut page = pdf("page", 5);
    page.mime = "text/html".into();
    assert!(matches!(
        chat.compose(&r_ab(), cid(1), "x".into(), vec![page], 0),
        Err(ComposeError::FileType { .. })
    ));
    assert!(chat.take_changes().is_empty());
    assert!(chat.uploads().is_empty());
}

#[test]
fn a_message_still_uploading_can_be_cancelled_and_a_refused_upload_shows() {
    let mut chat = synced_alice();
    chat.compose(&r_ab(), cid(1), "doc".into(), vec![pdf("a", 10)], 5)
        .unwrap();
    chat.compose(&r_ab(), cid(2), "scan".into(), vec![pdf("b", 10)], 6)
        .unwrap();
    chat.take_changes();
    let cancelled = chat.discard(&cid(1)).expect("cancelled");
    assert_eq!(cancelled.files[0].key, "a");
    assert!(matches!(&chat.take_changes()[..], [Change::Discarded(_)]));
    chat.upload_refused(&cid(2), ErrorCode::FileTypeRefused, "not taken here");
    let lines = chat.lines(&r_ab());
    assert_eq!(lines.len(), 1);
    assert!(matches!(&lines[0].delivery, Delivery::Failed(why) if why.contains("not taken")));
    assert!(
        chat.uploads().is_empty(),
        "a refused file waits for a retry"
    );
    chat.retry(&cid(2));
    assert_eq!(chat.uploads().len(), 1);
}

#[test]
fn what_another_tab_did_to_the_outbox_is_taken_in() {
    // This tab owns the connection: one message refused for good, one
    // waiting for its file, one written after it (held back behind it).
    let mut chat = synced_alice();
    chat.compose(&r_ab(), cid(1), "refused".into(), Vec::new(), 5)
        .unwrap();
    chat.apply(not_member(Some(cid(1))));
    chat.compose(&r_ab(), cid(2), "scan".into(), vec![pdf("b", 10)], 6)
        .unwrap();
    chat.compose(&r_ab(), cid(3), "on its way".into(), Vec::new(), 7)
        .unwrap();
    let stored = |chat: &Chat| -> Vec<(OutboxEntry, EntryState)> {
        chat.outbox.entries().cloned().collect()
    };

    // Another tab retried the refused one: it goes out from here.
    let mut other = stored(&chat);
    other[0].1 = EntryState::Queued;
    let (out, gone) = chat.adopt(other);
    assert_eq!(out, [send(1, "refused")]);
    assert!(gone.is_empty());

    // Another tab cancelled the upload: it leaves this outbox too, and
    // comes back so its upload stops; the message it held back goes out.
    let mut other = stored(&chat);
    other.retain(|(e, _)| e.client_id != cid(2));
    let (out, gone) = chat.adopt(other.clone());
    assert_eq!(out, [send(3, "on its way")]);
    assert_eq!(
        gone.iter().map(|e| e.client_id).collect::<Vec<_>>(),
        [cid(2)]
    );
    assert!(chat.uploads().is_empty(), "its file is no longer sent");
    assert!(
        chat.uploaded(&cid(2), "b", natter_shared::FileId::parse("fb").unwrap())
            .is_empty()
    );
    assert!(
        !chat
            .take_changes()
            .iter()
            .any(|c| matches!(c, Change::State(e, _) if e.client_id == cid(2))),
        "a late upload writes nothing back"
    );

    // Refused again, then given up on in another tab.
    chat.apply(not_member(Some(cid(1))));
    other.retain(|(e, _)| e.client_id != cid(1));
    let (_, gone) = chat.adopt(other);
    assert_eq!(
        gone.iter().map(|e| e.client_id).collect::<Vec<_>>(),
        [cid(1)]
    );
    assert_eq!(bodies(&chat), ["on its way"]);
}

#[test]
fn a_deletion_empties_the_message_everywhere_and_counts_for_nothing() {
    let mut chat = synced_alice();
    chat.apply(live(message(1, "bob", "keep this", None)));
    chat.apply(live(message(2, "bob", "a secret", None)));
    chat.set_open(Some(r_ab()));
    chat.set_reading(true);
    chat.take_changes();
    let tombstone = Event {
        room: r_ab(),
        seq: 3,
        ts: 3_000,
        sender: None,
        kind: EventKind::MessageDeleted { target: 2 },
    };
    chat.apply(live(tombstone.clone()));

    let lines = chat.lines(&r_ab());
    let shown: Vec<(&str, bool)> = lines.iter().map(|l| (l.body.as_str(), l.deleted)).collect();
    assert_eq!(
        shown,
        [("keep this", false), (DELETED, true)],
        "the message shows as deleted, the tombstone not at all"
    );
    assert_eq!(lines[1].author.as_deref(), Some("Bob"));
    assert_eq!(chat.unread_total(), 0);
    let entry = &chat.room_entries()[0];
    assert_eq!(
        entry.preview.as_deref(),
        Some(format!("Bob: {DELETED}").as_str())
    );
    // The store gets the tombstone and the emptied message, with the
    // cursor past both.
    let changes = chat.take_changes();
    let stored = changes.iter().find_map(|c| match c {
        Change::Events(room, events) => Some((room.cursor, events.clone())),
        _ => None,
    });
    let (cursor, events) = stored.expect("the events are stored");
    assert_eq!(cursor, 3);
    assert!(events.contains(&tombstone));
    assert!(
        events
            .iter()
            .any(|e| e.seq == 2 && matches!(e.kind, EventKind::Deleted { client_id: None })),
        "{events:?}"
    );
    // A page that repeats the deleted message as the server keeps it
    // changes nothing.
    let mut repeat = message(2, "bob", "", None);
    repeat.kind = EventKind::Deleted { client_id: None };
    chat.apply(page(vec![repeat]));
    assert_eq!(bodies(&chat), ["keep this", DELETED]);
}
