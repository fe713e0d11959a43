//! The hub's unit tests.

use super::head::AUTHORS_KEPT;
use super::*;
use natter_shared::{EventKind, ServerFrame};

fn room() -> RoomId {
    RoomId::parse("r_1").expect("a room id")
}

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("a user id")
}

#[test]
fn the_event_frame_is_the_protocols_event_frame() {
    let event = Event {
        room: room(),
        seq: 7,
        ts: 1_700_000_000_000,
        sender: Some(user("a")),
        kind: EventKind::Message {
            body: "hi \"there\"".into(),
            client_id: None,
            files: Vec::new(),
        },
    };
    let ours = serde_json::to_string(&EventFrame { event: &event }).expect("serialises");
    let real = serde_json::to_string(&ServerFrame::Event { event }).expect("serialises");
    assert_eq!(ours, real);
}

#[test]
fn the_typing_frame_is_the_protocols_typing_frame() {
    let (room, user) = (room(), user("a"));
    let ours = serde_json::to_string(&TypingFrame {
        room: &room,
        user: &user,
    })
    .expect("serialises");
    let real = serde_json::to_string(&ServerFrame::Typing { room, user }).expect("serialises");
    assert_eq!(ours, real);
}

#[test]
fn the_read_frame_is_the_protocols_read_frame() {
    let (room, user) = (room(), user("a"));
    let ours = serde_json::to_string(&ReadFrame {
        room: &room,
        user: &user,
        seq: 4,
    })
    .expect("serialises");
    let real =
        serde_json::to_string(&ServerFrame::Read { room, user, seq: 4 }).expect("serialises");
    assert_eq!(ours, real);
}

#[test]
fn one_typist_goes_out_once_per_interval_per_room() {
    let hub = Hub::default();
    let other = RoomId::parse("r_2").expect("a room id");
    assert!(hub.typing(&room(), &user("a")));
    assert!(!hub.typing(&room(), &user("a")), "too soon");
    assert!(hub.typing(&room(), &user("b")), "another typist");
    assert!(hub.typing(&other, &user("a")), "another room");
    hub.set_typing_interval(Duration::ZERO);
    assert!(hub.typing(&room(), &user("a")), "no interval: every one");
}

#[tokio::test]
async fn a_ban_reaches_every_connection_of_the_user_and_no_other() {
    let hub = Hub::default();
    let site = SiteId::parse("s_1").expect("a site id");
    let one = hub.register(site.clone(), user("a"), 4);
    let two = hub.register(site.clone(), user("a"), 4);
    let other = hub.register(site.clone(), user("b"), 4);
    hub.ban(&site, &user("a"));
    for reg in [&one, &two] {
        tokio::time::timeout(std::time::Duration::from_secs(1), reg.mailbox.signalled())
            .await
            .expect("told at once");
        assert!(reg.mailbox.is_banned());
    }
    assert!(!other.mailbox.is_banned());
}

#[tokio::test]
async fn a_full_queue_marks_the_connection_lagged_and_unsubscribes_it() {
    let hub = Hub::default();
    let site = SiteId::parse("s_1").expect("a site id");
    let reg = hub.register(site.clone(), user("b"), 1);
    hub.begin_sync(reg.id);
    hub.follow(reg.id, [(room(), 0)]);
    let event = |seq| Event {
        room: room(),
        seq,
        ts: 0,
        sender: Some(user("a")),
        kind: EventKind::Message {
            body: "x".into(),
            client_id: None,
            files: Vec::new(),
        },
    };
    hub.publish_event(&site, &event(1));
    hub.publish_event(&site, &event(2));
    // The second did not fit: the connection is told to resync.
    tokio::time::timeout(std::time::Duration::from_secs(1), reg.mailbox.signalled())
        .await
        .expect("the lag signal is raised");
    assert!(matches!(reg.mailbox.try_recv(), Some(Delivery::Event(p)) if p.seq == 1));
    hub.publish_event(&site, &event(3));
    assert!(
        reg.mailbox.try_recv().is_none(),
        "unsubscribed until it syncs again"
    );
}

#[tokio::test]
async fn resync_tells_live_connections_and_unsubscribes_them() {
    let hub = Hub::default();
    let site = SiteId::parse("s_1").expect("a site id");
    let live = hub.register(site.clone(), user("b"), 8);
    hub.begin_sync(live.id);
    hub.follow(live.id, [(room(), 0)]);
    // Not synced yet: its coming sync reads the store anyway.
    let waiting = hub.register(site.clone(), user("c"), 8);
    assert_eq!(hub.live_connections(), [live.id]);
    assert_eq!(
        hub.resync(&[live.id, waiting.id]),
        1,
        "only the synced connection is told"
    );
    tokio::time::timeout(std::time::Duration::from_secs(1), live.mailbox.signalled())
        .await
        .expect("the lag signal is raised");
    assert!(!waiting.mailbox.is_lagged());
    assert!(
        !hub.lock().rooms.contains_key(&room()),
        "nobody follows the room"
    );
}

/// A message of `author` at `seq` in `room()`.
fn message_by(author: &str, seq: Seq) -> Event {
    Event {
        room: room(),
        seq,
        ts: 0,
        sender: Some(user(author)),
        kind: EventKind::Message {
            body: "x".into(),
            client_id: None,
            files: Vec::new(),
        },
    }
}

