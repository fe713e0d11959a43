//! A person in front of a browser: what they do (open the chat, choose a
//! conversation, type, send, lose and regain the network), with waits
//! that fail by saying what the person was waiting for and saw (what they
//! see is in `seen`).

use super::PATIENCE;
use super::driver::{Driver, Engine};
use super::proxy::{Link, Proxy};
use super::site::Page;
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A person: a browser (its own Chromium profile), their link to the chat.
pub struct Person {
    pub user: String,
    /// The browser engine they use.
    pub engine: Engine,
    pub browser: Client,
    pub proxy: Proxy,
    /// The host site's origin.
    pub(super) host: String,
    /// Their own WebDriver server, for engines whose drivers take one
    /// session each; stopped after the browser.
    pub(super) _driver: Option<Driver>,
}

/// chromedriver's network emulation (offline or back to normal).
#[derive(Debug)]
struct NetworkConditions(bool);

impl WebDriverCompatibleCommand for NetworkConditions {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/chromium/network_conditions",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        if self.0 {
            let body = json!({"network_conditions": {
                "offline": true, "latency": 0,
                "download_throughput": 1_000_000_000, "upload_throughput": 1_000_000_000,
            }});
            (http::Method::POST, Some(body.to_string()))
        } else {
            (http::Method::DELETE, None)
        }
    }
}

impl Person {
    /// The host page's address for this person.
    pub fn page_url(&self, page: Page) -> String {
        format!(
            "{}/?user={}&chat={}&page={}",
            self.host,
            self.user,
            self.proxy.origin(),
            page.name()
        )
    }

    /// Opens the host page, clicks the launcher and waits until the chat
    /// is online.
    pub async fn visit(&self) {
        self.visit_page(Page::Plain).await;
        self.wait_status("Online").await;
    }

    /// Opens a host page and the chat on it, without waiting for the link.
    pub async fn visit_page(&self, page: Page) {
        self.browser
            .goto(&self.page_url(page))
            .await
            .expect("the host page loads");
        self.open_chat().await;
    }

    /// Opens the plain host page with `token` in place of the one the site
    /// signs, and the chat on it.
    pub async fn visit_with_token(&self, token: &str) {
        let url = format!("{}&token={token}", self.page_url(Page::Plain));
        self.browser.goto(&url).await.expect("the host page loads");
        self.open_chat().await;
    }

    /// Loads the page again, as a person reloads it (WebDriver's Refresh
    /// is a reload that bypasses caches and the service worker in
    /// Firefox, like Shift+Reload; this is a plain one).
    pub async fn reload(&self) {
        self.browser.enter_parent_frame().await.ok();
        let url = self
            .browser
            .current_url()
            .await
            .expect("the page's address");
        self.browser
            .goto(url.as_str())
            .await
            .expect("the host page loads again");
    }

    /// Clicks the launcher (in the widget's shadow root) and enters the
    /// chat's frame.
    pub async fn open_chat(&self) {
        self.browser.enter_parent_frame().await.ok();
        let launcher = self.in_shadow(".natter-launcher").await;
        let expanded = launcher.attr("aria-expanded").await.ok().flatten();
        if expanded.as_deref() != Some("true") {
            launcher.click().await.expect("the launcher can be clicked");
        }
        let frame = self.in_shadow("iframe.natter-frame").await;
        frame.enter_frame().await.expect("enter the chat frame");
        self.wait(
            "the chat to appear",
            "return !!document.querySelector('.natter')",
        )
        .await;
    }

