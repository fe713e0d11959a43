//! The HTTP API: each endpoint's success and its errors.

use natter_tests::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.api(method, path);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<no error code>")
}

#[tokio::test]
async fn every_endpoint_answers_and_refuses_bad_input() {
    let app = spawn_app(Db::Sqlite).await;

    // Bad or missing key.
    let res = app
        .http
        .get(app.url("/api/v1/users/alice/rooms"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .get(app.url("/api/v1/users/alice/rooms"))
        .bearer_auth("nk_wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.unwrap();
    assert_eq!(code(&body), "unauthorized");

    // Create a group room.
    let (s, room) = call(&app, Method::POST, "/rooms", Some(json!({"title": "Physics 101", "members": [{"id": "alice", "name": "Alice"}, {"id": "bob"}]}))).await;
    assert_eq!(s, 201);
    assert_eq!(room["kind"], "group");
    assert_eq!(room["members"].as_array().unwrap().len(), 2);
    let rid = room["id"].as_str().unwrap().to_string();
    let (s, b) = call(&app, Method::POST, "/rooms", Some(json!({"title": "  "}))).await;
    assert_eq!((s, code(&b)), (400, "invalid_input"));
    let (s, b) = call(
        &app,
        Method::POST,
        "/rooms",
        Some(json!({"title": "x", "members": [{"id": "a b"}]})),
    )
    .await;
    assert_eq!((s, code(&b)), (400, "invalid_input"));
    let (s, b) = call(
        &app,
        Method::POST,
        "/rooms",
        Some(json!({"title": "x", "members": [{"id": "a"}, {"id": "a"}]})),
    )
    .await;
    assert_eq!((s, code(&b)), (400, "invalid_input"));
    let (s, b) = call(
        &app,
        Method::POST,
        "/rooms",
        Some(json!({"nonsense": true})),
    )
    .await;
    assert_eq!((s, code(&b)), (400, "invalid_input"));

    // Get it.
    let (s, got) = call(&app, Method::GET, &format!("/rooms/{rid}"), None).await;
    assert_eq!(s, 200);
    assert_eq!(got["title"], "Physics 101");
    let (s, b) = call(&app, Method::GET, "/rooms/r_doesnotexist", None).await;
    assert_eq!((s, code(&b)), (404, "room_not_found"));

    // Dialogs: created once, then found.
    let (s, d1) = call(
        &app,
        Method::POST,
        "/dialogs",
        Some(json!({"users": [{"id": "alice"}, {"id": "bob", "name": "Bob"}]})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, d2) = call(
        &app,
        Method::POST,
        "/dialogs",
        Some(json!({"users": [{"id": "bob"}, {"id": "alice"}]})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(d1["id"], d2["id"]);
    assert_eq!(d1["kind"], "dialog");
    let (s, b) = call(
        &app,
        Method::POST,
        "/dialogs",
        Some(json!({"users": [{"id": "alice"}, {"id": "alice"}]})),
    )
    .await;
    assert_eq!((s, code(&b)), (400, "invalid_input"));
    let (s, _) = call(
        &app,
        Method::POST,
        "/dialogs",
        Some(json!({"users": [{"id": "alice"}]})),
    )
    .await;
    assert_eq!(s, 400);

    // Members.
    let (s, ev) = call(
        &app,
        Method::POST,
        &format!("/rooms/{rid}/members"),
        Some(json!({"user": {"id": "carol", "name": "Carol"}})),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(
        (ev["kind"].as_str(), ev["user"].as_str(), ev["seq"].as_u64()),
        (Some("member_joined"), Some("carol"), Some(1))
    );
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/rooms/{rid}/members"),
        Some(json!({"user": {"id": "carol"}})),
    )
    .await;
    assert_eq!((s, code(&b)), (409, "conflict"));
    let dialog_id = d1["id"].as_str().unwrap();
    let (s, _) = call(
        &app,
        Method::POST,
        &format!("/rooms/{dialog_id}/members"),
        Some(json!({"user": {"id": "carol"}})),
    )
    .await;
    assert_eq!(s, 400, "dialogs keep two members");
    let (s, ev) = call(
        &app,
        Method::DELETE,
        &format!("/rooms/{rid}/members/carol"),
        None,
    )
    .await;
    assert_eq!((s, ev["kind"].as_str()), (200, Some("member_left")));
    let (s, b) = call(
        &app,
        Method::DELETE,
        &format!("/rooms/{rid}/members/carol"),
        None,
    )
    .await;
    assert_eq!((s, code(&b)), (404, "not_found"));

    // Messages: as a user, as the system, idempotent by client id.
    let (s, m) = call(
        &app,
        Method::POST,
        &format!("/rooms/{rid}/messages"),
        Some(json!({"from": "alice", "body": "hello"})),
    )
    .await;
    assert_eq!(s, 201);
    assert_eq!(
        (m["sender"].as_str(), m["seq"].as_u64()),
        (Some("alice"), Some(3))
    );
    let (s, m) = call(
        &app,
        Method::POST,
        &format!("/rooms/{rid}/messages"),
        Some(json!({"body": "Class starts at 9"})),
    )
    .await;
    assert_eq!(s, 201);
    assert!(m.get("sender").is_none(), "system messages have no sender");
    let cid = "0191e6b2-7c3a-7d4e-8f00-123456789abc";
    let (s, m1) = call(
        &app,
        Method::POST,
        &format!("/rooms/{rid}/messages"),
        Some(json!({"from": "bob", "body": "once", "client_id": cid})),
    )
    .await;
    assert_eq!(s, 201);
    let (s, m2) = call(
        &app,
        Method::POST,
        &format!("/rooms/{rid}/messages"),
        Some(json!({"from": "bob", "body": "once", "client_id": cid})),
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(m1["seq"], m2["seq"]);
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/rooms/{rid}/messages"),
        Some(json!({"from": "carol", "body": "I left"})),
    )
    .await;
    assert_eq!((s, code(&b)), (403, "not_member"));
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/rooms/{rid}/messages"),
        Some(json!({"from": "alice", "body": ""})),
    )
    .await;
    assert_eq!((s, code(&b)), (400, "body_invalid"));
    let (s, b) = call(
        &app,
        Method::POST,
        "/rooms/r_nope/messages",
        Some(json!({"body": "x"})),
    )
    .await;
    assert_eq!((s, code(&b)), (404, "room_not_found"));
    let big = "x".repeat(300 * 1024);
    let (s, b) = call(
        &app,
        Method::POST,
        &format!("/rooms/{rid}/messages"),
        Some(json!({"body": big})),
    )
    .await;
    assert_eq!((s, code(&b)), (413, "invalid_input"));

    // History, both directions.
    let (s, page) = call(
        &app,
        Method::GET,
        &format!("/rooms/{rid}/messages?limit=2"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [4, 5]);
    assert_eq!(page["more"], true);
    let (_, page) = call(
        &app,
        Method::GET,
        &format!("/rooms/{rid}/messages?after=1&limit=2"),
        None,
    )
    .await;
    let seqs: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [2, 3]);
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/rooms/{rid}/messages?after=1&before=3"),
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/rooms/{rid}/messages?limit=0"),
        None,
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = call(
        &app,
        Method::GET,
        &format!("/rooms/{rid}/messages?limit=lots"),
        None,
    )
    .await;
    assert_eq!(s, 400);

    // A user's rooms.
    let (s, list) = call(&app, Method::GET, "/users/alice/rooms", None).await;
    assert_eq!(s, 200);
    assert_eq!(list["rooms"].as_array().unwrap().len(), 2);
    let (s, list) = call(&app, Method::GET, "/users/carol/rooms", None).await;
    assert_eq!((s, list["rooms"].as_array().unwrap().len()), (200, 0));

    // The other site's key sees none of it.
    for (method, path) in [
        (Method::GET, format!("/rooms/{rid}")),
        (Method::GET, format!("/rooms/{rid}/messages")),
    ] {
        let res = app.api_as(&app.other, method, &path).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path} from another site");
    }
    let res = app
        .api_as(&app.other, Method::POST, &format!("/rooms/{rid}/messages"))
        .json(&json!({"body": "cross-site"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .api_as(&app.other, Method::POST, &format!("/rooms/{rid}/members"))
        .json(&json!({"user": {"id": "eve"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .api_as(&app.other, Method::GET, "/users/alice/rooms")
        .send()
        .await
        .unwrap();
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["rooms"].as_array().unwrap().len(), 0);

    // Unknown endpoint, health.
    let (s, b) = call(&app, Method::GET, "/nope", None).await;
    assert_eq!((s, code(&b)), (404, "not_found"));
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    crate::assert_no_panics();
    app.stop().await;
}
