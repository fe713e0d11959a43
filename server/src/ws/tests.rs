//! The connection driven without a socket: frames go in and come out
//! through channels, against a real SQLite store, hub and writer.

use super::serve;
use crate::App;
use crate::auth::{self, Claims};
use crate::config::Config;
use crate::store::{Site, now_ms};
use axum::extract::ws::Message;
use natter_shared::{
    ClientFrame, ClientId, Cursor, ErrorCode, Member, RoomId, ServerFrame, UserId, close,
};
use std::time::Duration;
use tokio::sync::mpsc;

/// The client's end of a connection served over channels.
struct Client {
    to_server: mpsc::Sender<Result<Message, axum::Error>>,
    from_server: mpsc::Receiver<Message>,
}

impl Client {
    /// Serves a connection of `site` over a pair of channels.
    fn connect(app: &App, site: &Site) -> Client {
        let (to_server, inbox) = mpsc::channel::<Result<Message, axum::Error>>(64);
        let (outbox, from_server) = mpsc::channel::<Message>(64);
        let stream = Box::pin(futures_util::stream::unfold(inbox, |mut rx| async move {
            rx.recv().await.map(|m| (m, rx))
        }));
        let sink = Box::pin(futures_util::sink::unfold(
            outbox,
            |tx, msg: Message| async move {
                tx.send(msg).await.map_err(axum::Error::new)?;
                Ok::<_, axum::Error>(tx)
            },
        ));
        tokio::spawn(serve(sink, stream, app.state().clone(), site.clone(), None));
        Client {
            to_server,
            from_server,
        }
    }

    async fn send(&self, frame: &ClientFrame) {
        let text = serde_json::to_string(frame).expect("frames serialise");
        self.to_server
            .send(Ok(Message::Text(text.into())))
            .await
            .expect("the connection is open");
    }

    /// The next message, pings skipped.
    async fn message(&mut self) -> Message {
        loop {
            let next = tokio::time::timeout(Duration::from_secs(120), self.from_server.recv());
            match next.await.expect("an answer within 120 s") {
                Some(Message::Ping(_)) => continue,
                Some(msg) => return msg,
                None => panic!("the connection ended without a close frame"),
            }
        }
    }

    /// The next frame but `presence` (these tests are not about it).
    async fn frame(&mut self) -> ServerFrame {
        loop {
            match self.message().await {
                Message::Text(text) => match serde_json::from_str(&text).expect("a server frame") {
                    ServerFrame::Presence { .. } => continue,
                    frame => return frame,
                },
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    /// The ack of `client_id`; the sender's own live events (which may
    /// come first) are skipped.
    async fn ack_of(&mut self, client_id: ClientId) -> u64 {
        loop {
            match self.frame().await {
                ServerFrame::Event { .. } => continue,
                ServerFrame::Ack {
                    client_id: acked,
                    seq,
                    ..
                } if acked == client_id => return seq,
                other => panic!("expected the ack, got {other:?}"),
            }
        }
    }

    /// Authenticates and syncs with no cursors, up to `synced`.
    async fn sign_in(&mut self, site: &Site, user: &str) {
        self.send(&ClientFrame::Auth {
            token: token(site, user),
        })
        .await;
        assert!(matches!(self.frame().await, ServerFrame::Hello { .. }));
        self.send(&ClientFrame::Sync { cursors: vec![] }).await;
        while !matches!(self.frame().await, ServerFrame::Synced {}) {}
    }
}

fn token(site: &Site, user: &str) -> String {
    let claims = Claims {
        sub: user.to_string(),
        site: site.id.to_string(),
        exp: now_ms() / 1000 + 3600,
        nbf: None,
        iat: None,
        name: None,
    };
    auth::sign(&claims, &site.token_secret)
}

fn member(id: &str) -> Member {
    Member::new(UserId::parse(id).expect("a valid user id"), None)
}

/// A server on a fresh SQLite file, one site, and the dialog of a and b.
async fn world() -> (App, Site, RoomId, tempfile_dir::Dir) {
    let dir = tempfile_dir::Dir::new();
    let url = format!("sqlite://{}", dir.path.join("natter.db").display());
    let app = App::build(Config::for_database(url))
        .await
        .expect("the server starts");
    let store = &app.state().store;
    let site = store
        .create_site(None, "test", &[])
        .await
        .expect("a site")
        .site;
    let (room, _) = store
        .open_dialog(&site.id, &member("a"), &member("b"))
        .await
        .expect("a dialog");
    (app, site, room.id, dir)
}

/// A directory removed when dropped.
mod tempfile_dir {
    pub struct Dir {
        pub path: std::path::PathBuf,
    }

    impl Dir {
        pub fn new() -> Dir {
            let path = std::env::temp_dir().join(format!("natter-ws-{}", uuid::Uuid::now_v7()));
            std::fs::create_dir_all(&path).expect("a temp directory");
            Dir { path }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            // Best effort: a leftover temp directory harms nothing.
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

#[tokio::test]
async fn a_send_is_acked_and_delivered_live_to_the_other_member() {
    let (app, site, room, _dir) = world().await;
    let mut a = Client::connect(&app, &site);
    let mut b = Client::connect(&app, &site);
    a.sign_in(&site, "a").await;
    b.sign_in(&site, "b").await;

    let client_id = ClientId::from_uuid(uuid::Uuid::now_v7());
    a.send(&ClientFrame::Send {
        client_id,
        room: room.clone(),
        body: "hello".into(),
        files: Vec::new(),
    })
    .await;
    assert_eq!(a.ack_of(client_id).await, 1);
    match b.frame().await {
        ServerFrame::Event { event } => {
            assert_eq!((event.room, event.seq), (room, 1));
        }
        other => panic!("expected the live event, got {other:?}"),
    }
}

#[tokio::test]
async fn sync_pages_from_the_cursor_then_says_synced() {
    let (app, site, room, _dir) = world().await;
    let mut a = Client::connect(&app, &site);
    a.sign_in(&site, "a").await;
    for n in 0..3 {
        let client_id = ClientId::from_uuid(uuid::Uuid::now_v7());
        a.send(&ClientFrame::Send {
            client_id,
            room: room.clone(),
            body: format!("m{n}"),
            files: Vec::new(),
        })
        .await;
        assert_eq!(a.ack_of(client_id).await, n + 1);
    }

    let mut again = Client::connect(&app, &site);
    again
        .send(&ClientFrame::Auth {
            token: token(&site, "a"),
        })
        .await;
    assert!(matches!(again.frame().await, ServerFrame::Hello { .. }));
    again
        .send(&ClientFrame::Sync {
            cursors: vec![Cursor::new(room.clone(), 1)],
        })
        .await;
    assert!(matches!(again.frame().await, ServerFrame::Rooms { .. }));
    match again.frame().await {
        ServerFrame::Page { events, more, .. } => {
            let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
            assert_eq!(seqs, [2, 3]);
            assert!(!more);
        }
        other => panic!("expected a page, got {other:?}"),
    }
    assert!(matches!(again.frame().await, ServerFrame::Synced {}));
}

#[tokio::test]
async fn a_first_frame_other_than_auth_is_refused_with_4001() {
    let (app, site, _room, _dir) = world().await;
    let mut c = Client::connect(&app, &site);
    c.send(&ClientFrame::Sync { cursors: vec![] }).await;
    match c.frame().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::Unauthenticated),
        other => panic!("expected an error, got {other:?}"),
    }
    match c.message().await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, close::AUTH),
        other => panic!("expected a close, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_auth_timeout() {
    let (app, site, _room, _dir) = world().await;
    let mut c = Client::connect(&app, &site);
    // Only the deadline is waited on from here: paused time skips to it.
    tokio::time::pause();
    match c.frame().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::Unauthenticated),
        other => panic!("expected an error, got {other:?}"),
    }
    match c.message().await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, close::AUTH_TIMEOUT),
        other => panic!("expected a close, got {other:?}"),
    }
}

