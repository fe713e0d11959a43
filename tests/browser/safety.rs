//! Scenario 8: the host page is safe from the chat. It stays usable when
//! the chat server is down, neither side's CSS reaches the other, and
//! hostile names and bodies show as text and run nothing.

use crate::harness::{Link, PATIENCE, Page, Person, World};
use natter_tests::Db;
use serde_json::{Value, json};
use std::time::Duration;

/// Payloads, one per line.
pub const XSS: &str = include_str!("xss.txt");

pub async fn the_host_page_is_safe_from_the_chat(db: Db) {
    let world = World::new(db).await;
    let payloads: Vec<&str> = XSS.lines().filter(|l| !l.is_empty()).collect();
    assert!(payloads.len() >= 50, "the corpus has at least 50 payloads");

    let alice = world.person("alice").await;
    chat_server_down(&alice).await;
    styles_stay_apart(&alice).await;
    hostile_text_stays_text(&world, &alice, &payloads).await;
    world.finish(vec![alice]).await;
}

/// The page loads, and its own button works, with the chat server out of
/// reach, and when it goes away under an open chat.
async fn chat_server_down(alice: &Person) {
    alice.proxy.set(Link::Down);
    alice
        .browser
        .goto(&alice.page_url(Page::Plain))
        .await
        .expect("the host page loads without its chat server");
    host_page_works(alice, "with the chat server down").await;

    alice.proxy.set(Link::Up);
    alice.visit().await;
    alice.proxy.set(Link::Down);
    alice.wait_offline().await;
    alice.browser.enter_parent_frame().await.expect("host page");
    host_page_works(alice, "after the chat server went away").await;
    alice.proxy.set(Link::Up);
}

/// The host page loaded promptly and its own button answers clicks.
async fn host_page_works(alice: &Person, when: &str) {
    let timing = alice
        .js(
            "var n = performance.getEntriesByType('navigation')[0];
             return [n.domContentLoadedEventEnd, n.loadEventEnd];",
            vec![],
        )
        .await;
    let ready = timing[0].as_f64().unwrap_or(f64::MAX);
    assert!(
        ready < 3_000.0,
        "the host page should be ready at once {when}, but took {ready:.0} ms ({timing})"
    );
    let counter = alice
        .browser
        .find(fantoccini::Locator::Css("#counter"))
        .await
        .expect("the page's button");
    counter.click().await.expect("click");
    counter.click().await.expect("click");
    let text = counter.text().await.expect("button text");
    assert_eq!(
        text, "Clicked 2",
        "the page's own button should work {when}"
    );
    // Reload resets the count for the next check.
}

/// What a set of elements look like, as computed style properties.
const STYLES_JS: &str = "
  var props = ['display', 'position', 'width', 'height', 'color', 'background-color',
               'font-family', 'font-size', 'letter-spacing', 'border-top-style', 'opacity',
               'transform', 'visibility', 'margin-top', 'right', 'bottom'];
  return arguments[0].map(function (el) {
    if (!el) return null;
    var s = getComputedStyle(el);
    var o = {}; props.forEach(function (p) { o[p] = s.getPropertyValue(p); });
    var r = el.getBoundingClientRect();
    o.rect = [Math.round(r.x), Math.round(r.y), Math.round(r.width), Math.round(r.height)];
    return o;
  });";

const WIDGET_ELEMENTS: &str = "
  var root = document.querySelector('[data-natter]').shadowRoot;
  return [document.querySelector('[data-natter]'), root.querySelector('.natter-launcher'),
          root.querySelector('.natter-frame')];";

const PAGE_ELEMENTS: &str = "
  return [document.body, document.getElementById('title'), document.getElementById('text'),
          document.getElementById('counter')];";

async fn styles_of(alice: &Person, elements: &str) -> Value {
    let els = alice.js(elements, vec![]).await;
    alice.js(STYLES_JS, vec![els]).await
}

