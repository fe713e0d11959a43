//! Who may connect: origins, tokens, timeouts.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures_util::StreamExt;
use natter_server::auth::{Claims, Secret, sign};
use natter_shared::{ClientFrame, ErrorCode, ServerFrame};
use natter_tests::*;

async fn refused_with(app: &TestApp, token: String, code: ErrorCode) {
    let mut client = Client::connect(app, &app.site.id, Some(ORIGIN)).await;
    client.send(&ClientFrame::Auth { token }).await;
    match client.recv().await {
        ServerFrame::Error { code: got, .. } => assert_eq!(got, code),
        other => panic!("expected an error frame with {code:?}, got {other:?}"),
    }
    let close = client.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4001);
    assert_eq!(close.reason.as_str(), code.as_str());
}

fn claims(site: &str, user: &str, exp: i64) -> Claims {
    Claims {
        sub: user.into(),
        site: site.into(),
        exp,
        nbf: None,
        iat: None,
        name: None,
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_with_a_clear_close_reason() {
    let app = spawn_app(Db::Sqlite).await;
    let site = app.site.id.to_string();
    let now = now_secs();

    refused_with(
        &app,
        token_for(&app.site, "alice", -3600),
        ErrorCode::TokenExpired,
    )
    .await;

    let mut early = claims(&site, "alice", now + 7200);
    early.nbf = Some(now + 3600);
    refused_with(
        &app,
        sign(&early, &app.site.secret),
        ErrorCode::TokenNotYetValid,
    )
    .await;

    let forged = sign(
        &claims(&site, "alice", now + 600),
        &Secret::new("not-the-secret"),
    );
    refused_with(&app, forged, ErrorCode::TokenInvalid).await;

    let other_site = token_for(&app.other, "alice", 600);
    refused_with(&app, other_site, ErrorCode::TokenWrongSite).await;

    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&site, "alice", now + 600)).unwrap());
    refused_with(
        &app,
        format!("{header}.{payload}."),
        ErrorCode::TokenAlgorithm,
    )
    .await;

    refused_with(&app, "not.a.jwt".into(), ErrorCode::TokenInvalid).await;

    // A token that lasts longer than `--max-token-ttl` (24 h by default):
    // issued a day ago and valid an hour more, or a week from now.
    let mut old = claims(&site, "alice", now + 3600);
    old.iat = Some(now - 86_400);
    refused_with(&app, sign(&old, &app.site.secret), ErrorCode::TokenInvalid).await;
    let long = claims(&site, "alice", now + 7 * 86_400);
    refused_with(&app, sign(&long, &app.site.secret), ErrorCode::TokenInvalid).await;

    // A frame other than auth first is refused too.
    let mut client = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    client.send(&ClientFrame::Ping { nonce: None }).await;
    assert!(matches!(
        client.recv().await,
        ServerFrame::Error {
            code: ErrorCode::Unauthenticated,
            ..
        }
    ));
    assert_eq!(u16::from(client.closed().await.expect("close").code), 4001);

    // And the good token still works.
    let (_alice, _) = app.login("alice").await;
    crate::assert_no_panics();
    app.stop().await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_auth_timeout() {
    let app = spawn_app_with(Db::Sqlite, |c| c.limits.auth_timeout_secs = 1).await;
    let mut client = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    let close = client.closed().await.expect("close frame");
    assert_eq!(u16::from(close.code), 4002);
    app.stop().await;
}

