//! What people see of each other: read markers, unread counts, receipts,
//! presence; and a client whose copy of a room is of another history.

use natter_shared::{ClientFrame, Cursor, ErrorCode, RoomId, RoomInfo, ServerFrame};
use natter_tests::*;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;

on_both!(
    markers_move_forward_and_counts_follow,
    receipts_off_show_a_marker_to_its_owner_only,
    a_receipt_reaches_the_authors_of_what_it_passed,
    a_cursor_from_another_history_gets_the_room_afresh,
    room_mates_see_who_is_online_with_a_grace,
    presence_follows_the_rooms_people_join_and_leave,
    a_client_of_the_real_history_is_never_sent_it_afresh,
    a_large_room_lists_its_readers_and_pages_the_rest,
);

fn room_of<'a>(rooms: &'a [RoomInfo], id: &RoomId) -> &'a RoomInfo {
    rooms
        .iter()
        .find(|r| r.id == *id)
        .expect("the room is listed")
}

/// Skips frames until a `read` about `who`; returns its seq.
async fn read_of(client: &mut Client, who: &str) -> u64 {
    match client
        .recv_until(|f| matches!(f, ServerFrame::Read { user, .. } if user.as_str() == who))
        .await
    {
        ServerFrame::Read { seq, .. } => seq,
        _ => unreachable!(),
    }
}

/// Sends a message as `client` and collects what `watcher` receives up to
/// that message's event: proof of what did or did not come before it.
async fn frames_until_message(
    client: &mut Client,
    watcher: &mut Client,
    room: &RoomId,
) -> Vec<ServerFrame> {
    let seq = client.say(room, "marker").await;
    let mut seen = Vec::new();
    loop {
        let frame = watcher.recv().await;
        let done = matches!(&frame, ServerFrame::Event { event } if event.seq == seq);
        seen.push(frame);
        if done {
            return seen;
        }
    }
}

