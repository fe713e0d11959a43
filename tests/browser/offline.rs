//! Scenarios 2 and 3: writing offline, then reloading or reopening the
//! page before the network returns.

use crate::harness::{Link, PATIENCE, Person, World};
use natter_tests::Db;
use std::collections::HashSet;

pub async fn messages_written_offline_arrive_once_in_order(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;

    alice.go_offline().await;
    alice.wait_offline().await;
    let bodies: Vec<String> = (1..=20).map(|i| format!("written offline #{i}")).collect();
    alice.send_all(&bodies).await;
    alice
        .wait_pending(20, "her 20 messages shown as sending")
        .await;
    assert_eq!(
        alice.bodies().await,
        bodies,
        "Alice should see her offline messages in the order she wrote them"
    );
    assert!(
        world.rows(&room).await.is_empty(),
        "nothing may reach the server while Alice is offline"
    );

    alice.go_online().await;
    bob.wait_message("written offline #20", PATIENCE).await;
    alice.wait_pending(0, "her messages to be sent").await;
    assert_eq!(
        bob.bodies().await,
        bodies,
        "Bob should get Alice's offline messages exactly once and in order"
    );
    assert_eq!(
        alice.bodies().await,
        bodies,
        "Alice's own view after sending"
    );
    assert_delivered_once(&world, &room, &bodies).await;
    world.finish(vec![alice, bob]).await;
}

/// Alice's connection dies without a word: her socket stays open and
/// nothing comes through it. Her message waits; when her system says the
/// network is back, the chat asks the server, hears nothing, connects
/// anew, and the message goes out once.
pub async fn a_connection_lost_without_a_word_is_replaced(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;

    alice.proxy.set(Link::Silent);
    let bodies = vec!["through a dead connection".to_string()];
    alice.send_all(&bodies).await;
    alice.wait_pending(1, "her message shown as sending").await;
    assert!(
        world.rows(&room).await.is_empty(),
        "nothing can reach the server through the dead connection"
    );

    alice.network_blinks().await;
    bob.wait_message("through a dead connection", PATIENCE)
        .await;
    alice.wait_pending(0, "her message to be sent").await;
    assert_eq!(alice.bodies().await, bodies);
    assert_delivered_once(&world, &room, &bodies).await;
    world.finish(vec![alice, bob]).await;
}

pub async fn a_reload_or_a_new_tab_keeps_the_offline_messages(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;

    // The chat server is out of Alice's reach; the site itself is not.
    alice.proxy.set(Link::NoSocket);
    alice.wait_offline().await;
    let bodies: Vec<String> = (1..=5).map(|i| format!("before the reload #{i}")).collect();
    alice.send_all(&bodies).await;
    expect_pending(&alice, &bodies, "after writing them").await;

    alice.browser.refresh().await.expect("reload");
    alice.open_chat().await;
    alice.choose("Bob").await;
    expect_pending(&alice, &bodies, "after reloading the page").await;

    // A new tab, then the old one closed.
    let old = alice.browser.window().await.expect("window");
    let new = alice.browser.new_window(true).await.expect("new tab");
    alice.browser.switch_to_window(old).await.expect("old tab");
    alice
        .browser
        .close_window()
        .await
        .expect("close the old tab");
    alice
        .browser
        .switch_to_window(new.handle)
        .await
        .expect("new tab");
    alice
        .browser
        .goto(&alice.page_url(crate::harness::Page::Plain))
        .await
        .expect("the host page loads");
    alice.open_chat().await;
    alice.choose("Bob").await;
    expect_pending(&alice, &bodies, "in a new tab").await;
    assert!(world.rows(&room).await.is_empty(), "nothing sent yet");

    alice.proxy.set(Link::Up);
    bob.wait_message("before the reload #5", PATIENCE).await;
    alice.wait_pending(0, "her messages to be sent").await;
    assert_eq!(
        bob.bodies().await,
        bodies,
        "Bob should get the five messages once each, in order"
    );
    assert_delivered_once(&world, &room, &bodies).await;
    world.finish(vec![alice, bob]).await;
}

/// The person sees exactly these messages, all still sending.
async fn expect_pending(person: &Person, bodies: &[String], when: &str) {
    person
        .wait_pending(
            bodies.len(),
            &format!("{} messages shown as sending {when}", bodies.len()),
        )
        .await;
    let lines = person.lines().await;
    let pending: Vec<String> = lines
        .iter()
        .filter(|l| l.pending)
        .map(|l| l.body.clone())
        .collect();
    assert_eq!(
        pending, bodies,
        "{} should see the messages written offline, in order, {when}",
        person.user
    );
}

/// The database holds each body once, in order, each with its own id.
pub async fn assert_delivered_once(world: &World, room: &str, bodies: &[String]) {
    // Late duplicates would come with the next drain. This window (a fixed
    // sleep on purpose) is to see that none comes: an absence is no
    // condition to wait for.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let rows = world.rows(room).await;
    let stored: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(
        stored, bodies,
        "the database should hold each message exactly once, in order"
    );
    let ids: HashSet<_> = rows.iter().map(|r| r.client_id.clone()).collect();
    assert_eq!(ids.len(), rows.len(), "every message has its own client id");
}
