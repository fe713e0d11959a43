//! What the browser tests stand on: the real `natter` binary as a child
//! process, a host site that embeds the widget with its script tag, a TCP
//! proxy per person between browser and chat server (it cuts open
//! WebSockets, which Chromium's offline emulation leaves open), and a
//! headless Chromium per person driven through chromedriver.

mod driver;
mod proxy;
mod server;
mod site;

use driver::Driver;
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use natter_server::store::Store;
use natter_tests::{Db, Scratch, TestSite, fresh_database, unique};
pub use proxy::Link;
use proxy::Proxy;
use serde_json::{Value, json};
use server::Server;
pub use site::Page;
use site::{HostSite, name_of};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How long anything a person waits for may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One browser test at a time: each runs several Chromiums, and the
/// machine's cores are better spent on one scenario than shared by many.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// ---------------------------------------------------------------------------
// The world of one test
// ---------------------------------------------------------------------------

/// A fresh server with a fresh database, a site, its host pages and a
/// chromedriver: everything one scenario needs.
pub struct World {
    pub server: Server,
    pub site: TestSite,
    pub host: HostSite,
    pub http: reqwest::Client,
    driver: Driver,
    scratch: Scratch,
    dir: PathBuf,
    _serial: tokio::sync::MutexGuard<'static, ()>,
}

/// A message as the database holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub seq: i64,
    pub sender: Option<String>,
    pub body: String,
    pub client_id: Option<String>,
}

impl World {
    pub async fn new(db: Db) -> World {
        let serial = SERIAL.lock().await;
        let (database_url, scratch) = fresh_database(db).await;
        let dir = std::env::temp_dir().join(unique("natter-browser"));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        // The site's origin must be known to register the site.
        let host_listener = TcpListener::bind("127.0.0.1:0").await.expect("host binds");
        let host_origin = format!("http://{}", host_listener.local_addr().expect("address"));
        let store = Store::connect(&database_url, 2).await.expect("database");
        let new = store
            .create_site(None, "A shop", &[host_origin])
            .await
            .expect("site");
        store.close().await;
        let site = TestSite {
            id: new.site.id,
            secret: new.site.token_secret,
            api_key: new.api_key.expose().to_string(),
        };
        let host = HostSite::start(host_listener, site.clone()).await;
        let server = Server::start(&database_url, &dir.join("natter.log")).await;
        World {
            server,
            site,
            host,
            http: reqwest::Client::new(),
            driver: Driver::start().await,
            scratch,
            dir,
            _serial: serial,
        }
    }