async fn markers_move_forward_and_counts_follow(db: Db) {
    let app = spawn_app(db).await;
    let room = app.group("Ward", &["alice", "bob", "carol"]).await;
    let (mut alice, _) = app.login("alice").await;
    for i in 1..=3 {
        alice.say(&room.id, &format!("question {i}")).await;
    }
    let (mut bob, rooms) = app.login("bob").await;
    let listed = room_of(&rooms, &room.id);
    assert_eq!(
        (listed.read, listed.unread),
        (0, 3),
        "a fresh device counts from the server"
    );
    bob.say(&room.id, "mine does not count").await;
    let (mut bob2, rooms) = app.login("bob").await;
    assert_eq!(room_of(&rooms, &room.id).unread, 3, "own messages are read");

    bob.send(&ClientFrame::Read {
        room: room.id.clone(),
        seq: 2,
    })
    .await;
    assert_eq!(
        read_of(&mut bob2, "bob").await,
        2,
        "his other device hears it"
    );
    assert_eq!(
        read_of(&mut alice, "bob").await,
        2,
        "the room sees the receipt"
    );

    // Back is ignored; past the end is the end.
    bob.send(&ClientFrame::Read {
        room: room.id.clone(),
        seq: 1,
    })
    .await;
    bob.send(&ClientFrame::Read {
        room: room.id.clone(),
        seq: 99,
    })
    .await;
    assert_eq!(
        read_of(&mut bob2, "bob").await,
        4,
        "never back, never past the room"
    );

    let (_bob3, rooms) = app.login("bob").await;
    let listed = room_of(&rooms, &room.id);
    assert_eq!((listed.read, listed.unread), (4, 0), "two devices agree");
    let bob_row = listed
        .members
        .iter()
        .find(|m| m.id.as_str() == "bob")
        .expect("bob");
    assert_eq!(bob_row.read, Some(4));

    alice.say(&room.id, "one more").await;
    let (_, rooms) = app.login("bob").await;
    assert_eq!(room_of(&rooms, &room.id).unread, 1);

    // Someone else joining or leaving is noise; one's own joining is not.
    let path = format!("/rooms/{}/members", room.id);
    let (status, _) = app
        .call(Method::POST, &path, Some(json!({"user": {"id": "dave"}})))
        .await;
    assert_eq!(status, 201);
    let (status, _) = app
        .call(Method::DELETE, &format!("{path}/carol"), None)
        .await;
    assert_eq!(status, 200);
    let (_, rooms) = app.login("bob").await;
    assert_eq!(
        room_of(&rooms, &room.id).unread,
        1,
        "others coming and going do not count"
    );
    let (_, rooms) = app.login("dave").await;
    let listed = room_of(&rooms, &room.id);
    assert_eq!(
        listed.read, 5,
        "what was said before he joined is not unread"
    );
    assert_eq!(listed.unread, 1, "being added counts");

    // The site's backend reads the counts and sets a marker.
    let (status, counts) = app.call(Method::GET, "/users/bob/unread", None).await;
    assert_eq!(status, 200);
    assert_eq!(counts["total"], 1);
    assert_eq!(counts["rooms"][0]["room"], room.id.as_str());
    let (status, marker) = app
        .call(
            Method::PUT,
            &format!("/rooms/{}/members/bob/read", room.id),
            Some(json!({"seq": 1000})),
        )
        .await;
    assert_eq!(status, 200, "{marker}");
    assert_eq!(
        (marker["read"].as_u64(), marker["unread"].as_u64()),
        (Some(7), Some(0))
    );
    assert_eq!(
        read_of(&mut bob2, "bob").await,
        7,
        "devices hear the API's marker too"
    );

    // A `read` may overtake the `sync` of a fresh connection: it counts.
    alice.say(&room.id, "after the api").await;
    let mut fresh = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    fresh.auth(&app.token("bob")).await;
    fresh
        .send(&ClientFrame::Read {
            room: room.id.clone(),
            seq: 8,
        })
        .await;
    assert_eq!(read_of(&mut bob2, "bob").await, 8, "read before any sync");
    let rooms = fresh.sync(Vec::new()).await;
    let counted = rooms.iter().find(|r| r.id == room.id).expect("the room");
    assert_eq!(
        (counted.read, counted.unread),
        (8, 0),
        "the sync that follows counts with it"
    );

    // Not a member: refused on both sides.
    let (mut eve, _) = app.login("eve").await;
    eve.send(&ClientFrame::Read {
        room: room.id.clone(),
        seq: 1,
    })
    .await;
    match eve.recv().await {
        ServerFrame::Error {
            code,
            room: Some(r),
            ..
        } => {
            assert_eq!((code, r), (ErrorCode::NotMember, room.id.clone()));
        }
        other => panic!("expected not_member, got {other:?}"),
    }
    let (status, body) = app
        .call(
            Method::PUT,
            &format!("/rooms/{}/members/eve/read", room.id),
            Some(json!({"seq": 1})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_member"))
    );
    let (status, _) = app
        .call(
            Method::POST,
            "/rooms",
            Some(json!({"title": "X", "members": [{"id": "zed", "read": 3}]})),
        )
        .await;
    assert_eq!(status, 400, "a marker is not set by creating a room");
    crate::assert_no_panics();
    app.stop().await;
}

/// `client` reads `room` up to `seq`, once it has the event.
async fn reads_up_to(client: &mut Client, room: &RoomId, seq: u64) {
    client
        .recv_until(|f| matches!(f, ServerFrame::Event { event } if event.seq == seq))
        .await;
    client
        .send(&ClientFrame::Read {
            room: room.clone(),
            seq,
        })
        .await;
}

async fn a_receipt_reaches_the_authors_of_what_it_passed(db: Db) {
    let app = spawn_app(db).await;
    let room = app.group("Team", &["alice", "bob", "carol"]).await;
    let (mut alice, _) = app.login("alice").await;
    let (mut bob, _) = app.login("bob").await;
    let (mut carol, _) = app.login("carol").await;
    let is_read = |f: &ServerFrame| matches!(f, ServerFrame::Read { .. });

    // Bob reads past Alice's message: she hears it, Carol does not.
    let first = alice.say(&room.id, "from alice").await;
    reads_up_to(&mut bob, &room.id, first).await;
    assert_eq!(read_of(&mut alice, "bob").await, first);
    let seen = frames_until_message(&mut alice, &mut carol, &room.id).await;
    assert!(!seen.iter().any(is_read), "not Carol's message: {seen:?}");
    // (That made one more message of Alice's: Bob reads it too.)
    let marker = first + 1;
    reads_up_to(&mut bob, &room.id, marker).await;
    assert_eq!(read_of(&mut alice, "bob").await, marker);

    // Past Carol's: she hears it, Alice does not.
    let hers = carol.say(&room.id, "from carol").await;
    reads_up_to(&mut bob, &room.id, hers).await;
    assert_eq!(read_of(&mut carol, "bob").await, hers);
    let seen = frames_until_message(&mut carol, &mut alice, &room.id).await;
    assert!(!seen.iter().any(is_read), "not Alice's message: {seen:?}");
}

async fn receipts_off_show_a_marker_to_its_owner_only(db: Db) {
    let app = spawn_app(db).await;
    let settings = json!({"receipts": {"dialog": true, "group": false}, "presence": true});
    let (status, back) = app
        .call(Method::PUT, "/settings", Some(settings.clone()))
        .await;
    assert_eq!((status, &back), (200, &settings));
    let (_, got) = app.call(Method::GET, "/settings", None).await;
    assert_eq!(got, settings);
    let (status, _) = app
        .call(Method::PUT, "/settings", Some(json!({"presence": true})))
        .await;
    assert_eq!(status, 400, "the whole object is required");

    let room = app.group("Support", &["alice", "bob"]).await;
    let (mut alice, _) = app.login("alice").await;
    alice.say(&room.id, "read me").await;
    let (mut bob, _) = app.login("bob").await;
    let (mut bob2, _) = app.login("bob").await;
    bob.send(&ClientFrame::Read {
        room: room.id.clone(),
        seq: 1,
    })
    .await;
    assert_eq!(
        read_of(&mut bob2, "bob").await,
        1,
        "his own devices still agree"
    );
    let seen = frames_until_message(&mut bob, &mut alice, &room.id).await;
    assert!(
        !seen.iter().any(|f| matches!(f, ServerFrame::Read { .. })),
        "alice sees no receipt: {seen:?}"
    );
    let (_, rooms) = app.login("alice").await;
    let listed = room_of(&rooms, &room.id);
    let markers: Vec<_> = listed
        .members
        .iter()
        .map(|m| (m.id.as_str(), m.read))
        .collect();
    assert_eq!(
        markers,
        [("alice", Some(0)), ("bob", None)],
        "only her own marker"
    );

    // Dialogs still show them.
    let dialog = app.dialog("alice", "bob").await;
    let (mut alice, _) = app.login("alice").await;
    let (mut bob, _) = app.login("bob").await;
    alice.say(&dialog.id, "hello").await;
    bob.send(&ClientFrame::Read {
        room: dialog.id.clone(),
        seq: 1,
    })
    .await;
    assert_eq!(read_of(&mut alice, "bob").await, 1);
    crate::assert_no_panics();
    app.stop().await;
}

async fn a_cursor_from_another_history_gets_the_room_afresh(db: Db) {
    let app = spawn_app(db).await;
    let room = app.dialog("alice", "bob").await;
    let (mut alice, _) = app.login("alice").await;
    for i in 1..=3 {
        alice.say(&room.id, &format!("m{i}")).await;
    }
    let stored = app.messages(&room.id, "").await;
    let ts2 = stored["events"][1]["ts"].as_i64().expect("a time");

    let sync_page = |cursor: Cursor| async {
        let mut client = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
        client.auth(&app.token("bob")).await;
        client
            .send(&ClientFrame::Sync {
                cursors: vec![cursor],
            })
            .await;
        match client
            .recv_until(|f| matches!(f, ServerFrame::Page { .. }))
            .await
        {
            ServerFrame::Page { events, reset, .. } => {
                (events.iter().map(|e| e.seq).collect::<Vec<_>>(), reset)
            }
            _ => unreachable!(),
        }
    };
    // Ahead of the room: a restored database.
    assert_eq!(
        sync_page(Cursor::new(room.id.clone(), 5)).await,
        (vec![1, 2, 3], true)
    );
    // The same seq, another event there.
    let other = Cursor {
        ts: Some(ts2 + 1),
        ..Cursor::new(room.id.clone(), 2)
    };
    assert_eq!(sync_page(other).await, (vec![1, 2, 3], true));
    // The same event: catch-up as usual.
    let same = Cursor {
        ts: Some(ts2),
        ..Cursor::new(room.id.clone(), 2)
    };
    assert_eq!(sync_page(same).await, (vec![3], false));
    assert_eq!(
        sync_page(Cursor::new(room.id.clone(), 2)).await,
        (vec![3], false)
    );
    crate::assert_no_panics();
    app.stop().await;
}

/// The next `presence` entry about `who`.
async fn presence_of(client: &mut Client, who: &str) -> natter_shared::Presence {
    loop {
        if let ServerFrame::Presence { users } = client.recv().await
            && let Some(p) = users.into_iter().find(|p| p.user.as_str() == who)
        {
            return p;
        }
    }
}

async fn login_watching(app: &TestApp, who: &str) -> Client {
    let mut client = Client::connect(app, &app.site.id, Some(ORIGIN)).await;
    client.presence = true;
    client.auth(&app.token(who)).await;
    client.send(&ClientFrame::Sync { cursors: vec![] }).await;
    client
}

async fn room_mates_see_who_is_online_with_a_grace(db: Db) {
    // A grace of 2 s: a reload (a new connection, signed in and synced)
    // fits in it even on a busy machine.
    let app = spawn_app_with(db, |c| c.people.presence_grace_secs = 2).await;
    app.dialog("alice", "bob").await;
    app.dialog("carol", "dave").await;
    let mut alice = login_watching(&app, "alice").await;
    let first = presence_of(&mut alice, "bob").await;
    assert_eq!((first.online, first.last_seen), (false, None), "never seen");

    let (bob, _) = app.login("bob").await;
    assert!(presence_of(&mut alice, "bob").await.online);
    let mut carol = login_watching(&app, "carol").await;

    // A reload within the grace does not flicker.
    drop(bob);
    let (bob, _) = app.login("bob").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (probe, _) = app.login("bob").await;
    drop(probe);
    let before = now_secs() * 1000;
    drop(bob);
    let gone = presence_of(&mut alice, "bob").await;
    assert!(!gone.online, "offline after the grace: {gone:?}");
    assert!(gone.last_seen.is_some_and(|t| t >= before), "{gone:?}");

    let mut again = login_watching(&app, "alice").await;
    let later = presence_of(&mut again, "bob").await;
    assert_eq!(
        (later.online, later.last_seen.is_some()),
        (false, true),
        "last seen is kept"
    );
    // Carol shares no room with bob: of all his comings and goings, she
    // hears nothing; of dave, her room-mate, she does.
    let (mut dave_client, _) = app.login("dave").await;
    loop {
        if let ServerFrame::Presence { users } = carol.recv().await {
            assert!(users.iter().all(|p| p.user.as_str() != "bob"), "{users:?}");
            if users.iter().any(|p| p.user.as_str() == "dave" && p.online) {
                break;
            }
        }
    }

    // A site that turns presence off sends none.
    let off = json!({"receipts": {"dialog": true, "group": true}, "presence": false});
    let (status, _) = app.call(Method::PUT, "/settings", Some(off)).await;
    assert_eq!(status, 200);
    let mut quiet = login_watching(&app, "alice").await;
    let seen = frames_until_message(
        &mut dave_client,
        &mut quiet,
        &app.dialog("alice", "dave").await.id,
    )
    .await;
    assert!(
        !seen
            .iter()
            .any(|f| matches!(f, ServerFrame::Presence { .. })),
        "{seen:?}"
    );
    crate::assert_no_panics();
    app.stop().await;
}

/// Carol joins a group through the API while online: its members see her
/// online at once, and she is told who of them is. She leaves the group
/// she shared with Bob: when she goes, Bob, no longer her room-mate,
/// hears nothing.
async fn presence_follows_the_rooms_people_join_and_leave(db: Db) {
    let app = spawn_app_with(db, |c| c.people.presence_grace_secs = 1).await;
    let with_bob = app.group("Earlier", &["bob", "carol"]).await;
    let group = app.group("Later", &["dave", "erin"]).await;
    let mut carol = login_watching(&app, "carol").await;
    let mut dave = login_watching(&app, "dave").await;
    let mut bob = login_watching(&app, "bob").await;
    assert!(presence_of(&mut bob, "carol").await.online);

    let path = format!("/rooms/{}/members", group.id);
    let body = json!({"user": {"id": "carol", "name": "Carol"}});
    let (status, _) = app.call(Method::POST, &path, Some(body)).await;
    assert_eq!(status, 201, "carol joins");
    assert!(
        presence_of(&mut dave, "carol").await.online,
        "dave sees her"
    );
    assert!(
        presence_of(&mut carol, "dave").await.online,
        "she sees dave"
    );

    let path = format!("/rooms/{}/members/carol", with_bob.id);
    let (status, _) = app.call(Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "carol leaves the group she shared with bob");
    drop(carol);
    let gone = presence_of(&mut dave, "carol").await;
    assert!(!gone.online, "dave sees her go: {gone:?}");
    // Bob hears nothing of her any more (a message of his own ends the
    // wait: the server handles frames in order).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ping = ClientFrame::Ping { nonce: Some(7) };
    bob.send(&ping).await;
    loop {
        match bob.recv().await {
            ServerFrame::Presence { users } => {
                assert!(
                    users.iter().all(|p| p.user.as_str() != "carol"),
                    "{users:?}"
                );
            }
            ServerFrame::Pong { .. } => break,
            _ => {}
        }
    }
    crate::assert_no_panics();
    app.stop().await;
}

/// A client that holds the room's real history is never told to drop it:
/// not after acks, live events, resyncs or a restart in the middle.
async fn a_client_of_the_real_history_is_never_sent_it_afresh(db: Db) {
    let app = spawn_app_with(db, |c| c.limits.conn_queue = 4).await;
    let room = app.group("Crew", &["alice", "bob"]).await;
    let mut alice = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    alice.auth(&app.token("alice")).await;
    alice.send(&ClientFrame::Sync { cursors: vec![] }).await;
    let writer = app.api_client();
    let mut cursor = Cursor::new(room.id.clone(), 0);
    let mut resets = 0;
    for round in 0..20 {
        for i in 0..10 {
            writer
                .post(room.id.as_str(), "bob", &format!("r{round} m{i}"))
                .await;
        }
        let seq = alice.say(&room.id, &format!("mine {round}")).await;
        // Whatever came, the client resyncs with the cursor it holds.
        let events = {
            let mut c = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
            c.auth(&app.token("alice")).await;
            c.send(&ClientFrame::Sync {
                cursors: vec![cursor.clone()],
            })
            .await;
            let mut events = Vec::new();
            loop {
                match c.recv().await {
                    ServerFrame::Page {
                        events: e, reset, ..
                    } => {
                        resets += usize::from(reset);
                        events.extend(e);
                    }
                    ServerFrame::Synced {} => break,
                    _ => {}
                }
            }
            events
        };
        if let Some(last) = events.last() {
            cursor = Cursor {
                ts: Some(last.ts),
                ..Cursor::new(room.id.clone(), last.seq)
            };
        }
        assert!(cursor.seq >= seq);
    }
    assert_eq!(resets, 0, "a real history is never sent afresh");
    app.stop().await;
}

/// Every page of `members` frames for `room`, `limit` at a time.
async fn all_members(client: &mut Client, room: &RoomId, limit: u32) -> Vec<String> {
    let (mut ids, mut after) = (Vec::new(), None);
    loop {
        let ask = ClientFrame::Members {
            room: room.clone(),
            after: after.take(),
            limit: Some(limit),
        };
        client.send(&ask).await;
        let ServerFrame::Members { members, next, .. } = client
            .recv_until(|f| matches!(f, ServerFrame::Members { .. }))
            .await
        else {
            unreachable!()
        };
        assert!(members.len() <= limit as usize);
        ids.extend(members.into_iter().map(|m| m.id.as_str().to_string()));
        match next {
            Some(next) => after = Some(next),
            None => return ids,
        }
    }
}

async fn a_large_room_lists_its_readers_and_pages_the_rest(db: Db) {
    let app = spawn_app_with(db, |c| c.limits.members_listed = 10).await;
    let names: Vec<String> = (0..250).map(|i| format!("m{i:03}")).collect();
    let mut people: Vec<&str> = names.iter().map(String::as_str).collect();
    people.extend(["alice", "bob"]);
    let room = app.group("Assembly", &people).await;
    assert_eq!((room.member_count, room.members.len()), (252, 10));
    let (mut alice, _) = app.login("alice").await;
    for i in 0..3 {
        alice.say(&room.id, &format!("hello {i}")).await;
    }
    // Bob reads furthest: he is listed whoever else is.
    let path = format!("/rooms/{}/members/bob/read", room.id);
    let (status, _) = app.call(Method::PUT, &path, Some(json!({"seq": 3}))).await;
    assert_eq!(status, 200);

    let (mut carol, rooms) = app.login("m007").await;
    let listed = room_of(&rooms, &room.id);
    assert_eq!((listed.member_count, listed.members.len()), (252, 10));
    let ids: Vec<&str> = listed.members.iter().map(|m| m.id.as_str()).collect();
    assert!(ids.contains(&"bob"), "{ids:?}");
    assert!(ids.is_sorted(), "{ids:?}");

    let ids = all_members(&mut carol, &room.id, 100).await;
    let mut want: Vec<String> = people.iter().map(|p| p.to_string()).collect();
    want.sort();
    assert_eq!(ids, want, "every member once, by id");

    // Someone outside the room learns nothing.
    let (mut eve, _) = app.login("eve").await;
    eve.send(&ClientFrame::Members {
        room: room.id.clone(),
        after: None,
        limit: None,
    })
    .await;
    match eve
        .recv_until(|f| matches!(f, ServerFrame::Error { .. }))
        .await
    {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::NotMember),
        _ => unreachable!(),
    }

    // The API pages them too, and the room itself lists ten.
    let (status, info) = app
        .call(Method::GET, &format!("/rooms/{}", room.id), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(info["member_count"], 252);
    assert_eq!(info["members"].as_array().map(Vec::len), Some(10));
    let (mut seen, mut after) = (Vec::new(), String::new());
    loop {
        let path = format!("/rooms/{}/members?limit=60&after={after}", room.id);
        let path = if after.is_empty() {
            path.replace("&after=", "")
        } else {
            path
        };
        let (status, page) = app.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{page}");
        let members = page["members"].as_array().expect("members");
        seen.extend(
            members
                .iter()
                .map(|m| m["id"].as_str().expect("id").to_string()),
        );
        match page["next"].as_str() {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, want);
    let path = format!("/rooms/{}/members?limit=501", room.id);
    let (status, body) = app.call(Method::GET, &path, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_input"))
    );
    app.stop().await;
}
