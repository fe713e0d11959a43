//! Webhooks: a real local endpoint (`webhooks/receiver.mjs`) checks every
//! request's signature with the Standard Webhooks reference library from
//! npm; the tests check what arrived: every event, in seq order per room,
//! repeats only under the same `webhook-id`, through an endpoint that is
//! down for a while, one that keeps failing (paused, then resumed), and a
//! server killed with SIGKILL mid-delivery. Each test runs on SQLite and
//! on MariaDB.

mod receiver;

use crate::nodes::{Node, log_dir, site_on};
use natter_shared::webhooks::{Webhook, WebhookStatus, WebhookType};
use natter_tests::*;
use receiver::{
    Receiver, add_hook, assert_in_seq_order, assert_one_id_per_event, attempts, get_hook,
    seqs_by_room,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

/// How long a test waits for webhooks that retries deliver.
const SLOW: Duration = Duration::from_secs(30);

async fn signed_and_in_order_per_room(db: Db) {
    let app = spawn_app(db).await;
    let api = app.api_client();
    let mut all = Receiver::start(0).await;
    let mut messages = Receiver::start(0).await;
    let hook_all = add_hook(&api, &all.url(), &WebhookType::ALL).await;
    assert!(hook_all.secret.starts_with("whsec_"), "{}", hook_all.secret);
    assert_eq!(hook_all.status, WebhookStatus::Active);
    assert_eq!(hook_all.events, WebhookType::ALL.to_vec());
    let hook_messages = add_hook(&api, &messages.url(), &[WebhookType::MessageCreated]).await;
    assert_ne!(hook_all.secret, hook_messages.secret);
    all.command(&format!("secret {}", hook_all.secret)).await;
    messages
        .command(&format!("secret {}", hook_messages.secret))
        .await;

    let team = app.group("Team", &["alice", "bob"]).await;
    let room = team.id.as_str();
    for body in ["one", "two", "three"] {
        api.post(room, "alice", body).await;
    }
    let res = api
        .request(Method::POST, &format!("/rooms/{room}/members"))
        .json(&json!({"user": {"id": "carol"}}))
        .send()
        .await
        .expect("answered");
    assert!(res.status().is_success());
    let res = api
        .request(Method::DELETE, &format!("/rooms/{room}/members/carol"))
        .send()
        .await
        .expect("answered");
    assert!(res.status().is_success());
    let res = api
        .request(Method::DELETE, &format!("/rooms/{room}/messages/1"))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::OK);
    let dialog = app.dialog("alice", "dave").await;
    api.post(dialog.id.as_str(), "dave", "hi").await;
    // Another site's chat is never this site's business.
    let other = app.api_client_of(&app.other);
    let elsewhere = other.group("Elsewhere", &[User::id("zed")]).await;
    other
        .post(elsewhere.id.as_str(), "zed", "not for you")
        .await;

    all.until(WAIT, "nine webhooks", |got| got.len() >= 9).await;
    messages
        .until(WAIT, "four messages", |got| got.len() >= 4)
        .await;
    let got = all.accepted();
    let team_kinds: Vec<(&str, u64)> = got
        .iter()
        .filter(|d| d.room == room)
        .map(|d| (d.kind.as_str(), d.seq))
        .collect();
    assert_eq!(
        team_kinds,
        vec![
            ("room.created", 0),
            ("message.created", 1),
            ("message.created", 2),
            ("message.created", 3),
            ("member.joined", 4),
            ("member.left", 5),
            ("message.deleted", 6),
        ],
        "the room's webhooks, in seq order"
    );
    let created = got
        .iter()
        .find(|d| d.room == room && d.seq == 0)
        .expect("room.created");
    assert_eq!(created.payload["data"]["room"]["title"], json!("Team"));
    assert_eq!(created.payload["data"]["site"], json!(app.site.id.as_str()));
    let second = got
        .iter()
        .find(|d| d.room == room && d.seq == 2)
        .expect("seq 2");
    assert_eq!(second.payload["data"]["event"]["body"], json!("two"));
    assert_eq!(second.payload["data"]["event"]["sender"], json!("alice"));
    assert!(
        second.payload["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{}",
        second.payload
    );
    let joined = got
        .iter()
        .find(|d| d.kind == "member.joined")
        .expect("joined");
    assert_eq!(joined.payload["data"]["event"]["user"], json!("carol"));
    let deleted = got
        .iter()
        .find(|d| d.kind == "message.deleted")
        .expect("deleted");
    assert_eq!(deleted.payload["data"]["event"]["target"], json!(1));
    let dialog_kinds: Vec<&str> = got
        .iter()
        .filter(|d| d.room == dialog.id.as_str())
        .map(|d| d.kind.as_str())
        .collect();
    assert_eq!(dialog_kinds, vec!["room.created", "message.created"]);
    assert!(
        got.iter().all(|d| d.room != elsewhere.id.as_str()),
        "another site's events came to this site's endpoint"
    );
    assert_one_id_per_event(&got);

    let only = messages.accepted();
    assert_eq!(only.len(), 4, "{only:?}");
    assert!(only.iter().all(|d| d.kind == "message.created"), "{only:?}");

    // The log shows each attempt; nothing waits any more.
    let id = hook_all.id.as_str();
    let log = eventually(WAIT, "the attempts logged", async || {
        let log = attempts(&api, id).await;
        (log.attempts.len() >= 9).then_some(log)
    })
    .await;
    assert!(log.attempts.iter().all(|a| a.ok && a.status == Some(204)));
    let ids: Vec<&str> = got.iter().map(|d| d.id.as_str()).collect();
    assert!(
        log.attempts
            .iter()
            .all(|a| ids.contains(&a.message_id.as_str()))
    );
    eventually(WAIT, "nothing pending", async || {
        (get_hook(&api, id).await.pending == 0).then_some(())
    })
    .await;
    app.stop().await;
    crate::assert_no_panics();
}

async fn an_endpoint_down_for_a_while_gets_everything_in_order(db: Db) {
    let app = spawn_app_with(db, |c| {
        c.webhooks.webhook_backoff_ms = 100;
        c.webhooks.webhook_backoff_max_secs = 1;
    })
    .await;
    let api = app.api_client();
    let mut receiver = Receiver::start(0).await;
    let port = receiver.port;
    let hook = add_hook(&api, &receiver.url(), &WebhookType::ALL).await;
    receiver.command(&format!("secret {}", hook.secret)).await;
    let rooms = [
        app.group("A", &["alice"]).await,
        app.group("B", &["alice"]).await,
    ];
    receiver
        .until(WAIT, "both rooms", |got| got.len() >= 2)
        .await;
    // Recorded as delivered (the receiver reports before it answers).
    eventually(WAIT, "nothing pending", async || {
        (get_hook(&api, &hook.id).await.pending == 0).then_some(())
    })
    .await;
    receiver.kill().await;
    for n in 0..20 {
        let room = rooms[n % 2].id.as_str();
        api.post(room, "alice", &format!("m{n}")).await;
    }
    eventually(WAIT, "a failed attempt", async || {
        attempts(&api, &hook.id)
            .await
            .attempts
            .iter()
            .find(|a| !a.ok)
            .map(|a| assert!(a.error.is_some() && a.status.is_none(), "{a:?}"))
    })
    .await;
    assert_eq!(get_hook(&api, &hook.id).await.pending, 20);

    let mut back = Receiver::start(port).await;
    back.command(&format!("secret {}", hook.secret)).await;
    back.until(SLOW, "the 20 messages", |got| {
        got.iter().filter(|d| d.kind == "message.created").count() >= 20
    })
    .await;
    let got = back.accepted();
    assert_in_seq_order(&got);
    assert_one_id_per_event(&got);
    let by_room = seqs_by_room(&got, "message.created");
    for room in &rooms {
        assert_eq!(
            by_room.get(room.id.as_str()),
            Some(&(1..=10).collect::<Vec<u64>>()),
            "room {} got every message once, in order",
            room.id
        );
    }
    app.stop().await;
    crate::assert_no_panics();
}

async fn an_endpoint_that_keeps_failing_is_paused_until_resumed(db: Db) {
    let app = spawn_app_with(db, |c| {
        c.webhooks.webhook_backoff_ms = 100;
        c.webhooks.webhook_backoff_max_secs = 1;
        c.webhooks.webhook_retry_secs = 2;
    })
    .await;
    let api = app.api_client();
    let mut receiver = Receiver::start(0).await;
    let hook = add_hook(&api, &receiver.url(), &WebhookType::ALL).await;
    receiver.command(&format!("secret {}", hook.secret)).await;
    receiver.command("fail").await;
    let room = app.group("Room", &["alice"]).await;
    let paused = eventually(SLOW, "the endpoint paused", async || {
        let hook = get_hook(&api, &hook.id).await;
        (hook.status == WebhookStatus::Paused).then_some(hook)
    })
    .await;
    assert!(paused.paused_at.is_some());
    let log = attempts(&api, &hook.id).await;
    assert!(log.attempts.len() >= 2, "it was retried first: {log:?}");
    assert!(log.attempts.iter().all(|a| !a.ok && a.status == Some(500)));

    // While paused nothing is sent, and what happens waits.
    api.post(room.id.as_str(), "alice", "while paused").await;
    let tried = log.attempts.len();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        attempts(&api, &hook.id).await.attempts.len(),
        tried,
        "sent while paused"
    );
    assert_eq!(get_hook(&api, &hook.id).await.pending, 2);

    receiver.command("ok").await;
    let res = api
        .request(Method::POST, &format!("/webhooks/{}/resume", hook.id))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::OK);
    let resumed: Webhook = res.json().await.expect("a webhook");
    assert_eq!(resumed.status, WebhookStatus::Active);
    receiver
        .until(WAIT, "both webhooks after the resume", |got| got.len() >= 2)
        .await;
    let kinds: Vec<(String, u64)> = receiver
        .accepted()
        .iter()
        .map(|d| (d.kind.clone(), d.seq))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("room.created".to_string(), 0),
            ("message.created".to_string(), 1)
        ]
    );
    assert_one_id_per_event(&receiver.got);
    app.stop().await;
    crate::assert_no_panics();
}