/// The page's CSS does not change the widget; the widget's CSS does not
/// change the page.
async fn styles_stay_apart(alice: &Person) {
    alice.visit_page(Page::Plain).await;
    alice.wait_status("Online").await;
    alice.browser.enter_parent_frame().await.expect("host page");
    let plain = styles_of(alice, WIDGET_ELEMENTS).await;
    let inside_plain = widget_inside(alice).await;

    alice.visit_page(Page::Hostile).await;
    alice.wait_status("Online").await;
    alice.browser.enter_parent_frame().await.expect("host page");
    let hostile = styles_of(alice, WIDGET_ELEMENTS).await;
    assert_eq!(
        (&hostile[1], &hostile[2]),
        (&plain[1], &plain[2]),
        "the launcher and the chat window should look the same on a page whose CSS restyles everything"
    );
    assert_eq!(
        widget_inside(alice).await,
        inside_plain,
        "the page's CSS should not reach into the chat"
    );
    let page_with_widget = styles_of(alice, PAGE_ELEMENTS).await;
    let sheets_with = alice.js("return document.styleSheets.length", vec![]).await;

    alice
        .browser
        .goto(&alice.page_url(Page::HostileBare))
        .await
        .expect("the page without the widget");
    let page_without = styles_of(alice, PAGE_ELEMENTS).await;
    let sheets_without = alice.js("return document.styleSheets.length", vec![]).await;
    assert_eq!(
        page_with_widget, page_without,
        "the widget should not change how the host page looks"
    );
    assert_eq!(
        sheets_with, sheets_without,
        "the widget should add no style sheet to the host page"
    );
}

/// Styles of the chat's own elements, read inside its frame.
async fn widget_inside(alice: &Person) -> Value {
    let frame = alice.in_shadow("iframe.natter-frame").await;
    frame.enter_frame().await.expect("chat frame");
    let styles = styles_of(
        alice,
        "return [document.body, document.querySelector('.bar'), document.querySelector('.composer input[name=body]')];",
    )
    .await;
    alice.browser.enter_parent_frame().await.expect("host page");
    styles
}

/// Names and bodies from the corpus show exactly as written, as text.
async fn hostile_text_stays_text(world: &World, alice: &Person, payloads: &[&str]) {
    let mut members = vec![("alice".to_string(), "Alice".to_string())];
    members.extend(
        payloads
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("x{i}"), (*p).to_string())),
    );
    let refs: Vec<(&str, &str)> = members
        .iter()
        .map(|(id, name)| (id.as_str(), name.as_str()))
        .collect();
    let room = world.group(payloads[0], &refs).await;
    for (i, _) in payloads.iter().enumerate() {
        let body = payloads[(i + 7) % payloads.len()];
        world.post(&room, &format!("x{i}"), body).await;
    }
    let last = payloads[(payloads.len() - 1 + 7) % payloads.len()];

    alice.visit().await;
    alice.choose(payloads[0]).await;
    alice.wait_message(last, PATIENCE).await;
    let seen: Vec<(Option<String>, String)> = alice
        .lines()
        .await
        .into_iter()
        .filter(|l| l.author.is_some())
        .map(|l| (l.author, l.body))
        .collect();
    let expected: Vec<(Option<String>, String)> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                Some((*p).to_string()),
                payloads[(i + 7) % payloads.len()].to_string(),
            )
        })
        .collect();
    assert_eq!(
        seen, expected,
        "every hostile name and body should show exactly as written, as plain text"
    );
    // Anything that ran would have had time to. This window (a fixed sleep
    // on purpose) is to see that nothing runs: an absence is no condition
    // to wait for.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let planted = alice
        .js(
            "return [typeof window.__xss, document.querySelectorAll(
               '.messages img, .messages script, .messages svg, .messages iframe, .messages a, .messages object, .messages embed, .messages style, .rooms img, .rooms svg, .rooms script').length];",
            vec![],
        )
        .await;
    assert_eq!(
        planted,
        json!(["undefined", 0]),
        "no payload may become markup or run in the chat"
    );
    alice.browser.enter_parent_frame().await.expect("host page");
    let ran = alice.js("return typeof window.__xss", vec![]).await;
    assert_eq!(
        ran,
        json!("undefined"),
        "no payload may run in the host page"
    );
    assert!(
        alice.browser.get_alert_text().await.is_err(),
        "no payload may open a dialog"
    );
}
