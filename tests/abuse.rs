//! Exhaustion: caps on connections per address and per user, writes to
//! clients that stop reading, slow HTTP, and rate limits that hold
//! requests back instead of refusing them.

use crate::assert_no_panics;
use futures_util::{SinkExt, StreamExt};
use natter_shared::{ClientFrame, ErrorCode, EventKind, ServerFrame, close};
use natter_tests::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite;

/// The upgrade request as if a proxy in front said the client is `ip`.
fn from_address(app: &TestApp, ip: &str) -> tungstenite::handshake::client::Request {
    let mut request = ws_request(app, &app.site.id, Some(ORIGIN));
    request.headers_mut().insert(
        "x-forwarded-for",
        format!("10.9.9.9, {ip}").parse().expect("header"),
    );
    request
}

async fn open(request: tungstenite::handshake::client::Request) -> Result<Client, (u16, String)> {
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(Client {
            ws,
            presence: false,
        }),
        Err(tungstenite::Error::Http(response)) => {
            let status = response.status().as_u16();
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned());
            Err((status, body.unwrap_or_default()))
        }
        Err(err) => panic!("upgrade failed without an HTTP answer: {err}"),
    }
}

#[tokio::test]
async fn connections_are_capped_per_address_and_per_user() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.guard.max_connections_per_ip = 4;
        c.guard.client_ip_header = Some("X-Forwarded-For".into());
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(
            open(from_address(&app, "203.0.113.1"))
                .await
                .expect("under the cap"),
        );
    }
    let (status, body) = match open(from_address(&app, "203.0.113.1")).await {
        Err(refusal) => refusal,
        Ok(_) => panic!("the 5th connection from one address was let in"),
    };
    assert_eq!(status, 429);
    assert!(body.contains("too_many_connections"), "{body}");
    // Another address is not affected, and a slot comes free on close.
    held.push(
        open(from_address(&app, "203.0.113.2"))
            .await
            .expect("another address"),
    );
    drop(held.remove(0));
    eventually(
        Duration::from_secs(5),
        "a closed connection frees its slot",
        async || {
            open(from_address(&app, "203.0.113.1"))
                .await
                .ok()
                .map(|c| held.push(c))
        },
    )
    .await;
    drop(held);

    // 16 connections of one user (from different addresses) are served;
    // the 17th is told why and closed.
    let token = app.token("alice");
    let mut alice = Vec::new();
    for i in 0..16 {
        let mut client = open(from_address(&app, &format!("198.51.100.{i}")))
            .await
            .expect("upgrade");
        client.auth(&token).await;
        alice.push(client);
    }
    let mut extra = open(from_address(&app, "198.51.100.99"))
        .await
        .expect("upgrade");
    extra
        .send(&ClientFrame::Auth {
            token: token.clone(),
        })
        .await;
    match extra.recv().await {
        ServerFrame::Error { code, message, .. } => {
            assert_eq!(code, ErrorCode::TooManyConnections);
            assert!(message.contains("16"), "{message}");
        }
        other => panic!("expected too_many_connections, got {other:?}"),
    }
    let frame = extra.closed().await.expect("a close frame");
    assert_eq!(u16::from(frame.code), close::TOO_MANY);
    // Bob is not affected by Alice's count.
    let mut bob = open(from_address(&app, "198.51.100.200"))
        .await
        .expect("upgrade");
    bob.auth(&app.token("bob")).await;
    assert!(app.metric("natter_connections_refused_total").await >= 2);
    drop((alice, bob));
    app.stop().await;
}

/// A WebSocket whose receive buffer is tiny and that is never read.
async fn stuck_client(app: &TestApp) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(2048).expect("small buffer");
    let tcp = socket.connect(app.addr).await.expect("connect");
    let request = ws_request(app, &app.site.id, Some(ORIGIN));
    let (mut ws, _) = tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("upgrade");
    let send =
        |frame: &ClientFrame| Message::Text(serde_json::to_string(frame).expect("encode").into());
    use tungstenite::Message;
    ws.send(send(&ClientFrame::Auth {
        token: app.token("reader"),
    }))
    .await
    .expect("auth");
    ws.next().await.expect("hello").expect("hello");
    ws
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_never_holds_up_shutdown() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.limits.heartbeat_secs = 2;
        c.guard.write_timeout_secs = 2;
        c.limits.max_body_bytes = 16 * 1024;
    })
    .await;
    let stuck = stuck_reader(&app).await;
    let started = Instant::now();
    eventually(
        Duration::from_secs(20),
        "the stuck connection is dropped",
        async || (app.metric("natter_connections_open").await == 0).then_some(()),
    )
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2 * 2 + 5),
        "dropped after {took:?}"
    );
    drop(stuck);
    app.stop().await;

    // With the default write timeout (30 s), one stuck when the server is
    // told to stop: its write gets a second more, so the server stops in
    // a few seconds, well before it would give up waiting for it (8 s).
    let mut app = spawn_app_with(Db::Sqlite, |c| c.limits.max_body_bytes = 16 * 1024).await;
    let stuck = stuck_reader(&app).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    app.shutdown().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    drop(stuck);
    assert_no_panics();
}

