//! Chatting: send, ack, fan-out, catch-up, history, membership, shutdown.

use natter_shared::{ClientFrame, Cursor, EventKind, ServerFrame};
use natter_tests::*;
use std::collections::HashMap;

fn body_of(frame: &ServerFrame) -> Option<(u64, &str)> {
    match frame {
        ServerFrame::Event { event } => match &event.kind {
            EventKind::Message { body, .. } => Some((event.seq, body.as_str())),
            _ => None,
        },
        _ => None,
    }
}

#[tokio::test]
async fn two_users_in_a_dialog_exchange_messages() {
    let app = spawn_app(Db::Sqlite).await;
    let room = app.dialog("alice", "bob").await;
    let (mut alice, rooms) = app.login("alice").await;
    assert_eq!(rooms.len(), 1, "alice sees exactly her dialog");
    let (mut bob, _) = app.login("bob").await;

    let seq = alice.say(&room.id, "hi Bob").await;
    assert_eq!(seq, 1);
    let got = bob.recv_until(|f| body_of(f).is_some()).await;
    assert_eq!(body_of(&got), Some((1, "hi Bob")));
    if let ServerFrame::Event { event } = &got {
        assert_eq!(event.sender.as_ref().map(|s| s.as_str()), Some("alice"));
    }

    let seq = bob.say(&room.id, "hello Alice").await;
    assert_eq!(seq, 2);
    let got = alice
        .recv_until(|f| body_of(f).is_some_and(|(s, _)| s == 2))
        .await;
    assert_eq!(body_of(&got), Some((2, "hello Alice")));
    crate::assert_no_panics();
    app.stop().await;
}

#[tokio::test]
async fn retried_send_after_reconnect_is_stored_once_with_the_same_seq() {
    let app = spawn_app(Db::Sqlite).await;
    let room = app.dialog("alice", "bob").await;
    let (mut alice, _) = app.login("alice").await;
    let id = cid();
    let first = alice.send_with(&room.id, "only once", id).await;
    drop(alice);

    let (mut alice, _) = app.login("alice").await;
    let again = alice.send_with(&room.id, "only once", id).await;
    assert_eq!(first, again, "the retry is acked with the stored seq");
    let next = alice.say(&room.id, "next").await;
    assert_eq!(next, first + 1, "the retry did not take a seq");

    let page = app.messages(&room.id, "").await;
    let bodies: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["only once", "next"]);
    app.stop().await;
}

