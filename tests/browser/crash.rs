//! Scenario 7: the server is killed (`kill -9`) while three people send
//! 300 messages; after a restart everything arrives exactly once.

use crate::harness::{PATIENCE, Person, World};
use natter_tests::Db;
use std::time::{Duration, Instant};

const EACH: usize = 100;

pub async fn a_server_killed_mid_burst_loses_and_doubles_nothing(db: Db) {
    let mut world = World::new(db).await;
    let crew = [("alice", "Alice"), ("bob", "Bob"), ("carol", "Carol")];
    let room = world.group("Crew", &crew).await;
    let alice = world.person("alice").await;
    let bob = world.person("bob").await;
    let carol = world.person("carol").await;
    let people = [&alice, &bob, &carol];
    tokio::join!(alice.visit(), bob.visit(), carol.visit());
    tokio::join!(
        alice.choose("Crew"),
        bob.choose("Crew"),
        carol.choose("Crew")
    );

    let burst =
        |p: &Person| -> Vec<String> { (1..=EACH).map(|i| format!("{} #{i}", p.user)).collect() };
    let (a, b, c) = (burst(&alice), burst(&bob), burst(&carol));
    let kill_at = async {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let n = world.rows(&room).await.len();
            if n > 0 {
                return n;
            }
            assert!(Instant::now() < deadline, "no message reached the server");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (stored_before, (), (), ()) = tokio::join!(
        kill_at,
        alice.send_all(&a),
        bob.send_all(&b),
        carol.send_all(&c)
    );
    world.server.kill();
    let at_kill = world.rows(&room).await.len();
    eprintln!(
        "killed the server with {at_kill} of {} messages stored ({stored_before} seen first)",
        3 * EACH
    );
    assert!(
        at_kill < 3 * EACH,
        "the server should die mid-burst, yet all {at_kill} messages were in already"
    );
    world.crash_and_restart(&people).await;

    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let n = world.rows(&room).await.len();
        if n >= 3 * EACH {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "after the restart only {n} of {} messages reached the server; Alice sees: {}",
                3 * EACH,
                alice.screen().await
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A late duplicate would come with a client's next drain. This window
    // (a fixed sleep on purpose) is to see that none comes: an absence is
    // no condition to wait for.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = world.rows(&room).await;
    let stored: Vec<String> = rows.iter().map(|r| r.body.clone()).collect();
    assert_eq!(stored.len(), 3 * EACH, "no message may be stored twice");
    for mine in [&a, &b, &c] {
        let order: Vec<&String> = stored.iter().filter(|s| mine.contains(s)).collect();
        assert_eq!(
            order,
            mine.iter().collect::<Vec<_>>(),
            "each person's messages are stored once each, in the order they were written"
        );
    }
    let last = stored.last().cloned().unwrap_or_default();
    for p in people {
        p.wait_message(&last, PATIENCE).await;
        p.wait_pending(0, "every message to be sent").await;
        let cached: Vec<String> = p
            .cached(world.site.id.as_str(), &room)
            .await
            .into_iter()
            .map(|(_, body)| body)
            .collect();
        assert_eq!(
            cached, stored,
            "{} should hold all 300 messages in the server's order",
            p.user
        );
        let shown = p.bodies().await;
        assert_eq!(
            shown[..],
            stored[stored.len() - shown.len()..],
            "{}'s screen should show the newest messages in the same order as everyone's",
            p.user
        );
    }
    world.finish(vec![alice, bob, carol]).await;
}