/// A client that asked for megabytes of history (20 pages of ~1.5 MB)
/// and reads none of it.
async fn stuck_reader(app: &TestApp) -> tokio_tungstenite::WebSocketStream<TcpStream> {
    let room = app.group("Big", &["writer", "reader"]).await;
    let big = "x".repeat(15 * 1024);
    let api = app.api_client();
    for _ in 0..100 {
        api.post(room.id.as_str(), "writer", &big).await;
    }
    let history = ClientFrame::History {
        room: room.id.clone(),
        before: 1_000,
        limit: Some(100),
    };
    let text = serde_json::to_string(&history).expect("encode");
    let mut ws = stuck_client(app).await;
    for _ in 0..20 {
        if ws
            .send(tungstenite::Message::Text(text.clone().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    ws
}

/// Reads until the peer closes; `Err` if it is still open after `limit`.
async fn read_to_close(tcp: &mut TcpStream, limit: Duration) -> Result<String, String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut buf)).await {
            Err(_) => return Err(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test]
async fn slow_headers_and_dripped_bodies_are_cut_off() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.guard.header_timeout_secs = 2;
        c.guard.request_timeout_secs = 3;
    })
    .await;
    // Part of a request line, then silence.
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    tcp.write_all(b"GET /healthz HT").await.expect("write");
    let started = Instant::now();
    read_to_close(&mut tcp, Duration::from_secs(10))
        .await
        .expect("a slowloris connection is closed");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed before the timeout"
    );

    // Bodies dripped a byte at a time: to the API, to the panel's
    // sign-in (no account needed to reach it), and to reports.
    let heads = [
        format!(
            "POST /api/v1/rooms HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: 200\r\n\r\n{{",
            app.addr, app.site.api_key
        ),
        format!(
            "POST /admin/sign-in HTTP/1.1\r\nhost: {}\r\n\
             content-type: application/x-www-form-urlencoded\r\ncontent-length: 200\r\n\r\nu",
            app.addr
        ),
        format!(
            "POST /reports HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: 200\r\n\r\n{{",
            app.addr, app.site.api_key
        ),
    ];
    for head in heads {
        let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
        tcp.write_all(head.as_bytes()).await.expect("write");
        let drip = async {
            loop {
                tokio::time::sleep(Duration::from_millis(300)).await;
                if tcp.write_all(b" ").await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), drip).await;
        let answer = read_to_close(&mut tcp, Duration::from_secs(10))
            .await
            .expect("the dripping connection is closed");
        assert!(answer.starts_with("HTTP/1.1 408"), "{head}\n{answer}");
        assert!(answer.contains("\"code\":\"invalid_input\""), "{answer}");
    }
    // Requests at a normal pace still work.
    let res = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("health");
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_send_flood_is_held_back_in_order_while_others_are_served() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.guard.send_rate = 20;
        c.guard.send_burst = 10;
    })
    .await;
    let room = app.group("Flood", &["alice", "bob", "carol"]).await;
    let (mut alice, _) = app.login("alice").await;
    let (mut bob, _) = app.login("bob").await;
    let (mut carol, _) = app.login("carol").await;
    const FLOOD: usize = 40;
    let ids: Vec<_> = (0..FLOOD).map(|_| cid()).collect();
    let flood_began = Instant::now();
    for (i, id) in ids.iter().enumerate() {
        alice
            .send(&ClientFrame::Send {
                client_id: *id,
                room: room.id.clone(),
                body: format!("flood {i}"),
                files: Vec::new(),
            })
            .await;
    }
    // Carol is not held back by Alice's flood.
    let carol_took = Instant::now();
    carol.say(&room.id, "carol meanwhile").await;
    let carol_took = carol_took.elapsed();
    let mut acked = Vec::new();
    let mut throttled = 0;
    while acked.len() < FLOOD {
        match alice.recv().await {
            ServerFrame::Ack { client_id, seq, .. } => acked.push((client_id, seq)),
            ServerFrame::Error {
                code: ErrorCode::TooManyRequests,
                retry_after_ms: Some(ms),
                client_id: None,
                ..
            } => {
                assert!(ms <= 1_000, "told to wait {ms} ms at 20 sends a second");
                throttled += 1;
            }
            ServerFrame::Error { code, message, .. } => panic!("a send failed: {code:?} {message}"),
            _ => {}
        }
    }
    let flood_took = flood_began.elapsed();
    assert!(throttled > 0, "a flood past the burst was never held back");
    let order: Vec<_> = acked.iter().map(|a| a.0).collect();
    assert_eq!(order, ids, "acks in the order sent");
    assert!(
        acked.windows(2).all(|w| w[0].1 < w[1].1),
        "seqs in the order sent"
    );
    // Bob gets every one of them, in order, once.
    let mut bodies = Vec::new();
    while bodies.len() < FLOOD {
        if let ServerFrame::Event { event } = bob.recv().await
            && let EventKind::Message { body, .. } = event.kind
            && body.starts_with("flood")
        {
            bodies.push(body);
        }
    }
    let expected: Vec<_> = (0..FLOOD).map(|i| format!("flood {i}")).collect();
    assert_eq!(bodies, expected);
    // Held back, the flood takes about a second (past its burst, 20 sends
    // a second); Carol's one send does not wait for it. Measured against
    // the flood, so a slow machine slows both.
    assert!(
        carol_took * 2 < flood_took,
        "carol waited {carol_took:?}, the flood took {flood_took:?}"
    );
    assert!(app.metric("natter_throttled_total").await >= throttled);
    app.stop().await;
}

