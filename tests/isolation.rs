//! A user sees and writes only the rooms of their own site they are a
//! member of; checked on every frame.

use natter_shared::{ClientFrame, Cursor, ErrorCode, EventKind, ServerFrame};
use natter_tests::*;

async fn expect_not_member(client: &mut Client) {
    match client.recv().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::NotMember),
        other => panic!("expected not_member, got {other:?}"),
    }
}

#[tokio::test]
async fn a_user_cannot_read_or_post_to_a_room_they_are_not_in() {
    let app = spawn_app(Db::Sqlite).await;
    let private = app.dialog("alice", "bob").await;
    let (mut alice, _) = app.login("alice").await;
    alice.say(&private.id, "secret").await;

    let (mut mallory, rooms) = app.login("mallory").await;
    assert!(rooms.is_empty(), "mallory is told of no room");
    mallory
        .send(&ClientFrame::Send {
            client_id: cid(),
            room: private.id.clone(),
            body: "let me in".into(),
            files: Vec::new(),
        })
        .await;
    expect_not_member(&mut mallory).await;
    mallory
        .send(&ClientFrame::History {
            room: private.id.clone(),
            before: 100,
            limit: None,
        })
        .await;
    expect_not_member(&mut mallory).await;
    mallory
        .send(&ClientFrame::Typing {
            room: private.id.clone(),
        })
        .await;
    expect_not_member(&mut mallory).await;
    // A cursor for someone else's room gets an error, not its events.
    mallory
        .send(&ClientFrame::Sync {
            cursors: vec![Cursor::new(private.id.clone(), 0)],
        })
        .await;
    let mut saw_error = false;
    loop {
        match mallory.recv().await {
            ServerFrame::Rooms { rooms } => assert!(rooms.is_empty()),
            ServerFrame::Error {
                code: ErrorCode::NotMember,
                room,
                ..
            } => {
                assert_eq!(room.as_ref(), Some(&private.id));
                saw_error = true;
            }
            ServerFrame::Synced {} => break,
            other => panic!("mallory must not receive {other:?}"),
        }
    }
    assert!(saw_error);
    // Nothing mallory did reached the room.
    alice.say(&private.id, "still private").await;
    let page = app.messages(&private.id, "").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    crate::assert_no_panics();
    app.stop().await;
}

#[tokio::test]
async fn a_user_of_another_site_cannot_reach_any_room_of_this_site() {
    let app = spawn_app(Db::Sqlite).await;
    let room = app.dialog("alice", "bob").await;
    // "alice" also exists on the other site: same user id, different person.
    let mut other_alice = Client::connect(&app, &app.other.id, Some("https://other.example")).await;
    other_alice.auth(&token_for(&app.other, "alice", 600)).await;
    let rooms = other_alice.sync(vec![]).await;
    assert!(
        rooms.is_empty(),
        "the other site's alice sees none of this site's rooms"
    );
    other_alice
        .send(&ClientFrame::Send {
            client_id: cid(),
            room: room.id.clone(),
            body: "cross-site".into(),
            files: Vec::new(),
        })
        .await;
    expect_not_member(&mut other_alice).await;
    other_alice
        .send(&ClientFrame::History {
            room: room.id.clone(),
            before: 10,
            limit: None,
        })
        .await;
    expect_not_member(&mut other_alice).await;
    // Nor does the other site's API key reach it.
    let res = app
        .api_as(
            &app.other,
            reqwest::Method::GET,
            &format!("/rooms/{}", room.id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_member_removed_while_connected_reads_no_more_history() {
    let app = spawn_app(Db::Sqlite).await;
    let room = app.group("team", &["alice", "bob"]).await;
    let (mut alice, _) = app.login("alice").await;
    alice.say(&room.id, "before").await;
    let (mut bob, _) = app.login("bob").await;
    let history = ClientFrame::History {
        room: room.id.clone(),
        before: 100,
        limit: None,
    };
    bob.send(&history).await;
    match bob.recv().await {
        ServerFrame::History { events, .. } => assert!(!events.is_empty()),
        other => panic!("expected history, got {other:?}"),
    }
    let res = app
        .api(
            reqwest::Method::DELETE,
            &format!("/rooms/{}/members/bob", room.id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    bob.recv_until(|f| {
        matches!(f, ServerFrame::Event { event } if matches!(
            &event.kind,
            EventKind::MemberLeft { user } if user.as_str() == "bob"
        ))
    })
    .await;
    bob.send(&history).await;
    expect_not_member(&mut bob).await;
    app.stop().await;
}
