//! Scenario 4: history is simply there, from IndexedDB, before any server
//! reply.

use crate::harness::{Link, PATIENCE, World};
use natter_tests::Db;

pub async fn cached_history_shows_before_any_server_reply(db: Db) {
    let world = World::new(db).await;
    let team = world
        .group("Team", &[("alice", "Alice"), ("bob", "Bob")])
        .await;
    let dialog = world.dialog("alice", "bob").await;
    let team_bodies: Vec<String> = (1..=30).map(|i| format!("team {i}")).collect();
    world.post_many(&team, "bob", &team_bodies).await;
    let bodies: Vec<String> = (1..=1000).map(|i| format!("history {i}")).collect();
    world.post_many(&dialog, "bob", &bodies).await;
    let stored: Vec<String> = world
        .rows(&dialog)
        .await
        .into_iter()
        .map(|r| r.body)
        .collect();
    assert_eq!(stored.len(), 1000, "the server holds the 1,000 messages");

    // Alice reads all of it once, which caches it. At the top of the
    // list an older page comes in above, and the line she was reading
    // stays where it was.
    let alice = world.person("alice").await;
    alice.visit().await;
    alice.choose("Bob").await;
    alice.wait_message(&stored[999], PATIENCE).await;
    let kept = alice
        .js_async(
            "var done = arguments[arguments.length - 1];
             var l = document.querySelector('.messages');
             var first = l.querySelector('li.msg');
             var n = l.querySelectorAll('li.msg').length;
             l.scrollTop = 0; l.dispatchEvent(new Event('scroll'));
             var at = () => first.getBoundingClientRect().top - l.getBoundingClientRect().top;
             var before = at();
             (function check() {
               if (l.querySelectorAll('li.msg').length === n) return setTimeout(check, 20);
               requestAnimationFrame(() => requestAnimationFrame(() => done({
                 lines: l.querySelectorAll('li.msg').length - n,
                 scrolled: l.scrollTop,
                 moved: at() - before,
               })));
             })();",
            vec![],
        )
        .await;
    assert!(
        kept["lines"].as_u64() > Some(0)
            && kept["scrolled"].as_f64() > Some(0.0)
            && kept["moved"].as_f64().is_some_and(|o| o.abs() < 2.0),
        "the line at the top should stay in place as older lines come in above it: {kept}"
    );
    alice.scroll_to_start(&stored[0]).await;
    alice.choose("Team").await;
    alice.wait_message("team 30", PATIENCE).await;
    alice.choose("Bob").await;
    alice.wait_message(&stored[999], PATIENCE).await;
    let cached = alice.cached(world.site.id.as_str(), &dialog).await;
    assert_eq!(
        cached.len(),
        1000,
        "Alice's browser caches all 1,000 messages"
    );

    // No server reply can arrive from here on.
    alice.proxy.set(Link::NoSocket);
    alice.browser.refresh().await.expect("reload");
    alice.open_chat().await;
    alice
        .wait(
            "a conversation from the cache",
            "return document.querySelectorAll('.messages li.msg').length > 0",
        )
        .await;
    let status = alice.status().await;
    assert!(
        !status.starts_with("Online"),
        "the messages must come from the cache, yet the chat says {status:?}"
    );
    let first_paint = alice.first_paint().await;
    alice.choose("Bob").await;
    alice.wait_message(&stored[999], PATIENCE).await;
    let shown = alice.bodies().await;
    assert_eq!(
        shown[..],
        stored[stored.len() - shown.len()..],
        "Alice should see the newest messages, in order, straight from the cache"
    );

    // Switching conversations renders from the cache too.
    let switch_ms = alice
        .js_async(
            "var done = arguments[arguments.length - 1];
             var t0 = performance.now();
             var team = Array.from(document.querySelectorAll('.rooms .room'))
               .find(r => r.querySelector('.name').textContent === 'Team');
             team.click();
             (function check() {
               var b = Array.from(document.querySelectorAll('.messages li.msg .body'));
               if (b.some(x => x.textContent === 'team 30')) done(performance.now() - t0);
               else requestAnimationFrame(check);
             })();",
            vec![],
        )
        .await
        .as_f64()
        .expect("switch time");
    alice.choose("Bob").await;
    alice.wait_message(&stored[999], PATIENCE).await;
    alice.scroll_to_start(&stored[0]).await;
    assert_eq!(
        alice.bodies().await,
        stored,
        "scrolling back offline should show all 1,000 messages from the cache, in order"
    );
    eprintln!(
        "first paint of the message list: {first_paint:.0} ms after the chat's page started; \
         switching conversations: {switch_ms:.0} ms ({db:?})"
    );
    world.finish(vec![alice]).await;
}