/// A `read` of a room the connection does not follow (no `sync` yet)
/// is looked up in the database: it counts as a request, so a flood of
/// them is held back like one of syncs, and every one is still taken.
#[tokio::test]
async fn reads_before_a_sync_are_throttled_like_requests() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.guard.request_rate = 10;
        c.guard.request_burst = 5;
    })
    .await;
    let room = app.group("Reads", &["alice", "bob"]).await;
    let api = app.api_client();
    api.post(room.id.as_str(), "bob", "hello").await;
    let mut alice = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    alice.auth(&app.token("alice")).await;
    for _ in 0..20 {
        alice
            .send(&ClientFrame::Read {
                room: room.id.clone(),
                seq: 1,
            })
            .await;
    }
    alice.send(&ClientFrame::Ping { nonce: Some(1) }).await;
    let mut throttled = 0;
    loop {
        match alice.recv().await {
            ServerFrame::Error {
                code: ErrorCode::TooManyRequests,
                ..
            } => throttled += 1,
            ServerFrame::Error { code, message, .. } => panic!("{code:?} {message}"),
            ServerFrame::Pong { .. } => break,
            _ => {}
        }
    }
    assert!(
        throttled >= 10,
        "only {throttled} of 20 reads were throttled"
    );
    // Every one was taken in the end: the marker moved. (Past the
    // requests' burst first, so the sync is not held back either.)
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, rooms) = app.login("alice").await;
    let info = rooms.iter().find(|r| r.id == room.id).expect("the room");
    assert_eq!((info.read, info.unread), (1, 0));
    app.stop().await;
}

#[tokio::test]
async fn syncs_from_zero_are_throttled_and_all_answered() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.guard.request_rate = 10;
        c.guard.request_burst = 5;
    })
    .await;
    let room = app.group("Sync", &["alice", "bob"]).await;
    app.api_client()
        .post(room.id.as_str(), "bob", "hello")
        .await;
    let (mut alice, _) = app.login("alice").await;
    for _ in 0..20 {
        alice.send(&ClientFrame::Sync { cursors: vec![] }).await;
    }
    let mut synced = 0;
    let mut throttled = 0;
    while synced < 20 {
        match alice.recv().await {
            ServerFrame::Synced {} => synced += 1,
            ServerFrame::Error {
                code: ErrorCode::TooManyRequests,
                ..
            } => throttled += 1,
            ServerFrame::Error { code, message, .. } => panic!("{code:?} {message}"),
            _ => {}
        }
    }
    assert!(
        throttled >= 10,
        "only {throttled} of 20 syncs were throttled"
    );
    app.stop().await;
}

