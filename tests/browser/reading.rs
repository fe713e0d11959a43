//! Read state: unread counts from the server on a fresh browser, reading
//! only what the person can see, receipts, two browsers of one person that
//! agree, presence; what was read offline, after a reload; and a room
//! whose server history was restored from a backup.

use crate::harness::{Link, PATIENCE, Page, Person, World};
use natter_tests::Db;
use std::time::Duration;

/// The host page's unread count, as `Natter.on('unread')` told it.
async fn host_unread(person: &Person) -> Option<u64> {
    person.browser.enter_parent_frame().await.ok();
    let n = person.js("return window.unread;", vec![]).await;
    n.as_u64()
}

/// Waits until the host page heard `n` unread.
async fn wait_host_unread(person: &Person, n: u64) {
    person.browser.enter_parent_frame().await.ok();
    person
        .wait(
            &format!("the host page to hear {n} unread"),
            &format!("return window.unread === {n};"),
        )
        .await;
}

/// Opens the host page, the chat closed, and waits until it hears `n`
/// unread.
async fn host_page_hears(person: &Person, n: u64) {
    person
        .browser
        .goto(&person.page_url(Page::Plain))
        .await
        .expect("the host page loads");
    wait_host_unread(person, n).await;
}

/// The server's unread total for a user (the site's backend asks).
async fn server_unread(world: &World, user: &str) -> u64 {
    let res = world
        .api()
        .request(reqwest::Method::GET, &format!("/users/{user}/unread"))
        .send()
        .await
        .expect("unread counts");
    let body: serde_json::Value = res.json().await.expect("json");
    body["total"].as_u64().expect("a total")
}

/// The receipt under the person's last message.
const LAST_RECEIPT: &str = "var r = Array.from(document.querySelectorAll('.messages li.msg.mine .receipt')); \
     var last = r[r.length - 1]; return last ? last.textContent : null;";

pub async fn read_state_is_the_servers_and_shown(db: Db) {
    let world = World::new(db).await;
    let room = world.dialog("alice", "bob").await;
    world.post(&room, "alice", "first question").await;
    world.post(&room, "alice", "second question").await;

    // A fresh browser: the host page hears the count before the chat is
    // ever opened, and a closed panel reads nothing.
    let bob = world.person("bob").await;
    host_page_hears(&bob, 2).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(
        server_unread(&world, "bob").await,
        2,
        "nothing read while closed"
    );

    let alice = world.person("alice").await;
    alice.visit().await;
    alice.choose("Bob").await;
    alice
        .wait(
            "Alice's messages",
            "return document.querySelectorAll('.messages li.msg.mine').length === 2;",
        )
        .await;
    assert_eq!(alice.js(LAST_RECEIPT, vec![]).await, "sent");

    // Bob opens the chat: he reads, Alice sees it at once, his page hears 0.
    bob.open_chat().await;
    bob.wait_status("Online").await;
    let took = alice
        .wait_for(
            "the read receipt",
            "var r = Array.from(document.querySelectorAll('.messages li.msg.mine .receipt.read')); return r.length === 2;",
            Duration::from_secs(3),
        )
        .await;
    eprintln!("the receipt showed {took:?} after Bob's chat was online");
    assert_eq!(alice.js(LAST_RECEIPT, vec![]).await, "read");
    alice
        .wait("Bob shown online", "var p = document.querySelector('.presence'); return !!p && p.textContent === 'online';")
        .await;
    wait_host_unread(&bob, 0).await;

    // His second browser agrees: nothing unread, before the chat opens.
    let bob2 = world.person("bob").await;
    host_page_hears(&bob2, 0).await;

    // A message while his panel is closed stays unread on every device.
    bob.browser.enter_parent_frame().await.ok();
    bob.in_shadow(".natter-launcher")
        .await
        .click()
        .await
        .expect("close the chat");
    world.post(&room, "alice", "third question").await;
    wait_host_unread(&bob, 1).await;
    wait_host_unread(&bob2, 1).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(server_unread(&world, "bob").await, 1);
    assert_eq!(host_unread(&bob).await, Some(1));

    // Bob leaves: after the grace period Alice sees when he was last here.
    for p in [&bob, &bob2] {
        let _ = p.browser.clone().close().await;
    }
    alice
        .wait(
            "Bob shown last seen",
            "var p = document.querySelector('.presence'); return !!p && p.textContent.startsWith('last seen');",
        )
        .await;
    world.finish(vec![alice]).await;
}