async fn a_server_killed_mid_delivery_loses_nothing(db: Db) {
    let (url, _scratch) = fresh_database(db).await;
    let site = site_on(&url).await;
    let dir = log_dir("webhooks-kill");
    let mut receiver = Receiver::start(0).await;
    // Slow answers, so that the kill lands while requests are in flight.
    receiver.command("delay 100").await;
    let args: Vec<String> = [
        "--webhook-lease-secs",
        "2",
        "--webhook-backoff-ms",
        "100",
        "--webhook-backoff-max-secs",
        "1",
    ]
    .map(String::from)
    .to_vec();
    let mut node = Node::start("natter", &dir, &url, &args).await;
    let api = node.api(&site);
    let hook = add_hook(&api, &receiver.url(), &[WebhookType::MessageCreated]).await;
    receiver.command(&format!("secret {}", hook.secret)).await;
    let room = api.group("Busy", &[User::id("alice")]).await;
    for n in 0..30 {
        api.post(room.id.as_str(), "alice", &format!("m{n}")).await;
    }
    receiver
        .until(WAIT, "a few webhooks", |got| got.len() >= 3)
        .await;
    node.kill();
    node.spawn().await;
    receiver
        .until(SLOW, "all 30 after the restart", |got| {
            let mut seqs: Vec<u64> = got.iter().map(|d| d.seq).collect();
            seqs.sort_unstable();
            seqs.dedup();
            seqs.len() >= 30
        })
        .await;
    let got = receiver.accepted();
    assert_one_id_per_event(&got);
    assert_in_seq_order(&got);
    let mut seqs: Vec<u64> = got.iter().map(|d| d.seq).collect();
    seqs.dedup();
    assert_eq!(seqs, (1..=30).collect::<Vec<u64>>(), "each once, in order");
    node.assert_no_panic();
}

