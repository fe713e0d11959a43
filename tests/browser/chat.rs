//! Scenario 1: two people chat in a dialog on a host page.

use crate::harness::World;
use natter_tests::Db;
use std::time::Duration;

/// How soon the other person must see a message.
const LIVE: Duration = Duration::from_secs(1);

pub async fn two_people_chat_in_a_dialog(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;

    let turns = [
        (&alice, &bob, "Hi Bob! Did the parcel arrive?"),
        (&bob, &alice, "Hi Alice, yes, this morning."),
        (&alice, &bob, "Great: is everything in it?"),
        (&bob, &alice, "All three books <and> the \"mug\" 🎉"),
    ];
    // Bob sees Alice typing, until her message arrives.
    let typing_is = |text: &str| {
        format!(
            "var t = document.querySelector('.typing'); return !!t && t.textContent === {};",
            serde_json::json!(text)
        )
    };
    alice.type_text("Hi Bob!").await;
    bob.wait_for(
        "Alice's typing to show",
        &typing_is("Alice is typing…"),
        LIVE,
    )
    .await;
    alice.type_text(" Did the parcel arrive?").await;
    alice.press_send().await;
    bob.wait_message(turns[0].2, LIVE).await;
    bob.wait_for(
        "Alice's typing to end with her message",
        &typing_is(""),
        LIVE,
    )
    .await;

    for (i, (from, to, body)) in turns.into_iter().enumerate() {
        if i > 0 {
            from.type_and_send(body).await;
        }
        let took = to.wait_message(body, LIVE).await;
        tracing_note(&to.user, body, took);
        from.wait_message(body, LIVE).await;
    }

    let expected: Vec<String> = turns.iter().map(|(_, _, b)| b.to_string()).collect();
    assert_eq!(
        alice.bodies().await,
        expected,
        "Alice's screen should show the conversation in the order it was written"
    );
    assert_eq!(
        bob.bodies().await,
        expected,
        "Bob's screen should show the same conversation in the same order as Alice's"
    );
    let authors: Vec<Option<String>> = bob.lines().await.into_iter().map(|l| l.author).collect();
    assert_eq!(
        authors,
        ["Alice", "Bob", "Alice", "Bob"].map(|a| Some(a.to_string())),
        "Bob should see who wrote each message"
    );
    let rows = world.rows(&room).await;
    let stored: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(
        stored, expected,
        "the database should hold the four messages in order"
    );
    world.finish(vec![alice, bob]).await;
}

fn tracing_note(who: &str, body: &str, took: Duration) {
    eprintln!("{who} saw {body:?} after {took:?}");
}