/// Bob reads a conversation while the chat server is out of reach, then
/// reloads the page: the reloaded chat holds none of those messages in
/// memory, yet when it connects again the count it gets back takes off
/// what he read (his markers go before the catch-up), and one message
/// written meanwhile is all that is unread, on his page and the server.
pub async fn what_was_read_offline_counts_after_a_reload(db: Db) {
    let world = World::new(db).await;
    let room = world.dialog("alice", "bob").await;
    // Two conversations: the chat opens none by itself, and has a way back.
    world.dialog("bob", "carol").await;
    for body in ["one", "two", "three"] {
        world.post(&room, "alice", body).await;
    }
    let bob = world.person("bob").await;
    host_page_hears(&bob, 3).await;

    bob.proxy.set(Link::NoSocket);
    bob.open_chat().await;
    bob.wait_offline().await;
    bob.choose("Alice").await;
    bob.wait_message("three", PATIENCE).await;
    wait_host_unread(&bob, 0).await;
    bob.open_chat().await;
    bob.back().await;
    world.post(&room, "alice", "four").await;

    bob.reload().await;
    bob.open_chat().await;
    bob.wait_offline().await;
    wait_host_unread(&bob, 0).await;
    assert_eq!(
        server_unread(&world, "bob").await,
        4,
        "the server has not heard"
    );

    bob.proxy.set(Link::Up);
    bob.open_chat().await;
    bob.wait_status("Online").await;
    wait_host_unread(&bob, 1).await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(host_unread(&bob).await, Some(1), "and it stays so");
    assert_eq!(server_unread(&world, "bob").await, 1);
    world.finish(vec![bob]).await;
}

pub async fn a_room_restored_from_a_backup_is_rebuilt(db: Db) {
    let (mut world, room, alice, bob) = World::dialog_of_two(db).await;
    for body in ["one", "two", "three"] {
        alice.type_and_send(body).await;
        bob.wait_message(body, crate::harness::PATIENCE).await;
    }
    // The server goes down; its database comes back from a backup of when
    // the room held "one" only; the room goes on from there.
    world.server.kill();
    world.rewind(&room, 1).await;
    world.server.restart().await;
    for p in [&alice, &bob] {
        p.proxy.retarget(world.server.addr);
    }
    for body in ["two again", "three again", "four"] {
        world.post(&room, "alice", body).await;
    }
    bob.wait_message("four", crate::harness::PATIENCE).await;
    bob.wait(
        "the lost history gone",
        "return !Array.from(document.querySelectorAll('.messages .body')).some(b => b.textContent === 'two');",
    )
    .await;
    assert_eq!(
        bob.bodies().await,
        ["one", "two again", "three again", "four"],
        "the room as the server has it now, nothing of the lost history"
    );
    world.finish(vec![alice, bob]).await;
}

/// Scenario: a group's header says how many members it has and how many
/// are online, and opens to their names, online ones marked: Alice sees
/// only herself online, then Bob too once his browser opens the chat. Her
/// message there reads "read by 1" once Bob has read it, and a tap on that
/// names him.
pub async fn a_group_shows_its_members_and_who_is_online(db: Db) {
    let world = World::new(db).await;
    world
        .group(
            "Team",
            &[("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol")],
        )
        .await;
    let alice = world.person("alice").await;
    alice.visit().await;
    alice.choose("Team").await;
    alice
        .wait(
            "the group's members",
            "var s = document.querySelector('details.members summary');
             return s !== null && s.textContent === '3 members, 1 online';",
        )
        .await;
    let bob = world.person("bob").await;
    bob.visit().await;
    alice
        .wait(
            "Bob online in the list",
            "var s = document.querySelector('details.members summary');
             var on = Array.from(document.querySelectorAll('details.members li.online'))
               .map(l => l.textContent).join(',');
             var all = Array.from(document.querySelectorAll('details.members li'))
               .map(l => l.textContent).join(',');
             return s.textContent === '3 members, 2 online' && on === 'Alice,Bob'
               && all === 'Alice,Bob,Carol';",
        )
        .await;

    // Bob reads her message: "read by 1", and a tap on it names him.
    alice.type_and_send("Standup at 10?").await;
    bob.choose("Team").await;
    bob.wait_message("Standup at 10?", crate::harness::PATIENCE)
        .await;
    alice
        .wait(
            "read by one",
            "var r = document.querySelector('.messages li.msg.mine button.receipt.read');
             return r !== null && r.textContent === 'read by 1';",
        )
        .await;
    alice
        .js(
            "document.querySelector('.messages li.msg.mine button.receipt').click();",
            vec![],
        )
        .await;
    alice
        .wait(
            "who read it, on a tap",
            "var w = document.querySelector('.messages li.msg.mine .readers');
             var r = document.querySelector('.messages li.msg.mine button.receipt');
             return w !== null && w.textContent === 'Read by Bob'
               && r.getAttribute('aria-expanded') === 'true';",
        )
        .await;
    world.finish(vec![alice, bob]).await;
}
