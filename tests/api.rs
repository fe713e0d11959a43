//! The HTTP API: each endpoint's success and its errors, one test per
//! behaviour, each on its own server.

use natter_shared::{ClientFrame, ErrorCode, ServerFrame};
use natter_tests::*;
use reqwest::Method;
use serde_json::{Value, json};

/// A fresh server holding one group room, "Physics 101", of Alice and Bob:
/// where every test here starts.
struct Fixture {
    app: TestApp,
    /// The room as its creation answered it.
    room: Value,
    /// Its id.
    rid: String,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::on(Db::Sqlite).await
    }

    /// The same, on `db`.
    async fn on(db: Db) -> Fixture {
        let app = spawn_app(db).await;
        let body = json!({"title": "Physics 101", "members": [{"id": "alice", "name": "Alice"}, {"id": "bob"}]});
        let (status, room) = app.call(Method::POST, "/rooms", Some(body)).await;
        assert_eq!(status, 201, "creating the room: {room}");
        let rid = room["id"].as_str().expect("room id").to_string();
        Fixture { app, room, rid }
    }

    /// An API call with the site's key: the status and the JSON answered.
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        self.app.call(method, path, body).await
    }

    /// `POST /rooms/{room}/messages`.
    async fn post_message(&self, body: Value) -> (u16, Value) {
        let path = format!("/rooms/{}/messages", self.rid);
        self.call(Method::POST, &path, Some(body)).await
    }

    /// `POST /dialogs` for Alice and Bob.
    async fn open_dialog(&self) -> (u16, Value) {
        let body = json!({"users": [{"id": "alice"}, {"id": "bob", "name": "Bob"}]});
        self.call(Method::POST, "/dialogs", Some(body)).await
    }

    /// `POST /rooms/{room}/members` for Carol.
    async fn add_carol(&self) -> (u16, Value) {
        let path = format!("/rooms/{}/members", self.rid);
        let body = json!({"user": {"id": "carol", "name": "Carol"}});
        self.call(Method::POST, &path, Some(body)).await
    }

    /// `DELETE /rooms/{room}/members/carol`.
    async fn remove_carol(&self) -> (u16, Value) {
        let path = format!("/rooms/{}/members/carol", self.rid);
        self.call(Method::DELETE, &path, None).await
    }

    /// Carol joins the room and leaves it again.
    async fn carol_comes_and_goes(&self) {
        assert_eq!(self.add_carol().await.0, 201, "adding Carol");
        assert_eq!(self.remove_carol().await.0, 200, "removing Carol");
    }

    /// A request with another site's key.
    fn as_other_site(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.app.api_as(&self.app.other, method, path)
    }

    /// Checks nothing panicked, then stops the server.
    async fn done(self) {
        crate::assert_no_panics();
        self.app.stop().await;
    }
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// The seqs of a history page.
fn seqs(page: &Value) -> Vec<u64> {
    page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

// --------------------------------------------------------------- the key

#[tokio::test]
async fn a_request_without_a_key_is_unauthorized() {
    let fx = Fixture::new().await;
    let res = fx
        .app
        .http
        .get(fx.app.url("/api/v1/users/alice/rooms"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    fx.done().await;
}

#[tokio::test]
async fn a_request_with_a_wrong_key_is_unauthorized() {
    let fx = Fixture::new().await;
    let res = fx
        .app
        .http
        .get(fx.app.url("/api/v1/users/alice/rooms"))
        .bearer_auth("nk_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(code(&body), "unauthorized");
    fx.done().await;
}

// --------------------------------------------------------------- rooms

#[tokio::test]
async fn creating_a_group_room_returns_it_with_its_members() {
    let fx = Fixture::new().await;
    assert_eq!(fx.room["kind"], "group");
    assert_eq!(fx.room["members"].as_array().unwrap().len(), 2);
    fx.done().await;
}

#[tokio::test]
async fn a_room_with_a_bad_request_is_invalid_input() {
    let fx = Fixture::new().await;
    let cases = [
        ("a blank title", json!({"title": "  "})),
        (
            "a member id with a space",
            json!({"title": "x", "members": [{"id": "a b"}]}),
        ),
        (
            "a member listed twice",
            json!({"title": "x", "members": [{"id": "a"}, {"id": "a"}]}),
        ),
        ("no title at all", json!({"nonsense": true})),
    ];
    for (case, body) in cases {
        let (s, b) = fx.call(Method::POST, "/rooms", Some(body)).await;
        assert_eq!((s, code(&b)), (400, "invalid_input"), "a room with {case}");
    }
    fx.done().await;
}

#[tokio::test]
async fn a_room_is_read_back_by_its_id() {
    let fx = Fixture::new().await;
    let (s, got) = fx
        .call(Method::GET, &format!("/rooms/{}", fx.rid), None)
        .await;
    assert_eq!(s, 200);
    assert_eq!(got["title"], "Physics 101");
    fx.done().await;
}

#[tokio::test]
async fn an_unknown_room_is_not_found() {
    let fx = Fixture::new().await;
    let (s, b) = fx.call(Method::GET, "/rooms/r_doesnotexist", None).await;
    assert_eq!((s, code(&b)), (404, "room_not_found"));
    fx.done().await;
}

// --------------------------------------------------------------- dialogs

#[tokio::test]
async fn a_dialog_is_created_once_then_found() {
    let fx = Fixture::new().await;
    let (s, d1) = fx.open_dialog().await;
    assert_eq!(s, 201);
    let (s, d2) = fx
        .call(
            Method::POST,
            "/dialogs",
            Some(json!({"users": [{"id": "bob"}, {"id": "alice"}]})),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(d1["id"], d2["id"]);
    assert_eq!(d1["kind"], "dialog");
    fx.done().await;
}

#[tokio::test]
async fn a_dialog_with_oneself_is_invalid_input() {
    let fx = Fixture::new().await;
    let (s, b) = fx
        .call(
            Method::POST,
            "/dialogs",
            Some(json!({"users": [{"id": "alice"}, {"id": "alice"}]})),
        )
        .await;
    assert_eq!((s, code(&b)), (400, "invalid_input"));
    fx.done().await;
}

#[tokio::test]
async fn a_dialog_of_one_user_is_a_bad_request() {
    let fx = Fixture::new().await;
    let (s, _) = fx
        .call(
            Method::POST,
            "/dialogs",
            Some(json!({"users": [{"id": "alice"}]})),
        )
        .await;
    assert_eq!(s, 400);
    fx.done().await;
}

// --------------------------------------------------------------- members

#[tokio::test]
async fn adding_a_member_records_their_joining() {
    let fx = Fixture::new().await;
    let (s, ev) = fx.add_carol().await;
    assert_eq!(s, 201);
    assert_eq!(
        (ev["kind"].as_str(), ev["user"].as_str(), ev["seq"].as_u64()),
        (Some("member_joined"), Some("carol"), Some(1))
    );
    fx.done().await;
}

#[tokio::test]
async fn adding_a_member_twice_is_a_conflict() {
    let fx = Fixture::new().await;
    assert_eq!(fx.add_carol().await.0, 201, "adding Carol");
    let (s, b) = fx
        .call(
            Method::POST,
            &format!("/rooms/{}/members", fx.rid),
            Some(json!({"user": {"id": "carol"}})),
        )
        .await;
    assert_eq!((s, code(&b)), (409, "conflict"));
    fx.done().await;
}

#[tokio::test]
async fn a_dialog_keeps_its_two_members() {
    let fx = Fixture::new().await;
    let (s, dialog) = fx.open_dialog().await;
    assert_eq!(s, 201, "opening the dialog");
    let dialog_id = dialog["id"].as_str().unwrap();
    let (s, _) = fx
        .call(
            Method::POST,
            &format!("/rooms/{dialog_id}/members"),
            Some(json!({"user": {"id": "carol"}})),
        )
        .await;
    assert_eq!(s, 400, "dialogs keep two members");
    fx.done().await;
}

#[tokio::test]
async fn removing_a_member_records_their_leaving() {
    let fx = Fixture::new().await;
    assert_eq!(fx.add_carol().await.0, 201, "adding Carol");
    let (s, ev) = fx.remove_carol().await;
    assert_eq!((s, ev["kind"].as_str()), (200, Some("member_left")));
    fx.done().await;
}

#[tokio::test]
async fn removing_a_member_who_left_is_not_found() {
    let fx = Fixture::new().await;
    fx.carol_comes_and_goes().await;
    let (s, b) = fx.remove_carol().await;
    assert_eq!((s, code(&b)), (404, "not_found"));
    fx.done().await;
}

// --------------------------------------------------------------- messages

#[tokio::test]
async fn a_users_message_takes_the_next_seq_after_membership_events() {
    let fx = Fixture::new().await;
    fx.carol_comes_and_goes().await;
    let (s, m) = fx
        .post_message(json!({"from": "alice", "body": "hello"}))
        .await;
    assert_eq!(s, 201);
    assert_eq!(
        (m["sender"].as_str(), m["seq"].as_u64()),
        (Some("alice"), Some(3))
    );
    fx.done().await;
}

#[tokio::test]
async fn a_message_without_a_sender_is_a_system_message() {
    let fx = Fixture::new().await;
    let (s, m) = fx.post_message(json!({"body": "Class starts at 9"})).await;
    assert_eq!(s, 201);
    assert!(m.get("sender").is_none(), "system messages have no sender");
    fx.done().await;
}

#[tokio::test]
async fn a_message_retried_with_its_client_id_is_stored_once() {
    let fx = Fixture::new().await;
    let cid = "0191e6b2-7c3a-7d4e-8f00-123456789abc";
    let once = json!({"from": "bob", "body": "once", "client_id": cid});
    let (s, m1) = fx.post_message(once.clone()).await;
    assert_eq!(s, 201);
    let (s, m2) = fx.post_message(once).await;
    assert_eq!(s, 200);
    assert_eq!(m1["seq"], m2["seq"]);
    fx.done().await;
}

/// System messages (no `from`) have no sender for the database's unique
/// key to hold them to: a retry is still found by its client id.
async fn a_system_message_retried_with_its_client_id_is_stored_once(db: Db) {
    let fx = Fixture::on(db).await;
    let cid = "0191e6b2-7c3a-7d4e-8f00-cba987654321";
    let once = json!({"body": "Class moves to room 4", "client_id": cid});
    let (s, m1) = fx.post_message(once.clone()).await;
    assert_eq!((s, m1["client_id"].as_str()), (201, Some(cid)));
    let (s, m2) = fx.post_message(once).await;
    assert_eq!(s, 200, "the retry is answered as stored before: {m2}");
    assert_eq!(m1, m2);
    let (s, page) = fx
        .call(Method::GET, &format!("/rooms/{}/messages", fx.rid), None)
        .await;
    assert_eq!(s, 200);
    let bodies: Vec<&str> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["body"].as_str())
        .collect();
    assert_eq!(bodies, ["Class moves to room 4"], "stored once: {page}");
    fx.done().await;
}

/// A post without a client id is given one by the server, so that the
/// server's own retry of a write whose commit went unanswered finds it
/// instead of storing it twice.
async fn a_message_posted_without_a_client_id_is_given_one(db: Db) {
    let fx = Fixture::on(db).await;
    let mut ids = Vec::new();
    for body in [
        json!({"from": "alice", "body": "one"}),
        json!({"body": "two"}),
    ] {
        let (s, m) = fx.post_message(body).await;
        assert_eq!(s, 201, "{m}");
        let id = m["client_id"]
            .as_str()
            .expect("a client id made by the server");
        assert!(uuid::Uuid::parse_str(id).is_ok(), "a UUID: {id}");
        ids.push(id.to_string());
    }
    assert_ne!(ids[0], ids[1]);
    fx.done().await;
}

#[tokio::test]
async fn a_member_who_left_cannot_post() {
    let fx = Fixture::new().await;
    fx.carol_comes_and_goes().await;
    let (s, b) = fx
        .post_message(json!({"from": "carol", "body": "I left"}))
        .await;
    assert_eq!((s, code(&b)), (403, "not_member"));
    fx.done().await;
}

#[tokio::test]
async fn an_empty_message_is_refused() {
    let fx = Fixture::new().await;
    let (s, b) = fx.post_message(json!({"from": "alice", "body": ""})).await;
    assert_eq!((s, code(&b)), (400, "body_invalid"));
    fx.done().await;
}

#[tokio::test]
async fn posting_to_an_unknown_room_is_not_found() {
    let fx = Fixture::new().await;
    let (s, b) = fx
        .call(
            Method::POST,
            "/rooms/r_nope/messages",
            Some(json!({"body": "x"})),
        )
        .await;
    assert_eq!((s, code(&b)), (404, "room_not_found"));
    fx.done().await;
}

#[tokio::test]
async fn an_oversized_message_is_too_large() {
    let fx = Fixture::new().await;
    let big = "x".repeat(300 * 1024);
    let (s, b) = fx.post_message(json!({"body": big})).await;
    assert_eq!((s, code(&b)), (413, "invalid_input"));
    fx.done().await;
}

// --------------------------------------------------------------- history

/// The room with five events: Carol joining and leaving, three messages.
async fn five_events() -> Fixture {
    let fx = Fixture::new().await;
    fx.carol_comes_and_goes().await;
    for body in ["hello", "Class starts at 9", "once"] {
        let (s, _) = fx
            .post_message(json!({"from": "alice", "body": body}))
            .await;
        assert_eq!(s, 201, "posting {body:?}");
    }
    fx
}

#[tokio::test]
async fn history_pages_back_from_the_newest() {
    let fx = five_events().await;
    let (s, page) = fx
        .call(
            Method::GET,
            &format!("/rooms/{}/messages?limit=2", fx.rid),
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(seqs(&page), [4, 5]);
    assert_eq!(page["more"], true);
    fx.done().await;
}

#[tokio::test]
async fn history_pages_forward_after_a_seq() {
    let fx = five_events().await;
    let (_, page) = fx
        .call(
            Method::GET,
            &format!("/rooms/{}/messages?after=1&limit=2", fx.rid),
            None,
        )
        .await;
    assert_eq!(seqs(&page), [2, 3]);
    fx.done().await;
}

#[tokio::test]
async fn history_with_bad_bounds_is_a_bad_request() {
    let fx = five_events().await;
    for query in ["after=1&before=3", "limit=0", "limit=lots"] {
        let (s, _) = fx
            .call(
                Method::GET,
                &format!("/rooms/{}/messages?{query}", fx.rid),
                None,
            )
            .await;
        assert_eq!(s, 400, "history with {query}");
    }
    fx.done().await;
}

// --------------------------------------------------------------- a user's rooms

#[tokio::test]
async fn a_users_rooms_are_listed() {
    let fx = Fixture::new().await;
    let (s, _) = fx.open_dialog().await;
    assert_eq!(s, 201, "opening the dialog");
    let (s, list) = fx.call(Method::GET, "/users/alice/rooms", None).await;
    assert_eq!(s, 200);
    assert_eq!(list["rooms"].as_array().unwrap().len(), 2);
    fx.done().await;
}

#[tokio::test]
async fn a_member_who_left_lists_no_rooms() {
    let fx = Fixture::new().await;
    fx.carol_comes_and_goes().await;
    let (s, list) = fx.call(Method::GET, "/users/carol/rooms", None).await;
    assert_eq!((s, list["rooms"].as_array().unwrap().len()), (200, 0));
    fx.done().await;
}

// --------------------------------------------------------------- another site

#[tokio::test]
async fn another_sites_room_and_its_history_are_not_found() {
    let fx = Fixture::new().await;
    for path in [
        format!("/rooms/{}", fx.rid),
        format!("/rooms/{}/messages", fx.rid),
    ] {
        let res = fx.as_other_site(Method::GET, &path).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path} from another site");
    }
    fx.done().await;
}

#[tokio::test]
async fn posting_to_another_sites_room_is_not_found() {
    let fx = Fixture::new().await;
    let res = fx
        .as_other_site(Method::POST, &format!("/rooms/{}/messages", fx.rid))
        .json(&json!({"body": "cross-site"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    fx.done().await;
}

#[tokio::test]
async fn adding_a_member_to_another_sites_room_is_not_found() {
    let fx = Fixture::new().await;
    let res = fx
        .as_other_site(Method::POST, &format!("/rooms/{}/members", fx.rid))
        .json(&json!({"user": {"id": "eve"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    fx.done().await;
}

#[tokio::test]
async fn another_site_lists_none_of_a_users_rooms() {
    let fx = Fixture::new().await;
    let res = fx
        .as_other_site(Method::GET, "/users/alice/rooms")
        .send()
        .await
        .unwrap();
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["rooms"].as_array().unwrap().len(), 0);
    fx.done().await;
}

// --------------------------------------------------------------- the rest

#[tokio::test]
async fn an_unknown_endpoint_is_not_found() {
    let fx = Fixture::new().await;
    let (s, b) = fx.call(Method::GET, "/nope", None).await;
    assert_eq!((s, code(&b)), (404, "not_found"));
    fx.done().await;
}

#[tokio::test]
async fn health_answers_ok() {
    let fx = Fixture::new().await;
    let res = fx
        .app
        .http
        .get(fx.app.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    fx.done().await;
}

// --------------------------------------------------------------- labels

#[tokio::test]
async fn names_and_titles_lose_characters_that_hide_or_reorder_text() {
    let app = spawn_app(Db::Sqlite).await;
    let res = app
        .api(Method::POST, "/rooms")
        .json(&json!({
            "title": "\u{202E}Physics\u{200B} 101",
            "members": [{"id": "alice", "name": "Al\u{2066}ice\u{2069}"}, {"id": "bob"}]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let room: Value = res.json().await.unwrap();
    assert_eq!(room["title"], "Physics 101");
    assert_eq!(room["members"][0]["name"], "Alice");
    // Nothing left is no name: refused.
    let res = app
        .api(Method::POST, "/rooms")
        .json(&json!({"title": "\u{202E}\u{200F}", "members": [{"id": "alice"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // A token's name is cleaned the same way.
    let mut client = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    client
        .send(&natter_shared::ClientFrame::Auth {
            token: token_named(&app.site, "carol", "Car\u{202E}ol", 3600),
        })
        .await;
    match client.recv().await {
        natter_shared::ServerFrame::Hello { name, .. } => {
            assert_eq!(name.as_deref(), Some("Carol"));
        }
        other => panic!("expected hello, got {other:?}"),
    }
    app.stop().await;
}

/// `natter site …` run as the real binary against the server's database.
async fn site_command(app: &TestApp, args: &[&str]) -> std::process::Output {
    let url = app.database_url.clone();
    let files = files_dir_for(&url);
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    off_runtime(move || {
        std::process::Command::new(natter_bin())
            .arg("site")
            .args(args)
            .args(["--database-url", &url])
            .arg("--files-dir")
            .arg(files)
            .env("RUST_LOG", "error")
            .output()
            .expect("natter runs")
    })
    .await
}

async fn site_commands_rotate_the_key_and_remove_a_site_with_everything(db: Db) {
    // Short heartbeats: a removed site's connections close at the next.
    let app = spawn_app_with(db, |c| c.limits.heartbeat_secs = 2).await;
    let room = app.group("Doomed", &["alice", "bob"]).await;
    app.api_client()
        .post(room.id.as_str(), "alice", "hello")
        .await;
    let other = app.api_client_of(&app.other);
    let kept = other.group("Kept", &[User::id("carol")]).await;
    other.post(kept.id.as_str(), "carol", "still here").await;
    let site = app.site.id.to_string();

    // A new API key: the old one stops working at once.
    let out = site_command(&app, &["rotate-key", &site]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let key = text
        .lines()
        .find_map(|l| l.strip_prefix("api key:"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no key in {text}"))
        .to_string();
    let old = app
        .api(reqwest::Method::GET, "/settings")
        .send()
        .await
        .expect("api");
    assert_eq!(old.status(), 401);
    let fresh = ApiClient::new(app.http.clone(), app.addr, &key);
    let res = fresh
        .request(reqwest::Method::GET, "/settings")
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 200);

    // A new token secret: tokens of the old one work during the grace
    // period only.
    let old_token = app.token("alice");
    let rotated = async |grace: &str| {
        let out = site_command(&app, &["rotate-secret", &site, "--grace-secs", grace]).await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let secret = text.lines().find_map(|l| l.strip_prefix("token secret:"));
        let secret = secret.map(str::trim).unwrap_or_else(|| panic!("{text}"));
        natter_server::auth::Secret::new(secret.to_string())
    };
    // A grace beyond 30 days is refused (and not in the audit log below).
    let out = site_command(&app, &["rotate-secret", &site, "--grace-secs", "2592001"]).await;
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("--grace-secs"), "{said}");
    let secret = rotated("3600").await;
    let new_site = TestSite {
        secret,
        ..app.site.clone()
    };
    let signs_in = async |token: String| {
        let mut client = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
        client.send(&ClientFrame::Auth { token }).await;
        matches!(client.recv().await, ServerFrame::Hello { .. })
    };
    // The site is read afresh after its cache's two seconds.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(
        signs_in(old_token.clone()).await,
        "the old secret, within its grace"
    );
    assert!(
        signs_in(token_for(&new_site, "alice", 600)).await,
        "the new secret"
    );
    let latest = rotated("0").await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert!(
        !signs_in(token_for(&new_site, "alice", 600)).await,
        "no grace left"
    );
    let newest = TestSite {
        secret: latest,
        ..app.site.clone()
    };
    assert!(signs_in(token_for(&newest, "alice", 600)).await);
    // Each change is in the site's audit log, made from the command line.
    let res = fresh
        .request(reqwest::Method::GET, "/audit")
        .send()
        .await
        .expect("api");
    let log: serde_json::Value = res.json().await.expect("the log");
    let done: Vec<(&str, &str)> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or(""),
                e["action"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        done,
        [
            ("cli", "site.rotate_secret"),
            ("cli", "site.rotate_secret"),
            ("cli", "site.rotate_key")
        ]
    );

    // Removing asks for --yes; an unknown site is a clear message.
    let out = site_command(&app, &["remove", &site]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
    let out = site_command(&app, &["remove", "s_nope", "--yes"]).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no site"));
    let res = fresh
        .request(reqwest::Method::GET, &format!("/rooms/{}", room.id))
        .send()
        .await;
    assert_eq!(res.expect("api").status(), 200, "nothing removed yet");

    // Users of both sites online while the site goes.
    let mut alice = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    alice.auth(&token_for(&newest, "alice", 600)).await;
    alice.sync(vec![]).await;
    let mut carol = Client::connect(&app, &app.other.id, Some("https://other.example")).await;
    carol.auth(&token_for(&app.other, "carol", 600)).await;
    carol.sync(vec![]).await;

    let out = site_command(&app, &["remove", &site, "--yes"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Alice's connection closes at a heartbeat after the site cache's two
    // seconds. Carol's stays, answering meanwhile (the same heartbeats
    // check her site).
    let alice_closed = async {
        match alice.recv().await {
            ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::UnknownSite),
            other => panic!("expected unknown_site, got {other:?}"),
        }
        alice.closed().await.expect("a close frame")
    };
    let carol_stays = async {
        for nonce in 0.. {
            carol.send(&ClientFrame::Ping { nonce: Some(nonce) }).await;
            assert_eq!(carol.recv().await, ServerFrame::Pong { nonce: Some(nonce) });
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
    };
    let alice_closed = tokio::time::timeout(WAIT, alice_closed);
    let close = tokio::select! {
        close = alice_closed => close.expect("Alice's connection closed within the wait"),
        () = carol_stays => unreachable!("pings go on until Alice's close"),
    };
    assert_eq!(
        (u16::from(close.code), close.reason.as_str()),
        (4001, "unknown_site")
    );
    // One heartbeat more (her last ping is at most half a second old, so
    // well within the two silent heartbeats that would drop her). The
    // pings above may have stopped with one answer unread: only pongs
    // come before the answer to this one.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let last = Some(u64::MAX);
    carol.send(&ClientFrame::Ping { nonce: last }).await;
    loop {
        match carol.recv().await {
            ServerFrame::Pong { nonce } if nonce == last => break,
            ServerFrame::Pong { .. } => {}
            other => panic!("Carol got {other:?} in place of her pong"),
        }
    }
    let res = fresh
        .request(reqwest::Method::GET, "/settings")
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 401, "the site and its key are gone");
    let list = String::from_utf8_lossy(&site_command(&app, &["list"]).await.stdout).to_string();
    assert!(
        !list.contains(&site) && list.contains(app.other.id.as_str()),
        "{list}"
    );
    // The other site keeps everything.
    let page = other.messages(&kept.id, "").await;
    assert_eq!(page["events"][0]["body"], "still here", "{page}");
    app.stop().await;
}

/// The site's backend reads and changes its site: name, origins, token
/// secret (with a grace), API key; bad input changes nothing.
async fn the_site_is_read_and_changed_through_the_api(db: Db) {
    let app = spawn_app(db).await;
    let (status, site) = app.call(Method::GET, "/site", None).await;
    assert_eq!(status, 200);
    assert_eq!(site["id"], json!(app.site.id.as_str()));
    assert_eq!(site["origins"], json!([ORIGIN]));
    assert!(site.get("previous_secret_until").is_none());

    // A bad origin with a good name: neither is made.
    let bad = json!({"name": "Renamed", "origins": ["https://ok.example", "not an origin"]});
    let (status, body) = app.call(Method::PATCH, "/site", Some(bad)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_input"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("not an origin")
    );
    let (status, _) = app
        .call(Method::PATCH, "/site", Some(json!({"name": " "})))
        .await;
    assert_eq!(status, 400);
    let (status, _) = app
        .call(Method::PATCH, "/site", Some(json!({"colour": "red"})))
        .await;
    assert_eq!(status, 400);
    let (_, site) = app.call(Method::GET, "/site", None).await;
    assert_eq!(site["name"], json!("test"));

    let change = json!({"name": "Renamed", "origins": ["https://New.example/", ORIGIN]});
    let (status, site) = app.call(Method::PATCH, "/site", Some(change)).await;
    assert_eq!(status, 200);
    assert_eq!(site["name"], json!("Renamed"));
    assert_eq!(site["origins"], json!(["https://new.example", ORIGIN]));
    let mut client = Client::connect(&app, &app.site.id, Some("https://new.example")).await;
    client.auth(&app.token("alice")).await;

    // A new secret with a grace: old tokens still work, new ones too.
    let old_token = app.token("alice");
    let (status, rotated) = app
        .call(
            Method::POST,
            "/site/rotate-secret",
            Some(json!({"grace_secs": 3600})),
        )
        .await;
    assert_eq!(status, 200);
    let until = rotated["previous_secret_until"].as_i64().expect("until");
    assert!((until - now_secs() - 3600).abs() <= 2, "{rotated}");
    let fresh = TestSite {
        secret: natter_server::auth::Secret::new(
            rotated["token_secret"]
                .as_str()
                .expect("secret")
                .to_string(),
        ),
        ..app.site.clone()
    };
    let signs_in = async |token: String| {
        let mut client = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
        client.send(&ClientFrame::Auth { token }).await;
        matches!(client.recv().await, ServerFrame::Hello { .. })
    };
    assert!(signs_in(old_token.clone()).await, "within the grace");
    assert!(signs_in(token_for(&fresh, "alice", 600)).await);
    let (_, site) = app.call(Method::GET, "/site", None).await;
    assert_eq!(site["previous_secret_until"], json!(until));
    let (status, _) = app
        .call(
            Method::POST,
            "/site/rotate-secret",
            Some(json!({"grace_secs": 31 * 24 * 3600})),
        )
        .await;
    assert_eq!(status, 400);

    // A new key: this one stops at once.
    let (status, key) = app.call(Method::POST, "/site/rotate-key", None).await;
    assert_eq!(status, 200);
    let (status, _) = app.call(Method::GET, "/site", None).await;
    assert_eq!(status, 401);
    let api = ApiClient::new(
        app.http.clone(),
        app.addr,
        key["api_key"].as_str().expect("key"),
    );
    let log: Value = api
        .request(Method::GET, "/audit")
        .send()
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    let actions: Vec<&str> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "site.rotate_key",
            "site.rotate_secret",
            "site.origins",
            "site.rename"
        ]
    );
    app.stop().await;
}

on_both!(
    a_system_message_retried_with_its_client_id_is_stored_once,
    a_message_posted_without_a_client_id_is_given_one,
    site_commands_rotate_the_key_and_remove_a_site_with_everything,
    the_site_is_read_and_changed_through_the_api,
);