async fn upgrade_status(
    app: &TestApp,
    site: &str,
    origin: Option<&str>,
    protocol: Option<&str>,
) -> (u16, serde_json::Value) {
    let mut req = app
        .http
        .get(app.url(&format!("/ws?site={site}")))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    if let Some(origin) = origin {
        req = req.header("origin", origin);
    }
    if let Some(protocol) = protocol {
        req = req.header("sec-websocket-protocol", protocol);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    let body = if status == 101 {
        serde_json::Value::Null
    } else {
        res.json().await.expect("a JSON error body")
    };
    (status, body)
}

#[tokio::test]
async fn with_a_public_url_only_it_is_the_servers_own_origin() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.public_url = Some("https://chat.example.com".into());
    })
    .await;
    let site = app.site.id.to_string();
    // A page on a rebound name that points here sends its own name as
    // both Host and Origin: no longer enough.
    let own = format!("http://{}", app.addr);
    let (status, _) = upgrade_status(&app, &site, Some(&own), Some("natter.v1")).await;
    assert_eq!(status, 403);
    for origin in ["https://chat.example.com", ORIGIN] {
        let (status, _) = upgrade_status(&app, &site, Some(origin), Some("natter.v1")).await;
        assert_eq!(status, 101, "{origin}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_before_the_upgrade() {
    let app = spawn_app(Db::Sqlite).await;
    let site = app.site.id.to_string();
    let (status, body) =
        upgrade_status(&app, &site, Some("https://evil.example"), Some("natter.v1")).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "unauthorized");
    // The other site's origin is foreign to this site.
    let (status, _) = upgrade_status(
        &app,
        &site,
        Some("https://other.example"),
        Some("natter.v1"),
    )
    .await;
    assert_eq!(status, 403);
    // Registered origin and the server's own origin are allowed.
    let (status, _) = upgrade_status(&app, &site, Some(ORIGIN), Some("natter.v1")).await;
    assert_eq!(status, 101);
    let own = format!("http://{}", app.addr);
    let (status, _) = upgrade_status(&app, &site, Some(&own), Some("natter.v1")).await;
    assert_eq!(status, 101);
    // Unknown site, missing site, missing subprotocol.
    let (status, body) = upgrade_status(&app, "nope", Some(ORIGIN), Some("natter.v1")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("unknown_site"))
    );
    let (status, _) = upgrade_status(&app, "", Some(ORIGIN), Some("natter.v1")).await;
    assert_eq!(status, 400);
    let (status, body) = upgrade_status(&app, &site, Some(ORIGIN), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_input"))
    );
    app.stop().await;
}

#[tokio::test]
async fn an_expired_token_is_renewed_on_the_open_connection_or_it_closes() {
    let app = spawn_app_with(Db::Sqlite, |c| {
        c.limits.heartbeat_secs = 1;
        c.guard.token_grace_secs = 2;
    })
    .await;
    // Past its `exp` already, but within the 30 s leeway: accepted now,
    // expired a couple of seconds later.
    let expiring = |user: &str| token_for(&app.site, user, -28);
    fn expired(frame: &ServerFrame) -> bool {
        matches!(
            frame,
            ServerFrame::Error {
                code: ErrorCode::TokenExpired,
                client_id: None,
                ..
            }
        )
    }

    let mut renewing = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    renewing.auth(&expiring("alice")).await;
    renewing.sync(vec![]).await;
    let mut lapsing = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    lapsing.auth(&expiring("bob")).await;
    // Bob never renews: told, then closed after the grace period. Read
    // meanwhile (a socket that is not read does not answer pings).
    let lapsed = tokio::spawn(async move {
        lapsing.recv_until(expired).await;
        lapsing.closed().await.expect("a close frame")
    });

    renewing.recv_until(expired).await;
    // Another user's token does not take the connection over.
    renewing
        .send(&ClientFrame::Auth {
            token: app.token("mallory"),
        })
        .await;
    match renewing.recv().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::InvalidInput),
        other => panic!("expected invalid_input, got {other:?}"),
    }
    renewing.auth(&app.token("alice")).await;

    // Keep reading Alice's socket while Bob's grace runs out: an unread
    // socket answers no pings and would be dropped as silent.
    let mut lapsed = lapsed;
    let close = loop {
        tokio::select! {
            done = &mut lapsed => break done.expect("bob's task"),
            next = renewing.ws.next() => assert!(
                matches!(next, Some(Ok(ref m)) if !m.is_close()),
                "alice's connection ended: {next:?}"
            ),
        }
    };
    assert_eq!(u16::from(close.code), 4001);
    assert_eq!(close.reason.as_str(), "token_expired");

    // Alice's connection outlives both the old token and the grace.
    let until = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while let Ok(next) = tokio::time::timeout_at(until, renewing.ws.next()).await {
        assert!(
            matches!(next, Some(Ok(ref m)) if !m.is_close()),
            "alice's connection ended: {next:?}"
        );
    }
    renewing.send(&ClientFrame::Ping { nonce: Some(7) }).await;
    let pong = renewing
        .recv_until(|f| matches!(f, ServerFrame::Pong { .. }))
        .await;
    assert_eq!(pong, ServerFrame::Pong { nonce: Some(7) });
    app.stop().await;
}