#[tokio::test]
async fn reconnect_with_an_old_cursor_receives_exactly_the_missing_messages_in_order() {
    let app = spawn_app_with(Db::Sqlite, |c| c.limits.page_size = 7).await;
    let room = app.group("Physics", &["alice", "bob"]).await;
    let (mut alice, _) = app.login("alice").await;
    for i in 1..=5 {
        alice.say(&room.id, &format!("m{i}")).await;
    }
    // Bob was offline; he saw up to seq 2.
    for i in 6..=30 {
        alice.say(&room.id, &format!("m{i}")).await;
    }
    let mut bob = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    bob.auth(&app.token("bob")).await;
    bob.send(&ClientFrame::Sync {
        cursors: vec![Cursor::new(room.id.clone(), 2)],
    })
    .await;
    let mut seqs = Vec::new();
    let mut pages = 0;
    loop {
        match bob.recv().await {
            ServerFrame::Rooms { .. } => {}
            ServerFrame::Page { events, more, .. } => {
                pages += 1;
                assert!(events.len() <= 7, "pages respect the page size");
                seqs.extend(events.iter().map(|e| e.seq));
                if !more {
                    continue;
                }
            }
            ServerFrame::Synced {} => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        seqs,
        (3..=30).collect::<Vec<_>>(),
        "exactly the missing ones, in order"
    );
    assert_eq!(pages, 4);
    // Live events continue right after.
    alice.say(&room.id, "live").await;
    let got = bob.recv_until(|f| body_of(f).is_some()).await;
    assert_eq!(body_of(&got), Some((31, "live")));
    app.stop().await;
}

async fn writers_and_readers(db: Db) {
    const WRITERS: usize = 32;
    const READERS: usize = 8;
    const EACH: usize = 15;
    let app = spawn_app(db).await;
    let mut members: Vec<String> = (0..WRITERS).map(|i| format!("w{i}")).collect();
    members.extend((0..READERS).map(|i| format!("r{i}")));
    let names: Vec<&str> = members.iter().map(String::as_str).collect();
    let room = app.group("Busy", &names).await;
    let total = (WRITERS * EACH) as u64;

    let mut readers = Vec::new();
    for i in 0..READERS {
        let (mut reader, _) = app.login(&format!("r{i}")).await;
        let room = room.id.clone();
        readers.push(tokio::spawn(async move {
            let mut last = 0u64;
            let mut resyncs = 0;
            while last < total {
                match reader.recv().await {
                    ServerFrame::Event { event } => {
                        assert_eq!(event.room, room);
                        assert_eq!(
                            event.seq,
                            last + 1,
                            "reader saw seq {} after {last}",
                            event.seq
                        );
                        last = event.seq;
                    }
                    // Fell behind: follow the cursor, as a client does.
                    ServerFrame::Resync { .. } => {
                        resyncs += 1;
                        let cursor = Cursor::new(room.clone(), last);
                        let (_, events) = reader.sync_collect(vec![cursor]).await;
                        for event in events {
                            assert_eq!(
                                event.seq,
                                last + 1,
                                "catch-up gave seq {} after {last}",
                                event.seq
                            );
                            last = event.seq;
                        }
                    }
                    _ => {}
                }
            }
            (last, resyncs)
        }));
    }
    let mut writers = Vec::new();
    for i in 0..WRITERS {
        let (mut writer, _) = app.login(&format!("w{i}")).await;
        let room = room.id.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for j in 0..EACH {
                // Pipeline: send without waiting, then collect acks.
                writer
                    .send(&ClientFrame::Send {
                        client_id: cid(),
                        room: room.clone(),
                        body: format!("w{i} m{j}"),
                        files: Vec::new(),
                    })
                    .await;
            }
            while acked.len() < EACH {
                match writer.recv().await {
                    ServerFrame::Ack { seq, .. } => acked.push(seq),
                    ServerFrame::Error { code, message, .. } => {
                        panic!("a send was refused: {code:?} {message}")
                    }
                    _ => {}
                }
            }
            acked
        }));
    }
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.expect("writer"));
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=total).collect::<Vec<_>>(),
        "every seq acked exactly once"
    );
    for r in readers {
        let (last, resyncs) = r.await.expect("reader");
        assert_eq!(last, total);
        assert!(resyncs < 10, "a reader needed {resyncs} resyncs");
    }
    // A reader following a cursor afterwards sees the same gap-free history.
    let mut late = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    late.auth(&app.token("r0")).await;
    let (_, events) = late
        .sync_collect(vec![Cursor::new(room.id.clone(), 0)])
        .await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>());
    crate::assert_no_panics();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_leave_a_gap_for_readers_sqlite() {
    writers_and_readers(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_never_leave_a_gap_for_readers_mariadb() {
    writers_and_readers(Db::MariaDb).await;
}

#[tokio::test]
async fn history_pages_backwards_and_unknown_rooms_get_their_latest_page() {
    let app = spawn_app_with(Db::Sqlite, |c| c.limits.page_size = 10).await;
    let room = app.group("Archive", &["alice", "bob"]).await;
    let (mut alice, _) = app.login("alice").await;
    for i in 1..=25 {
        alice.say(&room.id, &format!("m{i}")).await;
    }
    // Bob has no cursor: he gets the room and its latest page only.
    let mut bob = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    bob.auth(&app.token("bob")).await;
    let (rooms, events) = bob.sync_collect(vec![]).await;
    assert_eq!(rooms[0].last_seq, 25);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (16..=25).collect::<Vec<_>>()
    );
    // Then scrolls up.
    bob.send(&ClientFrame::History {
        room: room.id.clone(),
        before: 16,
        limit: Some(10),
    })
    .await;
    assert_eq!(history_frame(&mut bob).await, ((6..=15).collect(), true));
    bob.send(&ClientFrame::History {
        room: room.id.clone(),
        before: 6,
        limit: None,
    })
    .await;
    assert_eq!(history_frame(&mut bob).await, ((1..=5).collect(), false));
    app.stop().await;
}

/// The seqs and `more` of the next `history` frame.
async fn history_frame(client: &mut Client) -> (Vec<u64>, bool) {
    match client.recv().await {
        ServerFrame::History { events, more, .. } => (events.iter().map(|e| e.seq).collect(), more),
        other => panic!("expected history, got {other:?}"),
    }
}

#[tokio::test]
async fn history_answers_a_long_reach_in_pages_newest_first() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.limits.page_size = 10;
        c.limits.max_catch_up_pages = 3;
    })
    .await;
    let room = app.group("Long", &["alice", "bob"]).await;
    let (mut alice, _) = app.login("alice").await;
    let first = alice.say(&room.id, "m1").await;
    for i in 2..=45 {
        alice.say(&room.id, &format!("m{i}")).await;
    }
    let seq = |k: u64| first + k - 1;
    let mut bob = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    bob.send(&ClientFrame::Auth {
        token: app.token("bob"),
    })
    .await;
    match bob.recv().await {
        ServerFrame::Hello { limits, .. } => assert_eq!(limits.history_pages, 3),
        other => panic!("expected hello, got {other:?}"),
    }
    bob.sync(vec![]).await;
    let ask = |before: u64, limit: Option<u32>| ClientFrame::History {
        room: room.id.clone(),
        before,
        limit,
    };

    // 25 asked: two full pages and a part, each older than the last.
    bob.send(&ask(seq(46), Some(25))).await;
    assert_eq!(
        history_frame(&mut bob).await,
        ((seq(36)..=seq(45)).collect(), true)
    );
    assert_eq!(
        history_frame(&mut bob).await,
        ((seq(26)..=seq(35)).collect(), true)
    );
    assert_eq!(
        history_frame(&mut bob).await,
        ((seq(21)..=seq(25)).collect(), true)
    );
    // Nothing else follows: the next frame is the answer to a ping.
    bob.send(&ClientFrame::Ping { nonce: Some(1) }).await;
    assert!(matches!(bob.recv().await, ServerFrame::Pong { .. }));

    // More than three pages: three; then the rest, ending at the start.
    bob.send(&ask(seq(21), Some(1000))).await;
    assert_eq!(
        history_frame(&mut bob).await,
        ((seq(11)..=seq(20)).collect(), true)
    );
    assert_eq!(
        history_frame(&mut bob).await,
        ((seq(1)..=seq(10)).collect(), first > 1)
    );
    if first > 1 {
        let (rest, more) = history_frame(&mut bob).await;
        assert_eq!(rest, (1..first).collect::<Vec<_>>());
        assert!(!more);
    }
    bob.send(&ClientFrame::Ping { nonce: Some(2) }).await;
    assert!(matches!(bob.recv().await, ServerFrame::Pong { .. }));

    // No limit: one page.
    bob.send(&ask(seq(46), None)).await;
    assert_eq!(
        history_frame(&mut bob).await,
        ((seq(36)..=seq(45)).collect(), true)
    );
    bob.send(&ClientFrame::Ping { nonce: Some(3) }).await;
    assert!(matches!(bob.recv().await, ServerFrame::Pong { .. }));
    app.stop().await;
}

