//! The world of one scenario: a fresh database, the `natter` server on
//! it, a registered site with its host pages, and a chromedriver; people
//! enter it with their own browser and proxy. Also what the test reads
//! and does behind the people's backs: the HTTP API, the database's rows,
//! a crash of the server.

use super::PATIENCE;
use super::driver::{Driver, Engine};
use super::person::Person;
use super::proxy::Proxy;
use super::server::Server;
use super::site::{HostSite, name_of};
use fantoccini::ClientBuilder;
use natter_server::store::Store;
use natter_tests::{ApiClient, Db, Scratch, TestSite, User, fresh_database, register, unique};
use std::path::PathBuf;
use tokio::net::TcpListener;

/// One browser test at a time: each runs several Chromiums, and the
/// machine's cores are better spent on one scenario than shared by many.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

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
        let site = register(&store, "A shop", &[host_origin]).await;
        store.close().await;
        let host = HostSite::start(host_listener, site.clone()).await;
        let server = Server::start(&database_url, &dir.join("natter.log")).await;
        World {
            server,
            site,
            host,
            http: reqwest::Client::new(),
            driver: Driver::start(Engine::Chromium).await,
            scratch,
            dir,
            _serial: serial,
        }
    }

    /// How most scenarios open: a fresh world with the dialog of Alice and
    /// Bob, both on the host page with that conversation open. Returns the
    /// world, the dialog's id, Alice and Bob.
    pub async fn dialog_of_two(db: Db) -> (World, String, Person, Person) {
        let world = World::new(db).await;
        let room = world.dialog("alice", "bob").await;
        let alice = world.person("alice").await;
        let bob = world.person("bob").await;
        tokio::join!(alice.visit(), bob.visit());
        tokio::join!(alice.choose("Bob"), bob.choose("Alice"));
        (world, room, alice, bob)
    }

    /// A person with their own Chromium and their own link to the chat.
    pub async fn person(&self, user: &str) -> Person {
        self.person_in(user, Engine::Chromium).await
    }

    /// A person with their own browser of `engine` and their own link to
    /// the chat. Chromium sessions share the scenario's chromedriver; the
    /// other engines' drivers take one session each, so such a person
    /// brings their own.
    pub async fn person_in(&self, user: &str, engine: Engine) -> Person {
        self.person_with(user, engine, self.host.origin()).await
    }

    /// A person in Chromium who visits the host site at `host` (another
    /// site's pages) instead of the scenario's.
    pub async fn person_at(&self, user: &str, host: String) -> Person {
        self.person_with(user, Engine::Chromium, host).await
    }

    async fn person_with(&self, user: &str, engine: Engine, host: String) -> Person {
        let proxy = Proxy::start(self.server.addr).await;
        let profile = self.dir.join(unique(user));
        std::fs::create_dir_all(&profile).expect("browser profile");
        let own = match engine {
            Engine::Chromium => None,
            _ => Some(Driver::start(engine).await),
        };
        let url = own.as_ref().map_or(&self.driver.url, |d| &d.url);
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(engine.capabilities(&profile));
        let connect = builder.connect(url);
        // A browser that cannot start may leave its driver waiting forever.
        let browser = match tokio::time::timeout(PATIENCE, connect).await {
            Ok(Ok(browser)) => browser,
            Ok(Err(e)) => panic!("{engine:?} starts for {user}: {e}"),
            Err(_) => panic!("{engine:?} did not start for {user} within {PATIENCE:?}"),
        };
        Person {
            user: user.to_string(),
            engine,
            browser,
            proxy,
            host,
            _driver: own,
        }
    }

    /// The HTTP API, with the site's key, as the site's backend calls it.
    pub fn api(&self) -> ApiClient {
        ApiClient::new(self.http.clone(), self.server.addr, &self.site.api_key)
    }

    /// Creates a group room of the given members; returns its id.
    pub async fn group(&self, title: &str, members: &[(&str, &str)]) -> String {
        let members: Vec<User> = members
            .iter()
            .map(|(id, name)| User::named(id, name))
            .collect();
        self.api().group(title, &members).await.id.to_string()
    }

    /// Opens the dialog of two users; returns its id.
    pub async fn dialog(&self, a: &str, b: &str) -> String {
        let (name_a, name_b) = (name_of(a), name_of(b));
        let dialog = self
            .api()
            .dialog(User::named(a, &name_a), User::named(b, &name_b))
            .await;
        dialog.id.to_string()
    }

    /// Posts a message through the HTTP API, as `from`.
    pub async fn post(&self, room: &str, from: &str, body: &str) {
        self.api().post(room, from, body).await;
    }

    /// Posts many messages through the HTTP API, several at a time (their
    /// order is the server's to choose; [`World::rows`] tells it).
    pub async fn post_many(&self, room: &str, from: &str, bodies: &[String]) {
        for chunk in bodies.chunks(32) {
            futures_util::future::join_all(chunk.iter().map(|b| self.post(room, from, b))).await;
        }
    }

    /// One connection to the server's database, behind its back.
    async fn database(&self) -> sqlx::AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.server.database_url)
            .await
            .expect("database")
    }

    /// The messages of a room in the database, by seq.
    pub async fn rows(&self, room: &str) -> Vec<Row> {
        use sqlx::Row as _;
        let pool = self.database().await;
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

    /// Takes a room back to where it stood at `seq`, as restoring a backup
    /// of the database would: later events are gone and the room's counter
    /// is `seq` again.
    pub async fn rewind(&self, room: &str, seq: i64) {
        let pool = self.database().await;
        let statements = [
            sqlx::query("DELETE FROM events WHERE room_id = ? AND seq > ?")
                .bind(room)
                .bind(seq),
            sqlx::query("UPDATE rooms SET last_seq = ? WHERE id = ?")
                .bind(seq)
                .bind(room),
            sqlx::query("UPDATE members SET read_seq = ? WHERE room_id = ? AND read_seq > ?")
                .bind(seq)
                .bind(room)
                .bind(seq),
        ];
        for statement in statements {
            statement.execute(&pool).await.expect("rewinding the room");
        }
        pool.close().await;
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

    /// Deploys the widget build in `widget_dir`: the server stops (SIGTERM)
    /// and starts on the same database with it; every person's proxy is
    /// pointed at it.
    pub async fn deploy(&mut self, widget_dir: PathBuf, people: &[&Person]) {
        self.server.deploy(widget_dir).await;
        for p in people {
            p.proxy.retarget(self.server.addr);
        }
    }

    /// The version of the widget build the server serves now.
    pub async fn shell_version(&self) -> String {
        let res = self
            .http
            .get(format!("http://{}/widget/", self.server.addr))
            .send()
            .await
            .expect("the widget's page");
        res.headers()
            .get("x-natter-shell")
            .and_then(|v| v.to_str().ok())
            .expect("the widget's page names its build")
            .to_string()
    }

    /// A scratch directory of this scenario, removed at its end.
    pub fn scratch_dir(&self, name: &str) -> PathBuf {
        let dir = self.dir.join(name);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        dir
    }

    /// Closes the browsers, checks that no widget and the server never
    /// panicked (and says any error a widget's page kept), and removes the
    /// database.
    pub async fn finish(self, people: Vec<Person>) {
        for p in people {
            let stopped = p.stopped().await;
            // Not a failure of the scenario (the widget went on), but a
            // defect to see in the log.
            if let Some(what) = p.page_error().await {
                eprintln!(
                    "warning: an error in {}'s widget page ({:?}): {what}",
                    p.user, p.engine
                );
            }
            let _ = p.browser.close().await; // the driver's kill ends the rest
            if let Some(why) = stopped {
                panic!("{}'s widget stopped: {why}", p.user);
            }
        }
        self.server.assert_no_panic();
        self.scratch.remove().await;
        let _ = std::fs::remove_dir_all(&self.dir); // best effort in temp
    }
}
