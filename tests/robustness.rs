//! Bad input gets a clear answer and the connection survives; limits hold.

use futures_util::{SinkExt, StreamExt};
use natter_shared::{ClientFrame, ErrorCode, ServerFrame};
use natter_tests::*;
use tokio_tungstenite::tungstenite;

#[tokio::test]
async fn malformed_and_unknown_frames_get_an_error_and_the_connection_survives() {
    let app = spawn_app(Db::Sqlite).await;
    let room = app.dialog("alice", "bob").await;
    let (mut alice, _) = app.login("alice").await;
    let cases = [
        ("{not json", ErrorCode::BadFrame),
        (
            r#"{"type":"teleport","to":"mars"}"#,
            ErrorCode::UnknownFrame,
        ),
        (r#"{"type":"send","room":"x"}"#, ErrorCode::BadFrame),
        (
            r#"{"type":"send","client_id":"not-a-uuid","room":"x","body":"b"}"#,
            ErrorCode::BadFrame,
        ),
        (
            r#"{"type":"send","client_id":"0191e6b2-7c3a-7d4e-8f00-123456789abc","room":"<script>","body":"b"}"#,
            ErrorCode::BadFrame,
        ),
        (r#"[1,2,3]"#, ErrorCode::BadFrame),
        (r#""#, ErrorCode::BadFrame),
    ];
    for (text, code) in cases {
        alice.send_text(text).await;
        match alice.recv().await {
            ServerFrame::Error { code: got, .. } => assert_eq!(got, code, "for {text:?}"),
            other => panic!("expected an error for {text:?}, got {other:?}"),
        }
    }
    // Bodies: empty and oversized are refused with the send's client id.
    for body in [String::from("   "), "x".repeat(16 * 1024 + 1)] {
        let id = cid();
        alice
            .send(&ClientFrame::Send {
                client_id: id,
                room: room.id.clone(),
                body,
                files: Vec::new(),
            })
            .await;
        match alice.recv().await {
            ServerFrame::Error {
                code, client_id, ..
            } => {
                assert_eq!(code, ErrorCode::BodyInvalid);
                assert_eq!(client_id, Some(id));
            }
            other => panic!("expected body_invalid, got {other:?}"),
        }
    }
    // A binary frame too.
    use futures_util::SinkExt;
    alice
        .ws
        .send(tokio_tungstenite::tungstenite::Message::Binary(
            vec![1, 2, 3].into(),
        ))
        .await
        .unwrap();
    assert!(matches!(
        alice.recv().await,
        ServerFrame::Error {
            code: ErrorCode::BadFrame,
            ..
        }
    ));
    // Absurd cursors and history bounds are answered, not a crash.
    alice
        .send(&ClientFrame::Sync {
            cursors: vec![natter_shared::Cursor::new(room.id.clone(), u64::MAX)],
        })
        .await;
    alice
        .recv_until(|f| matches!(f, ServerFrame::Synced {}))
        .await;
    alice
        .send(&ClientFrame::History {
            room: room.id.clone(),
            before: u64::MAX,
            limit: Some(u32::MAX),
        })
        .await;
    assert!(matches!(alice.recv().await, ServerFrame::History { .. }));
    // Still alive and well.
    assert_eq!(alice.say(&room.id, "still here").await, 1);
    crate::assert_no_panics();
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009() {
    let app = spawn_app_with(Db::Sqlite, |c| c.limits.max_frame_bytes = 4096).await;
    let room = app.dialog("alice", "bob").await;
    let (mut alice, _) = app.login("alice").await;
    alice
        .send(&ClientFrame::Send {
            client_id: cid(),
            room: room.id.clone(),
            body: "y".repeat(5000),
            files: Vec::new(),
        })
        .await;
    let close = alice.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
    // Before authentication too.
    let mut early = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    early.send_text(&"q".repeat(5000)).await;
    let close = early.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1009);
    // The server is fine: others still chat.
    let (mut bob, _) = app.login("bob").await;
    assert_eq!(bob.say(&room.id, "ok").await, 1);
    crate::assert_no_panics();
    app.stop().await;
}

/// The next raw WebSocket message, controls included.
async fn raw_next(client: &mut Client) -> Option<tungstenite::Message> {
    tokio::time::timeout(WAIT, client.ws.next())
        .await
        .expect("a message within the wait")
        .and_then(Result::ok)
}

#[tokio::test]
async fn the_socket_speaks_websocket_as_rfc_6455_says() {
    use tungstenite::protocol::frame::Frame;
    use tungstenite::protocol::frame::coding::{Data, OpCode};
    let app = spawn_app(Db::Sqlite).await;
    let room = app.dialog("alice", "bob").await;
    let (mut alice, _) = app.login("alice").await;

    // A message in three fragments, a ping between them.
    let json = serde_json::to_string(&ClientFrame::Send {
        client_id: cid(),
        room: room.id.clone(),
        body: "in three parts".into(),
        files: Vec::new(),
    })
    .expect("encode");
    let (head, tail) = json.split_at(10);
    let (middle, tail) = tail.split_at(10);
    let fragments = [
        Frame::message(head.to_string(), OpCode::Data(Data::Text), false),
        Frame::ping("between"),
        Frame::message(middle.to_string(), OpCode::Data(Data::Continue), false),
        Frame::message(tail.to_string(), OpCode::Data(Data::Continue), true),
    ];
    for fragment in fragments {
        alice
            .ws
            .feed(tungstenite::Message::Frame(fragment))
            .await
            .expect("feed");
    }
    alice.ws.flush().await.expect("flush");
    // The ping is answered with its payload, and the message is stored.
    let mut ponged = false;
    loop {
        match raw_next(&mut alice).await.expect("the connection stays") {
            tungstenite::Message::Pong(payload) => {
                assert_eq!(&payload[..], b"between");
                ponged = true;
            }
            tungstenite::Message::Text(text) => {
                if let Ok(ServerFrame::Ack { seq, .. }) = serde_json::from_str(&text) {
                    assert_eq!(seq, 1);
                    break;
                }
            }
            _ => {}
        }
    }
    assert!(ponged, "the ping came before the message's last fragment");

    // A frame with a reserved bit (no extension was agreed) ends the
    // connection with 1002.
    let mut odd = Frame::message("{}", OpCode::Data(Data::Text), true);
    odd.header_mut().rsv1 = true;
    alice
        .ws
        .send(tungstenite::Message::Frame(odd))
        .await
        .expect("send");
    let close = alice.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 1002);

    // A client that closes is answered with a close.
    let (mut bob, _) = app.login("bob").await;
    bob.ws.close(None).await.expect("close");
    match raw_next(&mut bob).await {
        Some(tungstenite::Message::Close(frame)) => {
            assert_eq!(frame.map(|f| u16::from(f.code)), Some(1000));
        }
        other => panic!("the server answers a close with one, not {other:?}"),
    }
    crate::assert_no_panics();
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_answering_is_dropped_by_the_heartbeat() {
    let app = spawn_app_with(Db::Sqlite, |c| c.limits.heartbeat_secs = 1).await;
    let (mut alice, _) = app.login("alice").await;
    // Not reading means not answering pings either, so Alice's socket is
    // left alone until the server has dropped her (after two heartbeats of
    // silence); the metrics tell when, without touching her connection.
    eventually(WAIT, "the server to drop the silent client", async || {
        let text = app.metrics().await;
        text.lines()
            .any(|l| l == "natter_connections_open 0")
            .then_some(())
    })
    .await;
    let close = alice.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4000);
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_falls_behind_is_told_to_resync_and_catches_up() {
    let app = spawn_app_with(Db::Sqlite, |c| c.limits.conn_queue = 4).await;
    let room = app.group("Firehose", &["alice", "bob"]).await;
    let (mut bob, _) = app.login("bob").await;
    // Bob stops reading while big messages pour in, until the socket
    // buffers and then his queue overflow.
    let body = "z".repeat(15 * 1024);
    let mut posts = Vec::new();
    for _ in 0..8 {
        let app_url = app.url(&format!("/api/v1/rooms/{}/messages", room.id));
        let key = app.site.api_key.clone();
        let http = app.http.clone();
        let body = body.clone();
        posts.push(tokio::spawn(async move {
            for _ in 0..60 {
                let res = http
                    .post(&app_url)
                    .bearer_auth(&key)
                    .json(&serde_json::json!({"from": "alice", "body": body}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 201);
            }
        }));
    }
    for p in posts {
        p.await.unwrap();
    }
    let mut last = 0;
    loop {
        match bob.recv().await {
            ServerFrame::Event { event } => {
                assert_eq!(
                    event.seq,
                    last + 1,
                    "live events stay gap-free until the resync"
                );
                last = event.seq;
            }
            ServerFrame::Resync { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(last < 480, "bob fell behind and was told so");
    let (_, events) = bob
        .sync_collect(vec![natter_shared::Cursor::new(room.id.clone(), last)])
        .await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (last + 1..=480).collect::<Vec<_>>(),
        "the resync fills the gap exactly"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_connection_limit_refuses_with_503_and_metrics_count() {
    let app = spawn_app_with(Db::Sqlite, |c| c.limits.max_connections = 2).await;
    let room = app.dialog("alice", "bob").await;
    let (mut alice, _) = app.login("alice").await;
    let (_bob, _) = app.login("bob").await;
    let refused =
        tokio_tungstenite::connect_async(ws_request(&app, &app.site.id, Some(ORIGIN))).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(res)) => assert_eq!(res.status(), 503),
        other => panic!("a third connection must be refused, got {other:?}"),
    }
    alice.say(&room.id, "counted").await;
    let text = app.metrics().await;
    for line in [
        "natter_connections_open 2",
        "natter_connections_refused_total 1",
        "natter_events_committed_total 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    app.stop().await;
}

/// What axum refuses before any handler runs (a path that is not UTF-8,
/// a query field given twice, a method a route does not take) is a JSON
/// error like every other, with its status and headers.
#[tokio::test]
async fn refusals_made_before_a_handler_are_json_too() {
    let app = spawn_app(Db::Sqlite).await;
    let http = reqwest::Client::new();
    let site = app.site.id.as_str();
    let cases = [
        (
            reqwest::Method::GET,
            "/api/v1/rooms/%FF".to_string(),
            true,
            400,
        ),
        (reqwest::Method::GET, "/files/%FF".to_string(), false, 400),
        (
            reqwest::Method::GET,
            format!("/ws?site={site}&site={site}"),
            false,
            0,
        ),
        (reqwest::Method::DELETE, "/session".to_string(), false, 405),
        (reqwest::Method::PUT, "/api/v1/rooms".to_string(), true, 405),
    ];
    for (method, path, with_key, status) in cases {
        let request = if with_key {
            app.api(method.clone(), path.trim_start_matches("/api/v1"))
        } else {
            http.request(method.clone(), app.url(&path))
        };
        let res = request.send().await.expect("answered");
        // 0: some client error (a plain GET of /ws is no upgrade either).
        if status == 0 {
            assert!(
                res.status().is_client_error(),
                "{method} {path}: {}",
                res.status()
            );
        } else {
            assert_eq!(res.status().as_u16(), status, "{method} {path}");
        }
        let allow = res.headers().get("allow").cloned();
        let body: serde_json::Value = res
            .json()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON: {e}"));
        let code = body["error"]["code"].as_str().unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !code.is_empty() && !message.is_empty(),
            "{method} {path}: {body}"
        );
        if status == 405 {
            assert!(allow.is_some(), "{method} {path}: the methods it takes");
        }
    }
    app.stop().await;
}