async fn two_nodes_send_each_webhook_once(db: Db) {
    let (url, _scratch) = fresh_database(db).await;
    let site = site_on(&url).await;
    let dir = log_dir("webhooks-nodes");
    let mut receiver = Receiver::start(0).await;
    // Both nodes look for work often, so both try for the endpoint.
    let args: Vec<String> = ["--webhook-poll-ms", "20"].map(String::from).to_vec();
    let a = Node::start("a", &dir, &url, &args).await;
    let b = Node::start("b", &dir, &url, &args).await;
    let (api_a, api_b) = (a.api(&site), b.api(&site));
    let hook = add_hook(&api_a, &receiver.url(), &WebhookType::ALL).await;
    receiver.command(&format!("secret {}", hook.secret)).await;
    let room = api_a.group("Shared", &[User::id("alice")]).await;
    for n in 0..40 {
        let api = if n % 2 == 0 { &api_a } else { &api_b };
        api.post(room.id.as_str(), "alice", &format!("m{n}")).await;
    }
    receiver
        .until(WAIT, "all 41 webhooks", |got| got.len() >= 41)
        .await;
    eventually(WAIT, "nothing pending", async || {
        (get_hook(&api_b, &hook.id).await.pending == 0).then_some(())
    })
    .await;
    // Anything sent twice would have come by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    while let Ok(value) = receiver.lines.try_recv() {
        receiver.take(value);
    }
    let got = receiver.accepted();
    assert_eq!(got.len(), 41, "each event once, not once per node");
    assert_in_seq_order(&got);
    assert_one_id_per_event(&got);
    a.assert_no_panic();
    b.assert_no_panic();
}