async fn a_banned_user_is_closed_at_once_and_kept_out_until_the_ban_is_lifted(db: Db) {
    let app = spawn_app(db).await;
    let room = app.dialog("alice", "bob").await;
    let (mut alice, _) = app.login("alice").await;
    let (mut second, _) = app.login("alice").await;
    let (mut bob, _) = app.login("bob").await;

    let ban = |method| app.api(method, "/users/alice/ban");
    let res = ban(reqwest::Method::PUT).send().await.expect("api");
    assert_eq!(res.status(), 204);
    for conn in [&mut alice, &mut second] {
        match conn.recv().await {
            ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::Banned),
            other => panic!("expected banned, got {other:?}"),
        }
        let close = conn.closed().await.expect("a close frame");
        assert_eq!(
            (u16::from(close.code), close.reason.as_str()),
            (4001, "banned")
        );
    }
    // Her token no longer connects; Bob is not affected.
    let mut again = Client::connect(&app, &app.site.id, Some(ORIGIN)).await;
    again
        .send(&ClientFrame::Auth {
            token: app.token("alice"),
        })
        .await;
    match again.recv().await {
        ServerFrame::Error { code, .. } => assert_eq!(code, ErrorCode::Banned),
        other => panic!("expected banned, got {other:?}"),
    }
    bob.say(&room.id, "still here").await;
    // Nor may the site post as her.
    let res = app
        .api(
            reqwest::Method::POST,
            &format!("/rooms/{}/messages", room.id),
        )
        .json(&serde_json::json!({"from": "alice", "body": "as alice"}))
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "banned");

    let res = ban(reqwest::Method::DELETE).send().await.expect("api");
    assert_eq!(res.status(), 204);
    let (mut alice, _) = app.login("alice").await;
    alice.say(&room.id, "back").await;
    app.stop().await;
}

/// `GET /session`: the widget asks whether the server takes a token before
/// it shows what the browser kept for the token's user.
async fn the_session_route_says_whether_a_token_is_taken(db: Db) {
    let app = spawn_app(db).await;
    let http = reqwest::Client::new();
    let ask = |token: &str| {
        http.get(app.url("/session"))
            .bearer_auth(token)
            .header("X-Natter-Site", app.site.id.as_str())
            .send()
    };
    let answer = |res: reqwest::Response| async move {
        let status = res.status().as_u16();
        let body: serde_json::Value = res.json().await.expect("a JSON body");
        (status, body)
    };

    let (status, body) = answer(ask(&app.token("alice")).await.expect("http")).await;
    assert_eq!((status, &body["user"]), (200, &serde_json::json!("alice")));

    let now = now_secs();
    let site = app.site.id.to_string();
    let forged = sign(
        &claims(&site, "alice", now + 600),
        &Secret::new("not-the-secret"),
    );
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&site, "alice", now + 600)).unwrap());
    let unsigned = format!("{header}.{payload}.");
    for (token, code) in [
        (forged, "token_invalid"),
        (unsigned, "token_algorithm"),
        (token_for(&app.site, "alice", -60), "token_expired"),
        (token_for(&app.other, "alice", 600), "token_wrong_site"),
    ] {
        let (status, body) = answer(ask(&token).await.expect("http")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some(code)));
    }
    let (status, body) = answer(ask(&app.site.api_key).await.expect("http")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (400, Some("invalid_input"))
    );
    let res = http
        .get(app.url("/session"))
        .bearer_auth(app.token("alice"))
        .send()
        .await
        .expect("http");
    let (status, body) = answer(res).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unknown_site"))
    );

    let res = app
        .api(reqwest::Method::PUT, "/users/alice/ban")
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 204);
    let (status, body) = answer(ask(&app.token("alice")).await.expect("http")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("banned"))
    );
    let (status, _) = answer(ask(&app.token("bob")).await.expect("http")).await;
    assert_eq!(status, 200, "only alice is banned");
    app.stop().await;
}

on_both!(
    a_banned_user_is_closed_at_once_and_kept_out_until_the_ban_is_lifted,
    the_session_route_says_whether_a_token_is_taken
);
