//! The hub's unit tests.

use super::*;
use natter_shared::ServerFrame;

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
        tokio::time::timeout(std::time::Duration::from_secs(1), reg.signal.wait())
            .await
            .expect("told at once");
        assert!(reg.signal.is_banned());
    }
    assert!(!other.signal.is_banned());
}

#[tokio::test]
async fn a_full_queue_marks_the_connection_lagged_and_unsubscribes_it() {
    let hub = Hub::default();
    let site = SiteId::parse("s_1").expect("a site id");
    let mut reg = hub.register(site.clone(), user("b"), 1);
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
    tokio::time::timeout(std::time::Duration::from_secs(1), reg.signal.wait())
        .await
        .expect("the lag signal is raised");
    assert!(matches!(reg.rx.try_recv(), Ok(Delivery::Event(p)) if p.seq == 1));
    hub.publish_event(&site, &event(3));
    assert!(
        reg.rx.try_recv().is_err(),
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
    tokio::time::timeout(std::time::Duration::from_secs(1), live.signal.wait())
        .await
        .expect("the lag signal is raised");
    assert!(!waiting.signal.lagged.load(Ordering::Acquire));
    assert!(
        !hub.lock().rooms.contains_key(&room()),
        "nobody follows the room"
    );
}