#[tokio::test]
async fn api_calls_over_the_rate_get_429_with_retry_after() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.guard.api_rate = 1;
        c.guard.api_burst = 3;
    })
    .await;
    let path = "/users/alice/rooms";
    for _ in 0..3 {
        let res = app
            .api(reqwest::Method::GET, path)
            .send()
            .await
            .expect("api");
        assert_eq!(res.status(), 200);
    }
    let res = app
        .api(reqwest::Method::GET, path)
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 429);
    let retry: u64 = res
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .expect("a Retry-After header");
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_many_requests");
    assert!(body["error"]["retry_after_ms"].as_u64().is_some(), "{body}");
    // The other site has its own budget.
    let res = app
        .api_as(&app.other, reqwest::Method::GET, path)
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_user_in_two_thousand_rooms_gets_them_all_in_frames_within_the_limit() {
    let app = spawn_app(Db::Sqlite).await;
    const ROOMS: usize = 2_000;
    let api = app.api_client();
    // Sixteen at a time: the store commits them in groups.
    let mut created = Vec::new();
    for chunk in (0..ROOMS).collect::<Vec<_>>().chunks(16) {
        let batch = chunk.iter().map(|i| {
            let api = api.clone();
            async move {
                let other = format!("u{i}");
                api.dialog(User::id("alice"), User::id(&other)).await.id
            }
        });
        created.extend(futures_util::future::join_all(batch).await);
    }
    let mut alice = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    alice.auth(&app.token("alice")).await;
    alice.send(&ClientFrame::Sync { cursors: vec![] }).await;
    let limit = natter_shared::limits::MAX_FRAME_BYTES;
    let (mut frames, mut listed) = (0, std::collections::HashSet::new());
    loop {
        let Some(Ok(tungstenite::Message::Text(text))) = alice.ws.next().await else {
            panic!("the connection ended during catch-up");
        };
        match serde_json::from_str::<ServerFrame>(&text).expect("a frame") {
            ServerFrame::Rooms { rooms } => {
                assert!(text.len() <= limit, "a rooms frame of {} bytes", text.len());
                frames += 1;
                listed.extend(rooms.into_iter().map(|r| r.id));
            }
            ServerFrame::Synced {} => break,
            _ => {}
        }
    }
    assert!(frames > 1, "{ROOMS} rooms in one frame");
    assert_eq!(listed.len(), ROOMS);
    assert!(created.iter().all(|id| listed.contains(id)));

    // The API lists them in pages.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = match &after {
            Some(id) => format!("/users/alice/rooms?limit=500&after={id}"),
            None => "/users/alice/rooms?limit=500".to_string(),
        };
        let page: serde_json::Value = app
            .api(reqwest::Method::GET, &query)
            .send()
            .await
            .expect("api")
            .json()
            .await
            .expect("json");
        let rooms = page["rooms"].as_array().expect("rooms");
        assert!(rooms.len() <= 500);
        seen.extend(
            rooms
                .iter()
                .map(|r| r["id"].as_str().expect("id").to_string()),
        );
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), ROOMS);
    let res = app
        .api(reqwest::Method::GET, "/users/alice/rooms?limit=5000")
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 400, "over the most rooms a page may hold");
    app.stop().await;
}

#[tokio::test]
async fn a_cursor_far_behind_gets_the_latest_page_afresh() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.limits.page_size = 10;
        c.limits.max_catch_up_pages = 3;
    })
    .await;
    let room = app.dialog("alice", "bob").await;
    let api = app.api_client();
    for i in 0..20 {
        api.post(room.id.as_str(), "bob", &format!("m{i}")).await;
    }
    // 15 behind with pages of 10: caught up in pages.
    let pages = |cursor: u64| {
        let app = &app;
        let room = room.id.clone();
        async move {
            let mut client = Client::connect(app, &app.site.id, Some(ORIGIN)).await;
            client.auth(&app.token("alice")).await;
            let cursor = natter_shared::Cursor::new(room, cursor);
            client
                .send(&ClientFrame::Sync {
                    cursors: vec![cursor],
                })
                .await;
            let mut got = Vec::new();
            loop {
                match client.recv().await {
                    ServerFrame::Page { events, reset, .. } => {
                        got.push((events.first().map(|e| e.seq), events.len(), reset))
                    }
                    ServerFrame::Synced {} => break got,
                    _ => {}
                }
            }
        }
    };
    let near = pages(5).await;
    assert!(near.iter().all(|p| !p.2), "{near:?}");
    assert_eq!(near.iter().map(|p| p.1).sum::<usize>(), 15, "{near:?}");
    for _ in 0..20 {
        api.post(room.id.as_str(), "bob", "more").await;
    }
    // 35 behind is more than 3 pages: the latest page, to start afresh.
    let far = pages(5).await;
    assert_eq!(far, [(Some(31), 10, true)], "{far:?}");
    app.stop().await;
}
