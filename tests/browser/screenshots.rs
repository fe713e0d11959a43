//! Scenario 9: the README's screenshots, taken from a real run: the room
//! list (with an unread room), a conversation (with a photo and a
//! document, read receipts and presence), and the offline state.

use crate::files::{png, upload};
use crate::harness::{PATIENCE, World};
use natter_tests::Db;
use std::path::PathBuf;

pub async fn the_readme_screenshots(db: Db) {
    let world = World::new(db).await;
    let dialog = world.dialog("alice", "bob").await;
    let team = world
        .group(
            "Support team",
            &[("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol")],
        )
        .await;
    world
        .post(&team, "carol", "Release notes are up: please have a look.")
        .await;
    let alice = world.person("alice").await;
    let bob = world.person("bob").await;
    tokio::join!(alice.visit(), bob.visit());
    tokio::join!(alice.choose("Bob"), bob.choose("Alice"));
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("docs")
        .join("screenshots");

    let talk = [
        (&bob, "Hi Alice! Is the order #1042 on its way?"),
        (&alice, "Hi Bob, it left the warehouse this morning."),
        (&bob, "Perfect, thank you!"),
    ];
    for (who, body) in talk {
        who.type_and_send(body).await;
        alice.wait_message(body, PATIENCE).await;
    }
    bob.wait_message("Perfect, thank you!", PATIENCE).await;
    // Bob's phone sends a photo of the parcel's label and the invoice.
    let photo = upload(&world, "bob", "label.png", &png(800, 450)).await;
    let mut pdf = b"%PDF-1.4\n".to_vec();
    pdf.extend((0..182_000u32).map(|i| (i % 251) as u8));
    let invoice = upload(&world, "bob", "invoice-1042.pdf", &pdf).await;
    let res = world
        .api()
        .request(reqwest::Method::POST, &format!("/rooms/{dialog}/messages"))
        .json(&serde_json::json!({"from": "bob", "body": "Here is the label and the invoice.", "files": [photo, invoice]}))
        .send()
        .await
        .expect("posting files");
    assert_eq!(res.status(), 201);
    alice
        .wait_message("Here is the label and the invoice.", PATIENCE)
        .await;
    alice.choose("Support team").await;
    alice
        .wait_message("Release notes are up: please have a look.", PATIENCE)
        .await;
    // Back to the list, where Bob's next message waits unread.
    alice.back().await;
    world
        .post(&dialog, "bob", "One more thing: can I change the address?")
        .await;
    alice
        .wait(
            "the unread badge",
            "return Array.from(document.querySelectorAll('.rooms .badge')).some(b => b.textContent === '1');",
        )
        .await;
    widget_shot(&alice, &dir.join("rooms.png")).await;

    alice.choose("Bob").await;
    alice
        .wait_message("One more thing: can I change the address?", PATIENCE)
        .await;
    alice
        .wait(
            "the label's thumbnail",
            "var i = document.querySelector('.files .file-image img'); return !!i && i.complete && i.naturalWidth > 0;",
        )
        .await;
    widget_shot(&alice, &dir.join("conversation.png")).await;
    alice.browser.enter_parent_frame().await.expect("host page");
    let page = alice
        .browser
        .screenshot()
        .await
        .expect("screenshot of the page");
    std::fs::write(dir.join("page.png"), page).expect("writing the screenshot");
    alice.open_chat().await;

    alice.go_offline().await;
    alice.wait_offline().await;
    alice
        .type_and_send("Yes: I will update it as soon as I am back online.")
        .await;
    alice.wait_pending(1, "the message shown as sending").await;
    widget_shot(&alice, &dir.join("offline.png")).await;
    alice.go_online().await;
    bob.wait_message(
        "Yes: I will update it as soon as I am back online.",
        PATIENCE,
    )
    .await;
    world.finish(vec![alice, bob]).await;
}

/// A PNG of the chat window as the person sees it on the host page.
async fn widget_shot(person: &crate::harness::Person, path: &std::path::Path) {
    person
        .browser
        .enter_parent_frame()
        .await
        .expect("host page");
    let frame = person.in_shadow("iframe.natter-frame").await;
    let png = frame.screenshot().await.expect("screenshot of the chat");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("screenshot directory");
    }
    std::fs::write(path, png).expect("writing the screenshot");
    frame.enter_frame().await.expect("back into the chat");
}