/// An endpoint slower than the lease: the node sending keeps renewing it
/// while its requests are out, so the other node never takes the
/// endpoint over and sends the same events again.
async fn a_round_slower_than_the_lease_is_sent_once(db: Db) {
    let (url, _scratch) = fresh_database(db).await;
    let site = site_on(&url).await;
    let dir = log_dir("webhooks-slow");
    let mut receiver = Receiver::start(0).await;
    let args: Vec<String> = ["--webhook-poll-ms", "20", "--webhook-lease-secs", "3"]
        .map(String::from)
        .to_vec();
    let a = Node::start("a", &dir, &url, &args).await;
    let b = Node::start("b", &dir, &url, &args).await;
    let (api_a, api_b) = (a.api(&site), b.api(&site));
    let hook = add_hook(&api_a, &receiver.url(), &[WebhookType::MessageCreated]).await;
    receiver.command(&format!("secret {}", hook.secret)).await;
    // Each answer takes longer than the whole lease. (The lease is
    // renewed every second: a stall of two would lose it.)
    receiver.command("delay 4000").await;
    let one = api_a.group("One", &[User::id("alice")]).await;
    let two = api_b.group("Two", &[User::id("alice")]).await;
    for n in 0..2 {
        api_a.post(one.id.as_str(), "alice", &format!("a{n}")).await;
        api_b.post(two.id.as_str(), "alice", &format!("b{n}")).await;
    }
    receiver
        .until(SLOW, "all 4 webhooks", |got| got.len() >= 4)
        .await;
    eventually(SLOW, "nothing pending", async || {
        (get_hook(&api_b, &hook.id).await.pending == 0).then_some(())
    })
    .await;
    // A second sending would be answered by now.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    while let Ok(value) = receiver.lines.try_recv() {
        receiver.take(value);
    }
    let got = receiver.accepted();
    assert_eq!(
        got.len(),
        4,
        "each event once, though every round outlived the lease"
    );
    assert_in_seq_order(&got);
    a.assert_no_panic();
    b.assert_no_panic();
}