    /// An element in the widget's shadow root on the host page.
    pub async fn in_shadow(&self, css: &str) -> Element {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(host) = self.browser.find(Locator::Css("[data-natter]")).await
                && let Ok(root) = host.shadow_root().await
                && let Ok(el) = root.find(Locator::Css(css)).await
            {
                return el;
            }
            assert!(
                Instant::now() < deadline,
                "{} never saw the chat's {css} on the page",
                self.user
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs a script in the current frame (the chat, once opened).
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.browser
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script in {}'s browser failed: {e}\n{script}", self.user))
    }

    /// Runs an async script (its last argument is the callback).
    pub async fn js_async(&self, script: &str, args: Vec<Value>) -> Value {
        self.browser
            .execute_async(script, args)
            .await
            .unwrap_or_else(|e| panic!("script in {}'s browser failed: {e}\n{script}", self.user))
    }

    /// Waits until `predicate` (a script returning a boolean) holds; on
    /// timeout fails with what the person was waiting for and what their
    /// screen showed.
    pub async fn wait(&self, what: &str, predicate: &str) {
        self.wait_for(what, predicate, PATIENCE).await;
    }

    /// [`Person::wait`] with a deadline; returns how long it took.
    pub async fn wait_for(&self, what: &str, predicate: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if self.browser.execute(predicate, vec![]).await.ok() == Some(Value::Bool(true)) {
                return start.elapsed();
            }
            if start.elapsed() > limit {
                panic!(
                    "{} waited {:?} for {what}, but saw: {}",
                    self.user,
                    limit,
                    self.screen().await
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits for the connection line to read `label`.
    pub async fn wait_status(&self, label: &str) {
        self.wait(
            &format!("the chat to say {label:?}"),
            &format!(
                "var s = document.querySelector('.status'); return !!s && s.textContent === {};",
                json!(label)
            ),
        )
        .await;
    }

    /// Waits until exactly `n` of the person's messages show as sending;
    /// `what` says what that means to them.
    pub async fn wait_pending(&self, n: usize, what: &str) {
        self.wait(
            what,
            &format!("return document.querySelectorAll('.messages li.msg.pending').length === {n}"),
        )
        .await;
    }

    /// Waits for the connection line to say the chat is offline.
    pub async fn wait_offline(&self) {
        self.wait(
            "the chat to say it is offline",
            "var s = document.querySelector('.status'); return !!s && s.textContent.startsWith('Offline');",
        )
        .await;
    }

    /// Waits until a message with this body is on screen and delivered.
    pub async fn wait_message(&self, body: &str, limit: Duration) -> Duration {
        self.wait_for(
            &format!("the message {body:?}"),
            &format!(
                "return Array.from(document.querySelectorAll('.messages li.msg:not(.pending):not(.failed) .body'))
                   .some(b => b.textContent === {});",
                json!(body)
            ),
            limit,
        )
        .await
    }

    /// Scrolls the conversation back until its first message, `first`, is
    /// on screen (older pages load as the top is reached). The page
    /// scrolls itself, as a person holding the list at its top would, a
    /// few seconds per script, so the driver's round trips do not set the
    /// pace. A whole history is many pages: it gets twice the usual
    /// patience, and fails if the top stops moving for the usual patience.
    pub async fn scroll_to_start(&self, first: &str) {
        let started = Instant::now();
        let (mut top, mut moved) = (Value::Null, Instant::now());
        loop {
            let now = self
                .js_async(
                    "var first = arguments[0], done = arguments[arguments.length - 1];
                     var until = Date.now() + 3000;
                     (function step() {
                       var l = document.querySelector('.messages');
                       var b = l && l.querySelector('li.msg .body');
                       var top = b ? b.textContent : null;
                       if (top === first || Date.now() > until) return done(top);
                       l.scrollTop = 0; l.dispatchEvent(new Event('scroll'));
                       setTimeout(step, 50);
                     })();",
                    vec![json!(first)],
                )
                .await;
            if now.as_str() == Some(first) {
                return;
            }
            if now != top {
                (top, moved) = (now, Instant::now());
            }
            if moved.elapsed() > PATIENCE || started.elapsed() > PATIENCE * 2 {
                panic!(
                    "{} scrolled back for {:?} but never reached the first message {first:?}; \
                     the oldest shown is {top} (for {:?}); {}",
                    self.user,
                    started.elapsed(),
                    moved.elapsed(),
                    self.screen().await
                );
            }
        }
    }

    /// Clicks the conversation named `name` in the room list (going back
    /// to the list first from another conversation). Each try looks
    /// afresh: the widget may open the last conversation by itself once
    /// its store is read, and the list may be drawn again between finding
    /// a room and clicking it (a new message moves it).
    pub async fn choose(&self, name: &str) {
        self.wait(
            &format!("the conversation {name:?} in the list"),
            &format!(
                "return Array.from(document.querySelectorAll('.rooms .room .name')).some(n => n.textContent === {});",
                json!(name)
            ),
        )
        .await;
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let open = self
                .js(
                    "var t = document.querySelector('.views.talking .pane h2 .title');
                     if (t && t.textContent === arguments[0]) return true;
                     var back = document.querySelector('.views.talking .back');
                     if (back) back.click();
                     return false;",
                    vec![json!(name)],
                )
                .await;
            if open == json!(true) || matches!(self.click_room(name).await, Ok(true)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("{} could not click the conversation {name:?}", self.user);
    }

    /// Goes back from a conversation to the room list.
    pub async fn back(&self) {
        self.js(
            "var b = document.querySelector('.views.talking .back'); if (b) b.click(); return true;",
            vec![],
        )
        .await;
        self.wait(
            "the room list",
            "return !!document.querySelector('.views:not(.talking) .rooms');",
        )
        .await;
    }

    /// Clicks the room named `name`: whether it was there. The click is
    /// the page's own (WebKit's driver refuses clicks on some list rows
    /// it deems covered).
    async fn click_room(&self, name: &str) -> Result<bool, fantoccini::error::CmdError> {
        let clicked = self
            .browser
            .execute(
                "var room = Array.from(document.querySelectorAll('.views:not(.talking) .rooms .room'))
                   .find(r => r.querySelector('.name').textContent === arguments[0]);
                 if (room) room.click();
                 return !!room;",
                vec![json!(name)],
            )
            .await?;
        Ok(clicked == json!(true))
    }

    /// Types a message and presses Send, as a person does.
    pub async fn type_and_send(&self, body: &str) {
        self.type_text(body).await;
        self.press_send().await;
    }

    /// Types into the message input.
    pub async fn type_text(&self, text: &str) {
        self.browser
            .find(Locator::Css("form.composer input[name=body]"))
            .await
            .expect("the message input")
            .send_keys(text)
            .await
            .expect("typing");
    }

    /// Presses the Send button.
    pub async fn press_send(&self) {
        self.browser
            .find(Locator::Css("form.composer button[type=submit]"))
            .await
            .expect("the Send button")
            .click()
            .await
            .expect("pressing Send");
    }

    /// Sends many messages quickly through the composer (input and submit
    /// events, as typing and pressing Enter make).
    pub async fn send_all(&self, bodies: &[String]) {
        let refused = self
            .js(
                "var f = document.querySelector('form.composer'), i = f.querySelector('input[name=body]');
                 var refused = [];
                 for (var b of arguments[0]) {
                   i.value = b; i.dispatchEvent(new Event('input', {bubbles: true}));
                   f.requestSubmit();
                   var e = f.querySelector('.error');
                   if (e) refused.push(b + ': ' + e.textContent);
                 }
                 return refused;",
                vec![json!(bodies)],
            )
            .await;
        assert_eq!(refused, json!([]), "{}'s chat refused messages", self.user);
    }

    /// The network goes away: the browser is offline and the open socket
    /// is cut.
    pub async fn go_offline(&self) {
        self.emulate_offline(true).await;
        self.proxy.set(Link::Down);
    }

    /// The network comes back.
    pub async fn go_online(&self) {
        self.proxy.set(Link::Up);
        self.emulate_offline(false).await;
    }

    /// The system says the network went and came back (as after a
    /// laptop wakes up); the proxy is left as it is.
    pub async fn network_blinks(&self) {
        self.emulate_offline(true).await;
        self.emulate_offline(false).await;
    }

    async fn emulate_offline(&self, offline: bool) {
        self.browser
            .issue_cmd(NetworkConditions(offline))
            .await
            .expect("network emulation");
    }

    /// Waits until the chat (its frame entered) has said how it will open
    /// without the server, and, with a service worker, until the worker
    /// holds this page; returns what ran (`service-worker`, or the
    /// fallback and why).
    pub async fn wait_shell_kept(&self) -> String {
        self.wait(
            "the chat to say how it opens offline",
            "return !!document.documentElement.getAttribute('data-shell');",
        )
        .await;
        let shell = self
            .js(
                "return document.documentElement.getAttribute('data-shell');",
                vec![],
            )
            .await
            .as_str()
            .unwrap_or_default()
            .to_string();
        if shell == "service-worker" {
            let deadline = Instant::now() + PATIENCE;
            loop {
                let kept = self
                    .js_async(
                        "var done = arguments[arguments.length - 1];
                         caches.keys()
                           .then(ks => Promise.all(ks.filter(k => k.startsWith('natter-shell-'))
                             .map(k => caches.open(k).then(c => c.match(location.href)))))
                           .then(hits => done(hits.some(h => !!h)), () => done(false));",
                        vec![],
                    )
                    .await;
                if kept == Value::Bool(true) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{}'s service worker never kept the chat's page",
                    self.user
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        shell
    }
}
