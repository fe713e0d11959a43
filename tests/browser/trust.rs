//! What the browser keeps of a user shows only to a token the server took:
//! a token that merely names the user shows nothing of it, and the
//! server's refusal of the user (a ban) deletes it.

use crate::harness::{Link, PATIENCE, Person, World};
use crate::tabs::databases;
use natter_server::auth::Secret;
use natter_tests::{Db, TestSite, token_named};
use std::time::{Duration, Instant};

/// Scenario: Alice's chat is kept in her browser. A page with a token for
/// Alice that the site did not sign shows nothing of it, with the chat
/// server unreachable and then refusing the token, and deletes nothing;
/// her own token opens it at once without a connection; when the site
/// bans her, the server's refusal deletes it.
pub async fn a_token_the_server_never_took_shows_nothing_of_the_cache(db: Db) {
    let (world, _room, alice, bob) = World::dialog_of_two(db).await;
    let name = format!("natter:{}:alice", world.site.id);
    bob.type_and_send("a secret for alice").await;
    alice.wait_message("a secret for alice", PATIENCE).await;
    assert!(databases(&alice).await.contains(&name));

    let guess = TestSite {
        id: world.site.id.clone(),
        secret: Secret::new("a guess at the site's secret"),
        api_key: String::new(),
    };
    let forged = token_named(&guess, "alice", "Alice", 3600);

    // The server cannot be asked: nothing shows, however long.
    alice.proxy.set(Link::Down);
    alice.visit_with_token(&forged).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_shows_nothing(&alice, "with the server unreachable").await;

    // The server refuses the token: still nothing, and nothing deleted.
    alice.proxy.set(Link::Up);
    alice.wait_status("Sign-in refused (token_invalid)").await;
    alice
        .wait(
            "the refusal explained",
            "var n = document.querySelector('.notice');
             return !!n && n.textContent.includes('refused the sign-in');",
        )
        .await;
    assert_shows_nothing(&alice, "with the token refused").await;
    assert!(
        databases(&alice).await.contains(&name),
        "a token the server refused deletes nothing"
    );

    // Her own token (the one the server took) opens the chat at once,
    // without a connection.
    alice.proxy.set(Link::NoSocket);
    alice.visit_page(crate::harness::Page::Plain).await;
    alice.wait_message("a secret for alice", PATIENCE).await;

    // Banned: the server's refusal deletes what the browser kept.
    let res = world
        .api()
        .request(reqwest::Method::PUT, "/users/alice/ban")
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 204);
    alice.proxy.set(Link::Up);
    alice
        .wait(
            "the ban explained",
            "var n = document.querySelector('.notice');
             return !!n && n.textContent.includes('closed to you');",
        )
        .await;
    assert_shows_nothing(&alice, "once banned").await;
    let deadline = Instant::now() + PATIENCE;
    while databases(&alice).await.contains(&name) {
        assert!(
            Instant::now() < deadline,
            "alice's database is still there after her ban"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    world.finish(vec![alice, bob]).await;
}

/// Neither a room nor a message of the person's shows.
async fn assert_shows_nothing(person: &Person, when: &str) {
    let shown = person
        .js(
            "return Array.from(document.querySelectorAll('.rooms li, .messages li'))
               .map(function (e) { return e.textContent; });",
            vec![],
        )
        .await;
    assert_eq!(
        shown,
        serde_json::json!([]),
        "{} sees their kept chat {when}: {}",
        person.user,
        person.screen().await
    );
}