/// How many `read` frames wait in the connection's queue (the rest of
/// what waits is dropped).
fn reads_waiting(reg: &mut Registration) -> usize {
    let mut reads = 0;
    while let Some(delivery) = reg.mailbox.try_recv() {
        if matches!(&delivery, Delivery::Notice(frame) if frame.as_str().starts_with(r#"{"type":"read""#))
        {
            reads += 1;
        }
    }
    reads
}

/// A connection of each of `names`, synced with `room()` at `seq`.
fn following(hub: &Hub, site: &SiteId, names: &[&str], seq: Seq) -> Vec<Registration> {
    names
        .iter()
        .map(|name| {
            let reg = hub.register(site.clone(), user(name), 256);
            hub.begin_sync(reg.id);
            hub.follow(reg.id, [(room(), seq)]);
            reg
        })
        .collect()
}

/// The `read` frames waiting for each connection.
fn counts(regs: &mut [Registration]) -> Vec<usize> {
    regs.iter_mut().map(reads_waiting).collect()
}

#[test]
fn a_receipt_goes_to_the_authors_it_passes_and_the_readers_own_devices() {
    let hub = Hub::default();
    let site = SiteId::parse("s_1").expect("a site id");
    let mut regs = following(&hub, &site, &["alice", "bob", "bob", "carol"], 0);
    for (seq, author) in [(1, "alice"), (2, "carol"), (3, "alice")] {
        hub.publish_event(&site, &message_by(author, seq));
    }
    counts(&mut regs);
    let from = Some(regs[1].id);
    let moved = |after, seq| Moved { after, seq };

    // Past Alice's message only: Alice and Bob's other device.
    hub.read(&room(), &user("bob"), moved(2, 3), true, from);
    assert_eq!(counts(&mut regs), [1, 0, 1, 0]);
    // Past Carol's too: Carol as well.
    hub.read(&room(), &user("bob"), moved(1, 3), true, from);
    assert_eq!(counts(&mut regs), [1, 0, 1, 1]);
    // Receipts off: Bob's own devices only.
    hub.read(&room(), &user("bob"), moved(0, 3), false, from);
    assert_eq!(counts(&mut regs), [0, 0, 1, 0]);
    // Past one's own message only: nobody else.
    hub.read(&room(), &user("carol"), moved(1, 2), true, None);
    assert_eq!(counts(&mut regs), [0, 0, 0, 1]);
}

#[test]
fn a_receipt_past_what_the_hub_knows_goes_to_the_whole_room() {
    let hub = Hub::default();
    let site = SiteId::parse("s_1").expect("a site id");
    // The room held 5 events when they synced: their authors are not
    // known here.
    let mut regs = following(&hub, &site, &["alice", "bob", "carol"], 5);
    hub.read(
        &room(),
        &user("bob"),
        Moved { after: 3, seq: 5 },
        true,
        None,
    );
    assert_eq!(counts(&mut regs), [1, 1, 1], "authors unknown: everyone");
    for seq in 6..6 + AUTHORS_KEPT as Seq + 2 {
        hub.publish_event(&site, &message_by("alice", seq));
    }
    counts(&mut regs);
    let head = hub.head(&room()).expect("followed");
    hub.read(
        &room(),
        &user("bob"),
        Moved {
            after: head - 1,
            seq: head,
        },
        true,
        None,
    );
    assert_eq!(counts(&mut regs), [1, 1, 0], "the latest: known");
    hub.read(
        &room(),
        &user("bob"),
        Moved {
            after: 5,
            seq: head,
        },
        true,
        None,
    );
    assert_eq!(counts(&mut regs), [1, 1, 1], "further back than kept");
    // A gap in what reached this node (a lost broker message): what came
    // before it is not known any more.
    hub.publish_event(&site, &message_by("alice", head + 2));
    counts(&mut regs);
    hub.read(
        &room(),
        &user("bob"),
        Moved {
            after: head,
            seq: head + 2,
        },
        true,
        None,
    );
    assert_eq!(counts(&mut regs), [1, 1, 1], "across the gap");
    hub.read(
        &room(),
        &user("bob"),
        Moved {
            after: head + 1,
            seq: head + 2,
        },
        true,
        None,
    );
    assert_eq!(counts(&mut regs), [1, 1, 0], "after it");
}

#[test]
fn a_room_never_announced_is_told_only_to_the_connections_that_miss_it() {
    let hub = Hub::default();
    let site = SiteId::parse("s_1").expect("a site id");
    let regs = following(&hub, &site, &["a"], 0);
    // A second device of `a`, synced before the room existed.
    let other = hub.register(site.clone(), user("a"), 8);
    hub.begin_sync(other.id);
    assert!(hub.unannounced(&site, &room(), &user("a"), false));
    assert!(other.mailbox.try_recv().is_none(), "only looked at");
    assert!(
        !hub.unannounced(&site, &room(), &user("b"), false),
        "b has no connection here"
    );

    assert!(hub.unannounced(&site, &room(), &user("a"), true));
    assert!(matches!(other.mailbox.try_recv(), Some(Delivery::NewRoom(r)) if *r == room()));
    assert!(
        regs[0].mailbox.try_recv().is_none(),
        "the one following it hears nothing"
    );
    assert!(
        !hub.unannounced(&site, &room(), &user("a"), false),
        "both follow it now"
    );
}