#[test]
fn the_room_list_is_split_into_frames_serde_would_write_each_within_the_limit() {
    let room = |i: usize| natter_shared::RoomInfo {
        id: RoomId::parse(format!("r_{i:04}")).expect("a room id"),
        kind: natter_shared::RoomKind::Group,
        title: Some(format!("room {i}")),
        members: vec![Member::new(
            UserId::parse("alice").expect("a user id"),
            None,
        )],
        member_count: 0,
        last_seq: i as u64,
        created_at: 1,
        read: 0,
        unread: 0,
    };
    let rooms: Vec<_> = (0..50).map(room).collect();
    let limit = 600;
    let frames = super::sync::rooms_frames(&rooms, limit).expect("serialises");
    assert!(frames.len() > 1, "50 rooms in {} frame(s)", frames.len());
    let mut listed = Vec::new();
    for frame in &frames {
        assert!(frame.len() <= limit, "a frame of {} bytes", frame.len());
        let ServerFrame::Rooms { rooms } = serde_json::from_str(frame).expect("a frame") else {
            panic!("not a rooms frame: {frame}");
        };
        let again = serde_json::to_string(&ServerFrame::Rooms {
            rooms: rooms.clone(),
        })
        .expect("serialises");
        assert_eq!(&again, frame, "as serde writes it");
        listed.extend(rooms);
    }
    assert_eq!(listed, rooms);
    let none = super::sync::rooms_frames(&[], limit).expect("serialises");
    assert_eq!(none, [r#"{"type":"rooms","rooms":[]}"#]);
}

#[tokio::test]
async fn sends_are_answered_in_order_and_their_set_goes_when_all_are() {
    use super::conn::{Commit, Commits};
    use crate::store::StoreError;
    let id = |n: u8| {
        ClientId::parse(&format!("00000000-0000-4000-8000-0000000000{n:02}")).expect("an id")
    };
    let commit = |n: u8, after_ms: u64| -> Commit {
        let client = id(n);
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            let room = RoomId::parse("r_1").expect("a room id");
            (client, room, Err(StoreError::Closed))
        })
    };
    let mut commits = Commits::default();
    assert!(commits.is_empty());
    assert!(commits.next().await.is_none());
    // The second send's commit is decided first; the first is still
    // answered first.
    commits.push(commit(1, 40));
    commits.push(commit(2, 1));
    assert_eq!(commits.len(), 2);
    assert_eq!(commits.next().await.map(|c| c.0), Some(id(1)));
    assert_eq!(commits.len(), 1);
    assert_eq!(commits.next().await.map(|c| c.0), Some(id(2)));
    assert!(commits.is_empty());
    assert!(
        !commits.holds_a_set(),
        "no set kept once every send is answered"
    );
    commits.push(commit(3, 1));
    assert!(commits.holds_a_set());
    assert_eq!(commits.next().await.map(|c| c.0), Some(id(3)));
}
