//! Scenario 6: two tabs of one person share one connection; the tab
//! without it shows and says typing and how the connection stands; closing
//! the tab that holds it hands it over.

use crate::harness::{Link, PATIENCE, Page, Person, World};
use natter_tests::Db;
use std::time::{Duration, Instant};

pub async fn two_tabs_share_one_connection_and_hand_it_over(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    let first = alice.browser.window().await.expect("first tab");

    let second = second_tab(&alice).await;
    settle_sockets(&alice, 1, "with two tabs open").await;

    // The tab without the connection shows typing and says it.
    bob.type_text("a thought").await;
    alice
        .wait(
            "Bob typing, shown in the tab without the connection",
            "var t = document.querySelector('.typing'); return !!t && t.textContent.includes('Bob');",
        )
        .await;
    alice.type_text("hmm").await;
    bob.wait(
        "Alice typing in her second tab",
        "var t = document.querySelector('.typing'); return !!t && t.textContent.includes('Alice');",
    )
    .await;
    bob.js(
        "var i = document.querySelector('form.composer input[name=body]');
         i.value = ''; i.dispatchEvent(new Event('input', {bubbles: true}));",
        vec![],
    )
    .await;
    alice
        .js(
            "var i = document.querySelector('form.composer input[name=body]');
             i.value = ''; i.dispatchEvent(new Event('input', {bubbles: true}));",
            vec![],
        )
        .await;
    // It says so when the tab holding the connection is offline.
    alice.proxy.set(Link::NoSocket);
    alice.wait_status("Offline (through another tab)").await;
    alice.proxy.set(Link::Up);
    alice.wait_status("Online (through another tab)").await;

    alice.type_and_send("from the second tab").await;
    bob.wait_message("from the second tab", PATIENCE).await;
    alice.wait_message("from the second tab", PATIENCE).await;

    alice
        .browser
        .switch_to_window(first.clone())
        .await
        .expect("first tab");
    alice.open_chat().await;
    alice.wait_message("from the second tab", PATIENCE).await;
    alice.type_and_send("from the first tab").await;
    bob.wait_message("from the first tab", PATIENCE).await;

    // The first tab holds the connection; closing it hands it over.
    alice
        .browser
        .close_window()
        .await
        .expect("close the first tab");
    alice
        .browser
        .switch_to_window(second)
        .await
        .expect("second tab");
    alice.open_chat().await;
    alice.wait_status("Online").await;
    settle_sockets(&alice, 1, "after closing the tab that held it").await;
    alice.wait_message("from the first tab", PATIENCE).await;
    alice.type_and_send("after the handover").await;
    bob.wait_message("after the handover", PATIENCE).await;
    alice.wait_message("after the handover", PATIENCE).await;

    let bodies: Vec<String> = [
        "from the second tab",
        "from the first tab",
        "after the handover",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(
        bob.bodies().await,
        bodies,
        "Bob should get each of Alice's messages once, from whichever tab"
    );
    assert_eq!(alice.bodies().await, bodies, "Alice's remaining tab");
    crate::offline::assert_delivered_once(&world, &room, &bodies).await;
    world.finish(vec![alice, bob]).await;
}

/// Opens the host page in a second tab of the person's browser, opens the
/// chat there on Bob, and waits until it says the first tab holds the
/// connection; returns the tab.
async fn second_tab(person: &Person) -> fantoccini::wd::WindowHandle {
    let tab = person
        .browser
        .new_window(true)
        .await
        .expect("second tab")
        .handle;
    (person.browser.switch_to_window(tab.clone()).await).expect("second tab");
    let page = person.page_url(Page::Plain);
    person.browser.goto(&page).await.expect("host page");
    person.open_chat().await;
    person.choose("Bob").await;
    person.wait_status("Online (through another tab)").await;
    tab
}

/// Waits for the person's WebSockets to number `n`, then checks they stay so
/// for a second.
async fn settle_sockets(person: &Person, n: usize, when: &str) {
    let deadline = Instant::now() + PATIENCE;
    while person.proxy.sockets() != n {
        assert!(
            Instant::now() < deadline,
            "{} should hold {n} connection(s) {when}, but holds {}",
            person.user,
            person.proxy.sockets()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Then a second in which no other socket may open: a fixed window on
    // purpose, as an absence is no condition to wait for.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        person.proxy.sockets(),
        n,
        "{} should hold {n} connection(s) {when}",
        person.user
    );
}

/// The names of the chat origin's IndexedDB databases, read in the chat's
/// frame (the host page is another origin).
pub async fn databases(person: &Person) -> Vec<String> {
    let names = person
        .js_async(
            "var done = arguments[arguments.length - 1];
             indexedDB.databases().then(function (l) { done(l.map(function (d) { return d.name; })); },
                                        function (e) { done(String(e)); });",
            vec![],
        )
        .await;
    serde_json::from_value(names.clone()).unwrap_or_else(|_| panic!("databases: {names}"))
}

/// Scenario: signing out with `Natter.logout()` asks first when messages
/// would be lost, then closes the connection, wipes the user's database
/// and signs the other tab out too.
pub async fn logout_wipes_the_user_and_signs_out_every_tab(db: Db) {
    let (world, _room, alice, bob) = World::dialog_of_two(db).await;
    let name = format!("natter:{}:alice", world.site.id);
    let first = alice.browser.window().await.expect("first tab");
    alice.open_chat().await;
    alice.choose("Bob").await;
    alice.type_and_send("before signing out").await;
    bob.wait_message("before signing out", PATIENCE).await;
    assert!(
        databases(&alice).await.contains(&name),
        "alice's chat is kept"
    );

    second_tab(&alice).await;

    // A message that cannot go out: signing out would lose it.
    alice.proxy.set(Link::NoSocket);
    alice.wait_status("Offline (through another tab)").await;
    alice.type_and_send("never sent").await;
    alice.wait_pending(1, "the message waiting").await;
    let host = "window.__unsent = null; window.__out = false;
        Natter.on('unsent', function (n) { window.__unsent = n; });
        Natter.on('loggedout', function () { window.__out = true; });
        Natter.logout();";
    alice
        .browser
        .enter_parent_frame()
        .await
        .expect("the host page");
    alice.js(host, vec![]).await;
    alice
        .wait(
            "the page told of one unsent message",
            "return window.__unsent === 1;",
        )
        .await;
    alice.open_chat().await;
    assert!(
        databases(&alice).await.contains(&name),
        "nothing wiped while a message waits"
    );

    alice
        .browser
        .enter_parent_frame()
        .await
        .expect("the host page");
    alice.js("Natter.logout({force: true});", vec![]).await;
    alice
        .wait(
            "the page told of the sign-out",
            "return window.__out === true;",
        )
        .await;
    alice.open_chat().await;
    alice.wait_status("Waiting for sign-in…").await;
    assert!(
        !databases(&alice).await.contains(&name),
        "alice's database is gone"
    );
    assert_eq!(
        alice.bodies().await,
        Vec::<String>::new(),
        "nothing of alice shows"
    );

    // The first tab, which held the connection, is signed out too.
    alice
        .browser
        .switch_to_window(first)
        .await
        .expect("first tab");
    alice.open_chat().await;
    alice.wait_status("Waiting for sign-in…").await;
    assert_eq!(
        alice.bodies().await,
        Vec::<String>::new(),
        "nor in the other tab"
    );
    assert!(!databases(&alice).await.contains(&name));
    alice.proxy.set(Link::Up);
    world.finish(vec![alice, bob]).await;
}
