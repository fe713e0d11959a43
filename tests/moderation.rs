//! Moderation: a member muted in a room reads it but cannot post in it,
//! over the WebSocket or through the API, until the mute ends or is
//! lifted; other rooms and other members are untouched. Members report
//! someone else's message (`POST /reports`), and the site reads and
//! dismisses reports through the API. Each such change is in the site's
//! audit log. Each test runs on SQLite and on MariaDB.

use natter_shared::api::Muted;
use natter_shared::{ErrorCode, RoomId, ServerFrame};
use natter_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// Sends and waits for the answer: the seq, or the refusal.
async fn try_send(
    client: &mut Client,
    room: &RoomId,
    body: &str,
) -> Result<u64, (ErrorCode, String)> {
    client.try_send(room, body, Vec::new(), cid()).await
}

async fn mute(app: &TestApp, room: &RoomId, user: &str, body: Value) -> (StatusCode, Value) {
    let res = app
        .api(Method::PUT, &format!("/rooms/{room}/members/{user}/mute"))
        .json(&body)
        .send()
        .await
        .expect("answered");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn a_muted_member_reads_but_cannot_post_until_the_mute_ends(db: Db) {
    let app = spawn_app(db).await;
    let room = app.group("Class", &["alice", "mallory"]).await;
    let other = app.group("Other", &["mallory"]).await;
    let (mut mallory, _) = app.login("mallory").await;
    let (mut alice, _) = app.login("alice").await;

    // A mute long enough for every check below on a busy machine.
    let (status, body) = mute(&app, &room.id, "mallory", json!({"secs": 3600})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let muted: Muted = serde_json::from_value(body).expect("a mute");
    assert_eq!(muted.user.as_str(), "mallory");
    let soon = now_ms();
    assert!(
        muted.until > soon + 3_590_000 && muted.until <= soon + 3_600_000,
        "{muted:?}"
    );

    // Refused in that room, over the socket and through the API.
    let (code, message) = try_send(&mut mallory, &room.id, "spam")
        .await
        .expect_err("a muted member's send is refused");
    assert_eq!(code, ErrorCode::Muted);
    assert!(message.contains("until"), "{message}");
    let res = app
        .api(Method::POST, &format!("/rooms/{}/messages", room.id))
        .json(&json!({"from": "mallory", "body": "spam"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let body: Value = res.json().await.expect("an error body");
    assert_eq!(body["error"]["code"], json!("muted"));
    // Elsewhere, and for others, nothing changed; they still read.
    try_send(&mut mallory, &other.id, "fine here")
        .await
        .expect("posting in another room");
    let seq = alice.say(&room.id, "class starts").await;
    let event = mallory
        .recv_until(|f| matches!(f, ServerFrame::Event { event } if event.room == room.id))
        .await;
    assert!(matches!(event, ServerFrame::Event { event } if event.seq == seq));
    let history = app.messages(&room.id, "").await;
    assert_eq!(
        history["events"].as_array().map(Vec::len),
        Some(1),
        "nothing of mallory's was stored: {history}"
    );

    // Lifted early.
    let res = app
        .api(
            Method::DELETE,
            &format!("/rooms/{}/members/mallory/mute", room.id),
        )
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    try_send(&mut mallory, &room.id, "unmuted")
        .await
        .expect("posting after the mute was lifted");

    // A short mute ends on its own: refused until its end, taken after.
    let (status, body) = mute(&app, &room.id, "mallory", json!({"secs": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let muted: Muted = serde_json::from_value(body).expect("a mute");
    eventually(
        Duration::from_secs(5),
        "the mute to end",
        async || match try_send(&mut mallory, &room.id, "back").await {
            Ok(_) => Some(()),
            Err((code, _)) => {
                assert_eq!(code, ErrorCode::Muted);
                None
            }
        },
    )
    .await;
    assert!(now_ms() >= muted.until, "taken before the mute ended");
    app.stop().await;
    crate::assert_no_panics();
}

/// Milliseconds since the Unix epoch, as the server counts them.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn a_mute_is_refused_what_it_cannot_mean(db: Db) {
    let app = spawn_app(db).await;
    let room = app.group("Class", &["alice"]).await;
    for (body, want) in [
        (json!({"secs": 0}), StatusCode::BAD_REQUEST),
        (json!({"secs": 400 * 24 * 3600}), StatusCode::BAD_REQUEST),
        (json!({"secs": -1}), StatusCode::BAD_REQUEST),
        (json!({}), StatusCode::BAD_REQUEST),
        (json!({"secs": 60, "why": "x"}), StatusCode::BAD_REQUEST),
    ] {
        let (status, answer) = mute(&app, &room.id, "alice", body.clone()).await;
        assert_eq!(status, want, "{body}: {answer}");
        assert_eq!(answer["error"]["code"], json!("invalid_input"), "{answer}");
    }
    let (status, answer) = mute(&app, &room.id, "stranger", json!({"secs": 60})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(answer["error"]["code"], json!("not_member"));
    let missing = RoomId::parse("r_0000").expect("a room id");
    let (status, answer) = mute(&app, &missing, "alice", json!({"secs": 60})).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{answer}");
    // Another site's room is not this site's to mute in.
    let res = app
        .api_as(
            &app.other,
            Method::PUT,
            &format!("/rooms/{}/members/alice/mute", room.id),
        )
        .json(&json!({"secs": 60}))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    app.stop().await;
    crate::assert_no_panics();
}

/// `POST /reports` as `user` of the app's first site.
async fn report(app: &TestApp, user: &str, body: Value) -> (StatusCode, Value) {
    let res = app
        .http
        .post(app.url("/reports"))
        .bearer_auth(app.token(user))
        .header("X-Natter-Site", app.site.id.as_str())
        .json(&body)
        .send()
        .await
        .expect("answered");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn reports(app: &TestApp, query: &str) -> Value {
    let res = app
        .api(Method::GET, &format!("/reports{query}"))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("reports")
}

async fn members_report_messages_and_the_site_reads_them(db: Db) {
    let app = spawn_app(db).await;
    let room = app.group("Class", &["alice", "bob", "carol"]).await;
    let api = app.api_client();
    let spam = api.post(room.id.as_str(), "bob", "buy pills").await["seq"]
        .as_u64()
        .expect("a seq");
    let own = api.post(room.id.as_str(), "alice", "hello").await["seq"]
        .as_u64()
        .expect("a seq");
    api.post(room.id.as_str(), "bob", "more spam").await;
    let r = room.id.as_str();

    let (status, first) = report(
        &app,
        "alice",
        json!({"room": r, "seq": spam, "note": " spam\u{200b} "}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["reporter"], json!("alice"));
    assert_eq!(first["note"], json!("spam"), "the note is cleaned");
    // Again: the first report stands.
    let (status, again) = report(
        &app,
        "alice",
        json!({"room": r, "seq": spam, "note": "other"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["note"], json!("spam"));
    let (status, _) = report(&app, "carol", json!({"room": r, "seq": spam})).await;
    assert_eq!(status, StatusCode::CREATED);
    // Through the backend, for a user it names.
    let res = app
        .http
        .post(app.url("/reports"))
        .bearer_auth(&app.site.api_key)
        .header("X-Natter-User", "carol")
        .json(&json!({"room": r, "seq": spam + 2}))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::CREATED);

    // What cannot be reported.
    for (user, body, want, code) in [
        (
            "alice",
            json!({"room": r, "seq": own}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "alice",
            json!({"room": r, "seq": 99}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "dave",
            json!({"room": r, "seq": spam}),
            StatusCode::FORBIDDEN,
            "not_member",
        ),
        (
            "alice",
            json!({"room": r, "seq": spam, "note": "x".repeat(1001)}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "alice",
            json!({"room": r}),
            StatusCode::BAD_REQUEST,
            "invalid_input",
        ),
        (
            "alice",
            json!({"room": "r_0", "seq": 1}),
            StatusCode::FORBIDDEN,
            "not_member",
        ),
    ] {
        let (status, answer) = report(&app, user, body.clone()).await;
        assert_eq!(status, want, "{user} {body}: {answer}");
        assert_eq!(answer["error"]["code"], json!(code), "{answer}");
    }
    let res = app
        .http
        .post(app.url("/reports"))
        .bearer_auth(token_for(&app.other, "alice", 3600))
        .header("X-Natter-Site", app.site.id.as_str())
        .json(&json!({"room": r, "seq": spam}))
        .send()
        .await
        .expect("answered");
    assert_eq!(
        res.status(),
        StatusCode::UNAUTHORIZED,
        "a token of another site"
    );

    // The site reads them, newest first, a page at a time.
    let all = reports(&app, "").await;
    let listed: Vec<(&str, u64)> = all["reports"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            (
                r["reporter"].as_str().unwrap_or(""),
                r["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![("carol", spam + 2), ("carol", spam), ("alice", spam)]
    );
    let page = reports(&app, "?limit=2").await;
    assert_eq!(page["reports"].as_array().map(Vec::len), Some(2));
    let next = page["next"].as_str().expect("a next page");
    let rest = reports(&app, &format!("?limit=2&before={next}")).await;
    assert_eq!(rest["reports"][0]["id"], first["id"]);
    assert!(rest.get("next").is_none(), "{rest}");
    // Another site sees none of them; a dismissed one is gone.
    let res = app
        .api_as(&app.other, Method::GET, "/reports")
        .send()
        .await
        .expect("answered");
    let theirs: Value = res.json().await.expect("reports");
    assert_eq!(theirs["reports"], json!([]));
    let id = first["id"].as_str().expect("an id");
    let res = app
        .api_as(&app.other, Method::DELETE, &format!("/reports/{id}"))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .api(Method::DELETE, &format!("/reports/{id}"))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        reports(&app, "").await["reports"].as_array().map(Vec::len),
        Some(2)
    );
    app.stop().await;
    crate::assert_no_panics();
}

/// What the API did, from the audit log: `(actor, action, subject)`,
/// newest first.
async fn audited(
    app: &TestApp,
    site: &TestSite,
    query: &str,
) -> (Vec<(String, String, String)>, Value) {
    let res = app
        .api_as(site, Method::GET, &format!("/audit{query}"))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::OK);
    let log: Value = res.json().await.expect("the log");
    let entries = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (text("actor"), text("action"), text("subject"))
        })
        .collect();
    (entries, log)
}

async fn the_audit_log_keeps_what_the_site_did(db: Db) {
    let app = spawn_app(db).await;
    let api = app.api_client();
    let room = app.group("Class", &["alice", "bob"]).await;
    let r = room.id.as_str();
    let seq = api.post(r, "bob", "spam").await["seq"]
        .as_u64()
        .expect("a seq");
    let (status, _) = report(&app, "alice", json!({"room": r, "seq": seq})).await;
    assert_eq!(status, StatusCode::CREATED);
    let report_id = reports(&app, "").await["reports"][0]["id"]
        .as_str()
        .expect("a report")
        .to_string();
    let call = async |method: Method, path: String, body: Option<Value>| {
        let mut req = app.api(method.clone(), &path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("answered");
        assert!(
            res.status().is_success(),
            "{method} {path}: {}",
            res.status()
        );
        res.json::<Value>().await.unwrap_or(Value::Null)
    };
    call(Method::DELETE, format!("/rooms/{r}/messages/{seq}"), None).await;
    // Deleting again changes nothing, and is not logged again.
    call(Method::DELETE, format!("/rooms/{r}/messages/{seq}"), None).await;
    call(Method::DELETE, format!("/reports/{report_id}"), None).await;
    call(Method::PUT, "/users/bob/ban".into(), None).await;
    call(Method::DELETE, "/users/bob/ban".into(), None).await;
    call(
        Method::PUT,
        format!("/rooms/{r}/members/bob/mute"),
        Some(json!({"secs": 60})),
    )
    .await;
    call(Method::DELETE, format!("/rooms/{r}/members/bob/mute"), None).await;
    let settings = json!({"receipts": {"dialog": true, "group": false}, "presence": true});
    call(Method::PUT, "/settings".into(), Some(settings)).await;
    call(
        Method::PUT,
        "/file-types".into(),
        Some(json!({"types": "image/*"})),
    )
    .await;
    let hook = call(
        Method::POST,
        "/webhooks".into(),
        Some(json!({"url": "https://example.com/h", "events": ["message.created"]})),
    )
    .await;
    let hook = hook["id"].as_str().expect("an endpoint").to_string();
    call(
        Method::PATCH,
        format!("/webhooks/{hook}"),
        Some(json!({"events": ["member.left"]})),
    )
    .await;
    call(Method::POST, format!("/webhooks/{hook}/resume"), None).await;
    call(Method::DELETE, format!("/webhooks/{hook}"), None).await;

    let (entries, log) = audited(&app, &app.site, "").await;
    let expected: Vec<(String, String, String)> = [
        ("webhook.delete", hook.clone()),
        ("webhook.resume", hook.clone()),
        ("webhook.change", hook.clone()),
        ("webhook.create", hook.clone()),
        ("file_types.change", "file-types".into()),
        ("settings.change", "settings".into()),
        ("member.unmute", format!("{r}/bob")),
        ("member.mute", format!("{r}/bob")),
        ("user.unban", "bob".into()),
        ("user.ban", "bob".into()),
        ("report.dismiss", report_id),
        ("message.delete", format!("{r}/{seq}")),
    ]
    .into_iter()
    .map(|(action, subject)| ("api".to_string(), action.to_string(), subject))
    .collect();
    assert_eq!(entries, expected, "{log}");
    assert!(log["entries"][0]["at"].as_i64().is_some_and(|at| at > 0));
    assert_eq!(
        log["entries"][7]["detail"]
            .as_str()
            .map(|d| d.starts_with("until ")),
        Some(true)
    );
    // A page at a time; another site's log is its own.
    let (page, log) = audited(&app, &app.site, "?limit=5").await;
    assert_eq!(page, expected[..5]);
    let next = log["next"].as_u64().expect("a next page");
    let (rest, _) = audited(&app, &app.site, &format!("?limit=100&before={next}")).await;
    assert_eq!(rest, expected[5..]);
    let (theirs, _) = audited(&app, &app.other, "").await;
    assert!(theirs.is_empty(), "{theirs:?}");
    let res = app
        .api(Method::GET, "/audit?limit=0")
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
    crate::assert_no_panics();
}

on_both!(
    the_audit_log_keeps_what_the_site_did,
    a_muted_member_reads_but_cannot_post_until_the_mute_ends,
    a_mute_is_refused_what_it_cannot_mean,
    members_report_messages_and_the_site_reads_them,
);