async fn a_report_goes_out_as_message_reported(db: Db) {
    let app = spawn_app(db).await;
    let api = app.api_client();
    let mut receiver = Receiver::start(0).await;
    let hook = add_hook(&api, &receiver.url(), &[WebhookType::MessageReported]).await;
    receiver.command(&format!("secret {}", hook.secret)).await;
    let room = app.group("Class", &["alice", "bob"]).await;
    let seq = api.post(room.id.as_str(), "bob", "buy pills").await["seq"]
        .as_u64()
        .expect("a seq");
    let res = app
        .http
        .post(app.url("/reports"))
        .bearer_auth(app.token("alice"))
        .header("X-Natter-Site", app.site.id.as_str())
        .json(&json!({"room": room.id.as_str(), "seq": seq, "note": "spam"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::CREATED);
    let report: Value = res.json().await.expect("a report");
    receiver
        .until(WAIT, "the report's webhook", |got| !got.is_empty())
        .await;
    let got = receiver.accepted();
    assert_eq!(got.len(), 1, "only what the endpoint asked for");
    let data = &got[0].payload["data"];
    assert_eq!(got[0].kind, "message.reported");
    assert_eq!(data["report"], report);
    assert_eq!(data["event"]["body"], json!("buy pills"));
    assert_eq!(data["event"]["sender"], json!("bob"));
    app.stop().await;
    crate::assert_no_panics();
}

async fn the_api_checks_what_it_is_given(db: Db) {
    let app = spawn_app(db).await;
    let api = app.api_client();
    let post = async |body: Value| {
        let res = api
            .request(Method::POST, "/webhooks")
            .json(&body)
            .send()
            .await
            .expect("answered");
        let status = res.status();
        let body: Value = res.json().await.expect("a JSON body");
        (status, body)
    };
    for bad in [
        json!({"url": "ftp://example.com/x", "events": ["message.created"]}),
        json!({"url": "not a url", "events": ["message.created"]}),
        json!({"url": format!("https://example.com/{}", "x".repeat(2100)), "events": ["message.created"]}),
        json!({"url": "https://example.com/x", "events": []}),
        json!({"url": "https://example.com/x", "events": ["message.flagged"]}),
        json!({"url": "https://example.com/x"}),
        json!({"url": "https://example.com/x", "events": ["message.created"], "more": 1}),
    ] {
        let (status, body) = post(bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"]["code"], json!("invalid_input"), "{body}");
    }
    let first = add_hook(&api, "https://example.com/a", &[WebhookType::MemberJoined]).await;
    // Changed in place.
    let res = api
        .request(Method::PATCH, &format!("/webhooks/{}", first.id))
        .json(&json!({"url": "https://example.com/b", "events": ["member.left", "member.left"]}))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::OK);
    let changed: Webhook = res.json().await.expect("a webhook");
    assert_eq!(changed.url, "https://example.com/b");
    assert_eq!(changed.events, vec![WebhookType::MemberLeft]);
    assert_eq!(changed.secret, first.secret);
    // Not another site's.
    let other = app.api_client_of(&app.other);
    for (method, path) in [
        (Method::GET, format!("/webhooks/{}", first.id)),
        (Method::PATCH, format!("/webhooks/{}", first.id)),
        (Method::DELETE, format!("/webhooks/{}", first.id)),
        (Method::POST, format!("/webhooks/{}/resume", first.id)),
        (Method::GET, format!("/webhooks/{}/attempts", first.id)),
    ] {
        let res = other
            .request(method.clone(), &path)
            .json(&json!({}))
            .send()
            .await
            .expect("answered");
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{method} {path}");
    }
    let res = other
        .request(Method::GET, "/webhooks")
        .send()
        .await
        .expect("answered");
    let list: Value = res.json().await.expect("a list");
    assert_eq!(list["webhooks"], json!([]));
    let res = api
        .request(
            Method::GET,
            &format!("/webhooks/{}/attempts?limit=0", first.id),
        )
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // At most 16 per site, however many are asked for at once.
    let asked = (1..=20).map(|n| {
        post(json!({"url": format!("https://example.com/{n}"), "events": ["room.created"]}))
    });
    let answers = futures_util::future::join_all(asked).await;
    let made = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    let refused = answers
        .iter()
        .filter(|(status, body)| {
            *status == StatusCode::BAD_REQUEST && body["error"]["code"] == "invalid_input"
        })
        .count();
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| s.as_u16()).collect();
    assert_eq!((made, refused), (15, 5), "{statuses:?}");
    let (status, body) =
        post(json!({"url": "https://example.com/17", "events": ["room.created"]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Deleted with what waits for it.
    app.group("Queued", &["alice"]).await;
    let res = api
        .request(Method::DELETE, &format!("/webhooks/{}", first.id))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = api
        .request(Method::GET, &format!("/webhooks/{}", first.id))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = api
        .request(Method::GET, "/webhooks")
        .send()
        .await
        .expect("answered");
    let list: Value = res.json().await.expect("a list");
    assert_eq!(list["webhooks"].as_array().map(Vec::len), Some(15));
    app.stop().await;
    crate::assert_no_panics();
}

on_both!(
    signed_and_in_order_per_room,
    an_endpoint_down_for_a_while_gets_everything_in_order,
    an_endpoint_that_keeps_failing_is_paused_until_resumed,
    a_server_killed_mid_delivery_loses_nothing,
    two_nodes_send_each_webhook_once,
    a_round_slower_than_the_lease_is_sent_once,
    a_report_goes_out_as_message_reported,
    the_api_checks_what_it_is_given,
);