#[tokio::test]
async fn members_added_later_see_the_room_live_and_removed_ones_stop_receiving() {
    let app = spawn_app(Db::Sqlite).await;
    let room = app.group("Club", &["alice"]).await;
    let (mut alice, _) = app.login("alice").await;
    let (mut carol, rooms) = app.login("carol").await;
    assert!(rooms.is_empty());

    let res = app
        .api(
            reqwest::Method::POST,
            &format!("/rooms/{}/members", room.id),
        )
        .json(&serde_json::json!({"user": {"id": "carol", "name": "Carol"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    // Carol is told about the room, then sees her joining and what follows.
    match carol.recv().await {
        ServerFrame::Rooms { rooms } => assert_eq!(rooms[0].id, room.id),
        other => panic!("expected rooms, got {other:?}"),
    }
    match carol.recv().await {
        ServerFrame::Event { event } => {
            assert!(
                matches!(event.kind, EventKind::MemberJoined { ref user } if user.as_str() == "carol")
            )
        }
        other => panic!("expected member_joined, got {other:?}"),
    }
    alice.say(&room.id, "welcome").await;
    let got = carol.recv_until(|f| body_of(f).is_some()).await;
    assert_eq!(body_of(&got).map(|(_, b)| b), Some("welcome"));
    carol.say(&room.id, "thanks").await;

    let res = app
        .api(
            reqwest::Method::DELETE,
            &format!("/rooms/{}/members/carol", room.id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    carol
        .recv_until(|f| matches!(f, ServerFrame::Event { event } if matches!(event.kind, EventKind::MemberLeft { .. })))
        .await;
    alice.say(&room.id, "after carol left").await;
    // Carol's sends are refused now, and she hears nothing more of the room.
    carol
        .send(&ClientFrame::Send {
            client_id: cid(),
            room: room.id.clone(),
            body: "still here?".into(),
            files: Vec::new(),
        })
        .await;
    match carol.recv().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, natter_shared::ErrorCode::NotMember),
        other => panic!("carol should get not_member, got {other:?}"),
    }
    app.stop().await;
}

#[tokio::test]
async fn new_rooms_are_announced_to_online_members_and_typing_reaches_the_others() {
    let app = spawn_app(Db::Sqlite).await;
    let (mut alice, _) = app.login("alice").await;
    let (mut bob, _) = app.login("bob").await;
    let room = app.dialog("alice", "bob").await;
    for client in [&mut alice, &mut bob] {
        match client.recv().await {
            ServerFrame::Rooms { rooms } => assert_eq!(rooms[0].id, room.id),
            other => panic!("expected the new room, got {other:?}"),
        }
    }
    alice
        .send(&ClientFrame::Typing {
            room: room.id.clone(),
        })
        .await;
    match bob.recv().await {
        ServerFrame::Typing { room: r, user } => {
            assert_eq!(r, room.id);
            assert_eq!(user.as_str(), "alice");
        }
        other => panic!("expected typing, got {other:?}"),
    }
    // Alice does not hear her own typing: the next frame she gets is her pong.
    alice.send(&ClientFrame::Ping { nonce: Some(9) }).await;
    assert_eq!(alice.recv().await, ServerFrame::Pong { nonce: Some(9) });
    app.stop().await;
}

#[tokio::test]
async fn a_typing_flood_reaches_the_others_once_per_interval_and_never_as_a_resync() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.limits.typing_interval_ms = 1_000;
        c.limits.conn_queue = 16;
    })
    .await;
    let room = app.dialog("alice", "bob").await;
    let (mut alice, _) = app.login("alice").await;
    let (mut bob, _) = app.login("bob").await;
    let started = std::time::Instant::now();
    for _ in 0..1_000 {
        alice
            .send(&ClientFrame::Typing {
                room: room.id.clone(),
            })
            .await;
    }
    let flood = started.elapsed();
    // Then a message: everything the flood let through comes before it.
    alice.say(&room.id, "done typing").await;
    let mut typing = 0;
    loop {
        match bob.recv().await {
            ServerFrame::Typing { .. } => typing += 1,
            ServerFrame::Resync { reason } => panic!("a typing flood forced a resync: {reason}"),
            frame if body_of(&frame).is_some() => break,
            _ => {}
        }
    }
    let most = 1 + flood.as_millis() / 1_000;
    assert!(
        (1..=most).contains(&(typing as u128)),
        "{typing} typing frames went out for a flood of {flood:?} (at most one a second)"
    );
    app.stop().await;
}

#[tokio::test]
async fn shutdown_closes_connections_with_1001_and_keeps_every_acked_message() {
    let mut app = spawn_app(Db::Sqlite).await;
    let room = app.dialog("alice", "bob").await;
    let (mut alice, _) = app.login("alice").await;
    let mut acked = HashMap::new();
    for i in 0..20 {
        let seq = alice.say(&room.id, &format!("m{i}")).await;
        acked.insert(seq, format!("m{i}"));
    }
    // Sends in flight when the server stops are committed and acked first.
    for i in 20..30 {
        alice
            .send(&ClientFrame::Send {
                client_id: cid(),
                room: room.id.clone(),
                body: format!("m{i}"),
                files: Vec::new(),
            })
            .await;
    }
    app.shutdown().await;
    let mut close_code = None;
    loop {
        match alice.next().await {
            Ok(ServerFrame::Ack { seq, .. }) => {
                acked.insert(seq, String::new());
            }
            Ok(_) => {}
            Err(Ended::Closed(frame)) => {
                close_code = frame.map(|f| u16::from(f.code));
                break;
            }
            Err(Ended::Error(_)) => break,
        }
    }
    assert_eq!(close_code, Some(1001));
    let app = app.restart().await;
    let page = app.messages(&room.id, "?limit=100").await;
    let stored: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    for seq in acked.keys() {
        assert!(stored.contains(seq), "acked seq {seq} survived the restart");
    }
    assert_eq!(
        stored,
        (1..=stored.len() as u64).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    assert!(stored.len() >= 20);
    app.stop().await;
}
