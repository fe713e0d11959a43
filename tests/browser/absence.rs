//! Scenario 5: a long absence ends with a complete, gap-free, ordered view.

use crate::harness::{PATIENCE, World};
use natter_tests::Db;

pub async fn a_long_absence_ends_complete_and_in_order(db: Db) {
    let world = World::new(db).await;
    let room = world.dialog("alice", "bob").await;
    let bob = world.person("bob").await;
    bob.visit().await;
    bob.choose("Alice").await;
    world.post(&room, "alice", "before you left").await;
    bob.wait_message("before you left", PATIENCE).await;

    bob.go_offline().await;
    bob.wait_offline().await;
    let bodies: Vec<String> = (1..=500)
        .map(|i| format!("while you were away {i}"))
        .collect();
    world.post_many(&room, "alice", &bodies).await;

    bob.go_online().await;
    let rows = world.rows(&room).await;
    assert_eq!(rows.len(), 501, "the server holds every message");
    let last = rows.last().map(|r| r.body.clone()).unwrap_or_default();
    bob.wait_message(&last, PATIENCE).await;
    let stored: Vec<String> = rows.iter().map(|r| r.body.clone()).collect();
    let shown = bob.bodies().await;
    assert_eq!(
        shown[..],
        stored[stored.len() - shown.len()..],
        "Bob should see the newest messages without a gap, in the server's order"
    );
    let cached = bob.cached(world.site.id.as_str(), &room).await;
    let seqs: Vec<i64> = cached.iter().map(|(seq, _)| *seq).collect();
    let expected: Vec<i64> = rows.iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs, expected,
        "Bob's browser should hold every message of his absence, gap-free"
    );
    bob.scroll_to_start(&stored[0]).await;
    assert_eq!(
        bob.bodies().await,
        stored,
        "scrolling back, Bob should find the whole conversation in order"
    );
    world.finish(vec![bob]).await;
}