    /// A person with their own browser and their own link to the chat.
    pub async fn person(&self, user: &str) -> Person {
        let proxy = Proxy::start(self.server.addr).await;
        let profile = self.dir.join(unique(user));
        std::fs::create_dir_all(&profile).expect("browser profile");
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1200,800",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object")
        };
        let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.driver.url)
            .await
            .unwrap_or_else(|e| panic!("Chromium starts for {user}: {e}"));
        Person {
            user: user.to_string(),
            browser,
            proxy,
            host: self.host.origin(),
        }
    }

    /// An HTTP API call with the site's key.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("http://{}/api/v1{path}", self.server.addr))
            .bearer_auth(&self.site.api_key)
    }

    /// Creates a group room of the given members; returns its id.
    pub async fn group(&self, title: &str, members: &[(&str, &str)]) -> String {
        let members: Vec<_> = members
            .iter()
            .map(|(id, name)| json!({"id": id, "name": name}))
            .collect();
        let res = self
            .api(reqwest::Method::POST, "/rooms")
            .json(&json!({"title": title, "members": members}))
            .send()
            .await
            .expect("create room");
        assert_eq!(res.status(), 201, "creating a room");
        let room: Value = res.json().await.expect("room json");
        room["id"].as_str().expect("room id").to_string()
    }

    /// Opens the dialog of two users; returns its id.
    pub async fn dialog(&self, a: &str, b: &str) -> String {
        let res = self
            .api(reqwest::Method::POST, "/dialogs")
            .json(&json!({"users": [{"id": a, "name": name_of(a)}, {"id": b, "name": name_of(b)}]}))
            .send()
            .await
            .expect("open dialog");
        assert!(
            res.status().is_success(),
            "opening a dialog: {}",
            res.status()
        );
        let room: Value = res.json().await.expect("room json");
        room["id"].as_str().expect("room id").to_string()
    }

    /// Posts a message through the HTTP API, as `from`.
    pub async fn post(&self, room: &str, from: &str, body: &str) {
        let res = self
            .api(reqwest::Method::POST, &format!("/rooms/{room}/messages"))
            .json(&json!({"from": from, "body": body}))
            .send()
            .await
            .expect("post message");
        assert!(
            res.status().is_success(),
            "posting a message: {}",
            res.status()
        );
    }

    /// Posts many messages through the HTTP API, several at a time (their
    /// order is the server's to choose; [`World::rows`] tells it).
    pub async fn post_many(&self, room: &str, from: &str, bodies: &[String]) {
        for chunk in bodies.chunks(32) {
            futures_util::future::join_all(chunk.iter().map(|b| self.post(room, from, b))).await;
        }
    }

    /// The messages of a room in the database, by seq.
    pub async fn rows(&self, room: &str) -> Vec<Row> {
        use sqlx::Row as _;
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.server.database_url)
            .await
            .expect("database");
        let rows = sqlx::query(
            "SELECT seq, sender, body, client_id FROM events \
             WHERE room_id = ? AND kind = 'message' ORDER BY seq",
        )
        .bind(room)
        .fetch_all(&pool)
        .await
        .expect("reading messages");
        pool.close().await;
        rows.iter()
            .map(|r| Row {
                seq: r.get(0),
                sender: r.get(1),
                body: r.get(2),
                client_id: r.get(3),
            })
            .collect()
    }

    /// Kills the server and starts it again on the same database; every
    /// person's proxy is pointed at it.
    pub async fn crash_and_restart(&mut self, people: &[&Person]) {
        self.server.kill();
        self.server.restart().await;
        for p in people {
            p.proxy.retarget(self.server.addr);
        }
    }

    /// Closes the browsers, checks the server never panicked and removes
    /// the database.
    pub async fn finish(self, people: Vec<Person>) {
        for p in people {
            let _ = p.browser.close().await; // the driver's kill ends the rest
        }
        self.server.assert_no_panic();
        self.scratch.remove().await;
        let _ = std::fs::remove_dir_all(&self.dir); // best effort in temp
    }
}

// ---------------------------------------------------------------------------
// A person in front of a browser
// ---------------------------------------------------------------------------

/// One line of the conversation as the person sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Seen {
    pub author: Option<String>,
    pub body: String,
    pub pending: bool,
    pub failed: bool,
    pub mine: bool,
}

/// A person: a browser (its own Chromium profile), their link to the chat.
pub struct Person {
    pub user: String,
    pub browser: Client,
    pub proxy: Proxy,
    host: String,
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

/// Reads the visible lines of the open conversation.
const LINES_JS: &str =
    "return Array.from(document.querySelectorAll('.messages li.msg')).map(li => ({
  author: li.querySelector('.author') ? li.querySelector('.author').textContent : null,
  body: li.querySelector('.body') ? li.querySelector('.body').textContent : '',
  pending: li.classList.contains('pending'),
  failed: li.classList.contains('failed'),
  mine: li.classList.contains('mine'),
}));";

