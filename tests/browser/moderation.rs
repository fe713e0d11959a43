//! The site deletes a message: it goes from every screen and from every
//! browser's copy, also one that was offline when it happened. A member
//! reports someone else's message from the widget: the site has it.

use crate::harness::{Link, PATIENCE, Person, World};
use natter_tests::Db;

/// What a deleted message shows instead of its text.
const DELETED: &str = "Message deleted";

/// Scenario: Bob writes something he regrets and something fine; Alice
/// sees both, then goes offline. The site deletes the first: Bob's screen
/// shows it deleted at once; Alice's once she is back online, without a
/// reload; and her reload without a connection shows it deleted from her
/// browser's copy, not the text.
pub async fn a_deleted_message_goes_from_every_screen_and_cache(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    bob.type_and_send("a regrettable message").await;
    bob.type_and_send("fine").await;
    alice.wait_message("fine", PATIENCE).await;
    let target = world
        .rows(&room)
        .await
        .into_iter()
        .find(|r| r.body == "a regrettable message")
        .map(|r| r.seq)
        .expect("the message is stored");

    alice.proxy.set(Link::NoSocket);
    alice.wait_offline().await;
    let res = world
        .api()
        .request(
            reqwest::Method::DELETE,
            &format!("/rooms/{room}/messages/{target}"),
        )
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 200);
    wait_deleted(&bob).await;

    alice.proxy.set(Link::Up);
    alice.wait_status("Online").await;
    wait_deleted(&alice).await;

    alice.proxy.set(Link::NoSocket);
    alice.reload().await;
    alice.open_chat().await;
    alice.wait_message("fine", PATIENCE).await;
    assert_eq!(
        shown(&alice).await,
        [DELETED, "fine"],
        "alice's browser keeps the message deleted"
    );
    alice.proxy.set(Link::Up);
    world.finish(vec![alice, bob]).await;
}

/// Scenario: Bob sends spam; Alice reports it from her widget with a note
/// (the browser's prompt answered): her button says "Reported", and the
/// site's backend finds the report, her note with it, at
/// `GET /api/v1/reports`. Nobody can report their own message.
pub async fn a_member_reports_a_message_from_the_widget(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    bob.type_and_send("buy cheap pills").await;
    alice.wait_message("buy cheap pills", PATIENCE).await;
    let own = bob
        .js(
            "return document.querySelectorAll('.messages li.msg.mine .report').length;",
            vec![],
        )
        .await;
    assert_eq!(own, 0, "a Report button on one's own message");
    alice
        .js(
            "window.prompt = () => '  spam, twice  ';
             const line = Array.from(document.querySelectorAll('.messages li.msg'))
               .find(l => l.textContent.includes('buy cheap pills'));
             line.querySelector('.report').click();
             return null;",
            vec![],
        )
        .await;
    alice
        .wait(
            "the report taken",
            "return Array.from(document.querySelectorAll('.messages .report'))
               .some(b => b.textContent === 'Reported' && b.disabled);",
        )
        .await;
    let seq = world
        .rows(&room)
        .await
        .into_iter()
        .find(|r| r.body == "buy cheap pills")
        .map(|r| r.seq)
        .expect("the message is stored");
    let res = world
        .api()
        .request(reqwest::Method::GET, "/reports")
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 200);
    let list: serde_json::Value = res.json().await.expect("reports");
    let reports = list["reports"].as_array().expect("a list");
    assert_eq!(reports.len(), 1, "{list}");
    assert_eq!(reports[0]["room"], serde_json::json!(room));
    assert_eq!(reports[0]["seq"], serde_json::json!(seq));
    assert_eq!(reports[0]["reporter"], serde_json::json!("alice"));
    assert_eq!(reports[0]["note"], serde_json::json!("spam, twice"));
    world.finish(vec![alice, bob]).await;
}

/// Waits until the person's screen shows the message deleted and its
/// text nowhere.
async fn wait_deleted(person: &Person) {
    person
        .wait(
            "the message shown deleted",
            &format!(
                "var ls = Array.from(document.querySelectorAll('.messages li.msg'));
                 return ls.some(l => l.classList.contains('deleted') && l.textContent.includes({0}))
                   && !ls.some(l => l.textContent.includes('regrettable'));",
                serde_json::json!(DELETED)
            ),
        )
        .await;
}

/// The bodies of the open conversation's lines, deleted ones included.
async fn shown(person: &Person) -> Vec<String> {
    let v = person
        .js(
            "return Array.from(document.querySelectorAll('.messages li.msg .body'))
               .map(b => b.textContent);",
            vec![],
        )
        .await;
    serde_json::from_value(v).expect("bodies")
}