impl Person {
    /// The host page's address for this person.
    pub fn page_url(&self, page: Page) -> String {
        let page = match page {
            Page::Plain => "plain",
            Page::Hostile => "hostile",
            Page::HostileBare => "bare",
        };
        format!(
            "{}/?user={}&chat={}&page={page}",
            self.host,
            self.user,
            self.proxy.origin()
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

    /// A description of the chat as the person sees it.
    pub async fn screen(&self) -> String {
        let status = self.status().await;
        let lines = self.lines_raw().await.unwrap_or_default();
        let tail: Vec<String> = lines
            .iter()
            .rev()
            .take(8)
            .rev()
            .map(|l| {
                let state = if l.pending {
                    " (sending…)"
                } else if l.failed {
                    " (not sent)"
                } else {
                    ""
                };
                format!(
                    "{}: {:?}{state}",
                    l.author.as_deref().unwrap_or("—"),
                    l.body
                )
            })
            .collect();
        format!(
            "status {status:?}, {} lines, the last: [{}]",
            lines.len(),
            tail.join("; ")
        )
    }

    /// The connection line.
    pub async fn status(&self) -> String {
        self.browser
            .execute(
                "var s = document.querySelector('.status'); return s ? s.textContent : null;",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_else(|| "(no chat on screen)".into())
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

    async fn lines_raw(&self) -> Option<Vec<Seen>> {
        let v = self.browser.execute(LINES_JS, vec![]).await.ok()?;
        serde_json::from_value(v).ok()
    }

    /// The lines of the open conversation, oldest first.
    pub async fn lines(&self) -> Vec<Seen> {
        serde_json::from_value(self.js(LINES_JS, vec![]).await).expect("lines")
    }

    /// The bodies of the open conversation's messages (not system lines).
    pub async fn bodies(&self) -> Vec<String> {
        self.lines()
            .await
            .into_iter()
            .filter(|l| l.author.is_some())
            .map(|l| l.body)
            .collect()
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
    /// on screen (older pages load as the top is reached).
    pub async fn scroll_to_start(&self, first: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let top = self
                .js(
                    "var l = document.querySelector('.messages');
                     l.scrollTop = 0; l.dispatchEvent(new Event('scroll'));
                     var b = l.querySelector('li.msg .body');
                     return b ? b.textContent : null;",
                    vec![],
                )
                .await;
            if top.as_str() == Some(first) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} scrolled back for {PATIENCE:?} but never reached the first message {first:?}; \
                     the oldest shown is {top}; {}",
                    self.user,
                    self.screen().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the conversation named `name` in the room list.
    pub async fn choose(&self, name: &str) {
        self.wait(
            &format!("the conversation {name:?} in the list"),
            &format!(
                "return Array.from(document.querySelectorAll('.rooms .room .name')).some(n => n.textContent === {});",
                json!(name)
            ),
        )
        .await;
        let rooms = self
            .browser
            .find_all(Locator::Css(".rooms .room"))
            .await
            .expect("room list");
        for room in rooms {
            let label = room
                .find(Locator::Css(".name"))
                .await
                .expect("room name")
                .text()
                .await
                .unwrap_or_default();
            if label == name {
                room.click().await.expect("click the conversation");
                return;
            }
        }
        panic!("{} could not click the conversation {name:?}", self.user);
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
                "var f = document.querySelector('form.composer'), i = f.querySelector('input');
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

    async fn emulate_offline(&self, offline: bool) {
        self.browser
            .issue_cmd(NetworkConditions(offline))
            .await
            .expect("network emulation");
    }

    /// The messages of a room in this browser's IndexedDB, by seq, read
    /// straight from the database the widget keeps.
    pub async fn cached(&self, site: &str, room: &str) -> Vec<(i64, String)> {
        let v = self
            .js_async(
                "var done = arguments[arguments.length - 1];
                 var req = indexedDB.open(arguments[0]);
                 req.onerror = () => done({error: String(req.error)});
                 req.onsuccess = () => {
                   var db = req.result;
                   var range = IDBKeyRange.bound([arguments[1], 0], [arguments[1], Infinity]);
                   var get = db.transaction('messages').objectStore('messages').getAll(range);
                   get.onerror = () => done({error: String(get.error)});
                   get.onsuccess = () => {
                     db.close();
                     done(get.result.filter(r => r.rec === 'stored' && r.event.kind === 'message')
                       .map(r => [r.event.seq, r.event.body]));
                   };
                 };",
                vec![json!(format!("natter:{site}:{}", self.user)), json!(room)],
            )
            .await;
        serde_json::from_value(v.clone()).unwrap_or_else(|_| panic!("reading IndexedDB: {v}"))
    }
}
