//! Test helpers: start the real server on a free port with a fresh SQLite
//! file or a fresh MariaDB database, sign tokens, and speak the protocol
//! over a real WebSocket.

use futures_util::{SinkExt, StreamExt};
use natter_server::App;
use natter_server::auth::{self, Claims, Secret};
use natter_server::config::Config;
use natter_shared::{
    ClientFrame, ClientId, Cursor, ErrorCode, FileId, RoomId, RoomInfo, ServerFrame, SiteId,
};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected frame may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Polls `check` every 25 ms until it yields a value, and returns it;
/// fails the test, saying it waited for `what`, if `within` passes first.
/// For conditions that come true on their own time, instead of a fixed
/// sleep that is either too long or, on a busy machine, too short.
pub async fn eventually<T>(
    within: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {within:?} for {what}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    MariaDb,
}

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Counts panics anywhere in the process (server tasks included), so a test
/// can assert that nothing panicked.
fn install_panic_counter() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // A failing assertion in a test is not the server panicking.
            let in_test = info.location().is_some_and(|l| {
                l.file().starts_with("tests/") || l.file().ends_with("helpers.rs")
            });
            if !in_test {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
        if std::env::var_os("TEST_LOG").is_some() {
            natter_server::telemetry::init("debug,sqlx=warn");
        }
    });
}

/// Panics seen so far in this test binary.
pub fn panics() -> usize {
    PANICS.load(Ordering::SeqCst)
}

/// The MariaDB server tests use; a fresh database is made per test.
pub fn mysql_admin_url() -> String {
    std::env::var("NATTER_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_string())
}

/// A unique name for a scratch database or file.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Creates a fresh database for one test; returns its URL and name.
pub async fn fresh_database(db: Db) -> (String, Scratch) {
    match db {
        Db::Sqlite => {
            let dir = std::env::temp_dir().join(unique("natter"));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let url = format!("sqlite://{}", dir.join("natter.db").display());
            (url, Scratch::Dir(dir))
        }
        Db::MariaDb => {
            use sqlx::Connection;
            let admin = mysql_admin_url();
            let name = unique("natter_t");
            let mut conn = sqlx::MySqlConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("MariaDB must be running at {admin}: {e}"));
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&mut conn)
                .await
                .expect("create database");
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            (format!("{base}/{name}"), Scratch::Database(name))
        }
    }
}

/// What a test leaves behind, removed at [`TestApp::stop`].
#[derive(Debug)]
pub enum Scratch {
    Dir(PathBuf),
    Database(String),
}

impl Scratch {
    /// Removes the scratch directory or database.
    pub async fn remove(&self) {
        match self {
            Scratch::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir); // best effort in temp
            }
            Scratch::Database(name) => {
                use sqlx::Connection;
                let files = std::env::temp_dir().join(format!("natter-files-{name}"));
                let _ = std::fs::remove_dir_all(files); // best effort in temp
                if let Ok(mut conn) = sqlx::MySqlConnection::connect(&mysql_admin_url()).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
                        .execute(&mut conn)
                        .await; // best effort
                }
            }
        }
    }
}

/// A site registered on a test server.
#[derive(Debug, Clone)]
pub struct TestSite {
    pub id: SiteId,
    pub secret: Secret,
    pub api_key: String,
}

/// The origin registered for the first test site.
pub const ORIGIN: &str = "https://site.example";

/// A running server.
pub struct TestApp {
    pub addr: SocketAddr,
    pub site: TestSite,
    /// A second site, to prove isolation.
    pub other: TestSite,
    pub http: reqwest::Client,
    pub db: Db,
    pub database_url: String,
    scratch: Scratch,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts the server on 127.0.0.1:0 with defaults.
pub async fn spawn_app(db: Db) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

/// Starts the server with adjusted configuration.
pub async fn spawn_app_with(db: Db, tweak: impl FnOnce(&mut Config)) -> TestApp {
    install_panic_counter();
    let (url, scratch) = fresh_database(db).await;
    start(db, url, scratch, tweak).await
}

/// Starts the server on a database made by [`fresh_database`], reached at
/// `url` (through a proxy, say).
pub async fn spawn_app_at(
    db: Db,
    url: String,
    scratch: Scratch,
    tweak: impl FnOnce(&mut Config),
) -> TestApp {
    install_panic_counter();
    start(db, url, scratch, tweak).await
}

async fn start(db: Db, url: String, scratch: Scratch, tweak: impl FnOnce(&mut Config)) -> TestApp {
    let app = App::build(test_config(&url, tweak))
        .await
        .expect("server starts");
    let store = app.state().store.clone();
    let site = register(&store, "test", &[ORIGIN.to_string()]).await;
    let other = register(&store, "other", &["https://other.example".to_string()]).await;
    launch(app, db, url, scratch, site, other).await
}

/// Where a test server on the database at `url` keeps its files: beside
/// a SQLite file, or a temporary directory named after a MariaDB database
/// (the same for a restart on it; removed with the scratch).
pub fn files_dir_for(url: &str) -> PathBuf {
    match url.strip_prefix("sqlite://") {
        Some(path) => Path::new(path)
            .parent()
            .unwrap_or(Path::new("."))
            .join("files"),
        None => {
            let name = url.rsplit('/').next().unwrap_or("db");
            std::env::temp_dir().join(format!("natter-files-{name}"))
        }
    }
}

fn test_config(url: &str, tweak: impl FnOnce(&mut Config)) -> Config {
    let mut config = Config::for_database(url);
    config.files.files_dir = files_dir_for(url);
    config.widget_dir = std::env::temp_dir().join("natter-no-widget");
    config.bind = "127.0.0.1:0".parse().expect("address");
    tweak(&mut config);
    config
}

/// Serves a built app on a free port.
async fn launch(
    app: App,
    db: Db,
    database_url: String,
    scratch: Scratch,
    site: TestSite,
    other: TestSite,
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run(listener, async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        site,
        other,
        http: reqwest::Client::new(),
        db,
        database_url,
        scratch,
        stop: Some(stop),
        task: Some(task),
    }
}

/// Registers a site with these origins straight in the store.
pub async fn register(
    store: &natter_server::store::Store,
    name: &str,
    origins: &[String],
) -> TestSite {
    let new = store.create_site(None, name, origins).await.expect("site");
    TestSite {
        id: new.site.id,
        secret: new.site.token_secret,
        api_key: new.api_key.expose().to_string(),
    }
}

impl TestApp {
    /// `http://127.0.0.1:PORT` + path.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A valid token for a user of the first site.
    pub fn token(&self, user: &str) -> String {
        token_for(&self.site, user, 3600)
    }

    /// Connects and authenticates a user of the first site, then syncs
    /// with no cursors; returns the client and the rooms it was told of.
    pub async fn login(&self, user: &str) -> (Client, Vec<RoomInfo>) {
        let mut client = Client::connect(self, &self.site.id, Some(ORIGIN)).await;
        client.auth(&self.token(user)).await;
        let rooms = client.sync(vec![]).await;
        (client, rooms)
    }

    /// The HTTP API as the first site's backend calls it.
    pub fn api_client(&self) -> ApiClient {
        self.api_client_of(&self.site)
    }

    /// The HTTP API as a given site's backend calls it.
    pub fn api_client_of(&self, site: &TestSite) -> ApiClient {
        ApiClient::new(self.http.clone(), self.addr, &site.api_key)
    }

    /// An API request with the first site's key.
    pub fn api(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.api_client().request(method, path)
    }

    /// An API call with the first site's key: the status and the JSON
    /// answered (`null` when the answer is not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.api(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.expect("the API answers");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// An API request with a given site's key.
    pub fn api_as(
        &self,
        site: &TestSite,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.api_client_of(site).request(method, path)
    }

    /// `GET /rooms/{room}/messages?QUERY` through the API, as JSON.
    pub async fn messages(&self, room: &RoomId, query: &str) -> serde_json::Value {
        self.api_client().messages(room, query).await
    }

    /// Creates a group room in the first site through the API.
    pub async fn group(&self, title: &str, members: &[&str]) -> RoomInfo {
        let members: Vec<User> = members.iter().map(|m| User::id(m)).collect();
        self.api_client().group(title, &members).await
    }

    /// Opens a dialog in the first site through the API.
    pub async fn dialog(&self, a: &str, b: &str) -> RoomInfo {
        self.api_client().dialog(User::id(a), User::id(b)).await
    }

    /// The server's Prometheus metrics, as text.
    pub async fn metrics(&self) -> String {
        self.http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics request")
            .text()
            .await
            .expect("metrics text")
    }

    /// One counter or gauge of the server's metrics.
    pub async fn metric(&self, name: &str) -> u64 {
        metric_in(&self.metrics().await, name)
    }

    /// Stops the server gracefully and removes its database.
    pub async fn stop(mut self) {
        self.shutdown().await;
        self.scratch.remove().await;
    }

    /// Stops the server gracefully, keeping the database.
    pub async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("server stops in time")
                .expect("server task")
                .expect("server ran");
        }
    }

    /// Starts a new server on the same database (after `shutdown`).
    pub async fn restart(self) -> TestApp {
        let TestApp {
            db,
            database_url,
            scratch,
            site,
            other,
            ..
        } = self;
        let app = App::build(test_config(&database_url, |_| {}))
            .await
            .expect("server restarts");
        launch(app, db, database_url, scratch, site, other).await
    }
}

/// A user as the HTTP API is told of them: an id, and maybe a name to show.
#[derive(Debug, Clone, Copy)]
pub struct User<'a> {
    pub id: &'a str,
    pub name: Option<&'a str>,
}

impl<'a> User<'a> {
    /// A user known by id alone.
    pub fn id(id: &'a str) -> Self {
        User { id, name: None }
    }

    /// A user with a display name.
    pub fn named(id: &'a str, name: &'a str) -> Self {
        User {
            id,
            name: Some(name),
        }
    }

    fn json(self) -> serde_json::Value {
        match self.name {
            Some(name) => serde_json::json!({"id": self.id, "name": name}),
            None => serde_json::json!({"id": self.id}),
        }
    }
}

/// The HTTP API (`/api/v1`) of a running server, called with one site's
/// key, as that site's backend would. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl ApiClient {
    /// The API of the server at `addr`, with the site key `key`.
    pub fn new(http: reqwest::Client, addr: SocketAddr, key: &str) -> Self {
        ApiClient {
            http,
            base: format!("http://{addr}/api/v1"),
            key: key.to_string(),
        }
    }

    /// A request to `/api/v1{path}` with the key.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
    }

    /// Creates a group room of these members.
    pub async fn group(&self, title: &str, members: &[User<'_>]) -> RoomInfo {
        let members: Vec<_> = members.iter().map(|m| m.json()).collect();
        let res = self
            .request(reqwest::Method::POST, "/rooms")
            .json(&serde_json::json!({"title": title, "members": members}))
            .send()
            .await
            .expect("create room");
        assert_eq!(res.status(), 201, "creating a room");
        res.json().await.expect("room json")
    }

    /// Opens (or finds) the dialog of two users.
    pub async fn dialog(&self, a: User<'_>, b: User<'_>) -> RoomInfo {
        let res = self
            .request(reqwest::Method::POST, "/dialogs")
            .json(&serde_json::json!({"users": [a.json(), b.json()]}))
            .send()
            .await
            .expect("open dialog");
        assert!(
            res.status().is_success(),
            "opening a dialog: {}",
            res.status()
        );
        res.json().await.expect("room json")
    }

    /// Posts a message as `from`; returns the stored event as JSON.
    pub async fn post(&self, room: &str, from: &str, body: &str) -> serde_json::Value {
        let res = self
            .request(reqwest::Method::POST, &format!("/rooms/{room}/messages"))
            .json(&serde_json::json!({"from": from, "body": body}))
            .send()
            .await
            .expect("post message");
        assert!(
            res.status().is_success(),
            "posting a message: {}",
            res.status()
        );
        res.json().await.expect("event json")
    }

    /// `GET /rooms/{room}/messages?QUERY`, as JSON.
    pub async fn messages(&self, room: &RoomId, query: &str) -> serde_json::Value {
        let res = self
            .request(
                reqwest::Method::GET,
                &format!("/rooms/{room}/messages{query}"),
            )
            .send()
            .await
            .expect("history request");
        assert_eq!(res.status(), 200, "reading history");
        res.json().await.expect("history json")
    }
}

/// Signs a token for a user of a site, valid for `ttl` seconds from now
/// (negative: already expired).
pub fn token_for(site: &TestSite, user: &str, ttl: i64) -> String {
    token_named(site, user, &format!("User {user}"), ttl)
}

/// [`token_for`] with the display name the token carries.
pub fn token_named(site: &TestSite, user: &str, name: &str, ttl: i64) -> String {
    let now = now_secs();
    auth::sign(
        &Claims {
            sub: user.to_string(),
            site: site.id.to_string(),
            exp: now + ttl,
            nbf: None,
            iat: Some(now),
            name: Some(name.to_string()),
        },
        &site.secret,
    )
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A fresh UUIDv7 client id.
pub fn cid() -> ClientId {
    ClientId::from_uuid(uuid::Uuid::now_v7())
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The upgrade request for `/ws?site=…`, with the subprotocol and an origin.
pub fn ws_request(
    app: &TestApp,
    site: &SiteId,
    origin: Option<&str>,
) -> tungstenite::handshake::client::Request {
    ws_request_to(app.addr, site, origin)
}

/// [`ws_request`] to a server at any address (another node, say).
pub fn ws_request_to(
    addr: SocketAddr,
    site: &SiteId,
    origin: Option<&str>,
) -> tungstenite::handshake::client::Request {
    let mut req = format!("ws://{addr}/ws?site={site}")
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "sec-websocket-protocol",
        "natter.v1".parse().expect("header"),
    );
    if let Some(origin) = origin {
        req.headers_mut()
            .insert("origin", origin.parse().expect("origin header"));
    }
    req
}

/// A protocol client over a real WebSocket.
pub struct Client {
    pub ws: Ws,
    /// Whether [`Client::next`] returns `presence` frames (most tests are
    /// not about them: they are skipped unless asked for).
    pub presence: bool,
}

/// What the socket did instead of sending a frame.
#[derive(Debug)]
pub enum Ended {
    Closed(Option<CloseFrame>),
    Error(String),
}

impl Client {
    /// Opens a WebSocket; panics if the upgrade is refused.
    pub async fn connect(app: &TestApp, site: &SiteId, origin: Option<&str>) -> Client {
        Self::connect_with(app, site, origin, None).await
    }

    /// Opens a WebSocket to the server at `addr`; an upgrade that fails
    /// (a node that is down, say) is an error, not a panic.
    pub async fn connect_to(
        addr: SocketAddr,
        site: &SiteId,
        origin: Option<&str>,
    ) -> Result<Client, String> {
        let request = ws_request_to(addr, site, origin);
        match tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request)).await {
            Ok(Ok((ws, _))) => Ok(Client {
                ws,
                presence: false,
            }),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("no upgrade from {addr} within {WAIT:?}")),
        }
    }

    /// Opens a WebSocket with a client-side message size limit.
    pub async fn connect_with(
        app: &TestApp,
        site: &SiteId,
        origin: Option<&str>,
        max_message: Option<usize>,
    ) -> Client {
        let config = max_message.map(|m| {
            tungstenite::protocol::WebSocketConfig::default()
                .max_message_size(Some(m))
                .max_frame_size(Some(m))
        });
        let (ws, response) = tokio_tungstenite::connect_async_with_config(
            ws_request(app, site, origin),
            config,
            false,
        )
        .await
        .expect("websocket upgrade");
        assert_eq!(
            response
                .headers()
                .get("sec-websocket-protocol")
                .map(|v| v.as_bytes()),
            Some(&b"natter.v1"[..]),
            "the server speaks natter.v1"
        );
        Client {
            ws,
            presence: false,
        }
    }

    /// Sends a frame.
    pub async fn send(&mut self, frame: &ClientFrame) {
        let json = serde_json::to_string(frame).expect("encode");
        self.ws
            .send(Message::Text(json.into()))
            .await
            .expect("send");
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send");
    }

    /// The next frame, or how the socket ended.
    pub async fn next(&mut self) -> Result<ServerFrame, Ended> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within the wait");
            match msg {
                Some(Ok(Message::Text(text))) => {
                    let frame = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("server sent an undecodable frame {text}: {e}"));
                    if matches!(frame, ServerFrame::Presence { .. }) && !self.presence {
                        continue;
                    }
                    return Ok(frame);
                }
                Some(Ok(Message::Close(frame))) => return Err(Ended::Closed(frame)),
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(Ended::Error(e.to_string())),
                None => return Err(Ended::Closed(None)),
            }
        }
    }

    /// The next frame; panics if the socket ended.
    pub async fn recv(&mut self) -> ServerFrame {
        match self.next().await {
            Ok(frame) => frame,
            Err(ended) => panic!("expected a frame, the connection ended: {ended:?}"),
        }
    }

    /// Skips frames until one matches.
    pub async fn recv_until(&mut self, mut pred: impl FnMut(&ServerFrame) -> bool) -> ServerFrame {
        loop {
            let frame = self.recv().await;
            if pred(&frame) {
                return frame;
            }
        }
    }

    /// Expects the connection to close; returns its close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            match self.next().await {
                Ok(_) => continue,
                Err(Ended::Closed(frame)) => return frame,
                Err(Ended::Error(e)) => panic!("expected a close frame, got an error: {e}"),
            }
        }
    }

    /// Authenticates and expects `hello`.
    pub async fn auth(&mut self, token: &str) {
        self.send(&ClientFrame::Auth {
            token: token.to_string(),
        })
        .await;
        match self.recv().await {
            ServerFrame::Hello { .. } => {}
            other => panic!("expected hello, got {other:?}"),
        }
    }

    /// Syncs and collects everything up to `synced`: the rooms announced,
    /// and the events paged (in arrival order).
    pub async fn sync_collect(
        &mut self,
        cursors: Vec<Cursor>,
    ) -> (Vec<RoomInfo>, Vec<natter_shared::Event>) {
        self.send(&ClientFrame::Sync { cursors }).await;
        let mut rooms = Vec::new();
        let mut events = Vec::new();
        loop {
            match self.recv().await {
                ServerFrame::Rooms { rooms: r } => rooms.extend(r),
                ServerFrame::Page { events: e, .. } => events.extend(e),
                ServerFrame::Synced {} => return (rooms, events),
                ServerFrame::Event { event } => events.push(event),
                other => panic!("unexpected frame during sync: {other:?}"),
            }
        }
    }

    /// Syncs and returns the rooms announced.
    pub async fn sync(&mut self, cursors: Vec<Cursor>) -> Vec<RoomInfo> {
        self.sync_collect(cursors).await.0
    }

    /// Sends a message and waits for its ack; returns the seq. Live events
    /// seen meanwhile are skipped.
    pub async fn say(&mut self, room: &RoomId, body: &str) -> u64 {
        let client_id = cid();
        self.send_with(room, body, client_id).await
    }

    /// Sends with a given client id and waits for the ack.
    pub async fn send_with(&mut self, room: &RoomId, body: &str, client_id: ClientId) -> u64 {
        match self.try_send(room, body, Vec::new(), client_id).await {
            Ok(seq) => seq,
            Err((code, message)) => panic!("send refused: {code:?} {message}"),
        }
    }

    /// Sends (with files, if any) and waits for the answer: the ack's
    /// seq, or the refusal's code and message.
    pub async fn try_send(
        &mut self,
        room: &RoomId,
        body: &str,
        files: Vec<FileId>,
        client_id: ClientId,
    ) -> Result<u64, (ErrorCode, String)> {
        self.send(&ClientFrame::Send {
            client_id,
            room: room.clone(),
            body: body.to_string(),
            files,
        })
        .await;
        loop {
            match self.recv().await {
                ServerFrame::Ack {
                    client_id: c, seq, ..
                } if c == client_id => return Ok(seq),
                ServerFrame::Error {
                    client_id: Some(c),
                    code,
                    message,
                    ..
                } if c == client_id => return Err((code, message)),
                _ => continue,
            }
        }
    }
}

/// The value of `name` in a Prometheus text exposition; panics if absent.
pub fn metric_in(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics:\n{text}"))
}

/// Runs `command` (a blocking one: a child process) on a thread of its
/// own. A server under test runs on the test's own runtime: a command
/// that blocked it could wait for the database while the server, unable
/// to run, held the database's write lock.
pub async fn off_runtime<T: Send + 'static>(command: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(command)
        .await
        .expect("the command's thread ends")
}

/// `natter admin ARGS` run as the real binary on the database at
/// `database_url`, with `stdin` as its standard input (the password).
/// Blocking: with a server on the test's runtime, call it through
/// [`off_runtime`].
pub fn natter_admin(database_url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = std::process::Command::new(natter_bin())
        .arg("admin")
        .args(args)
        .args(["--database-url", database_url])
        .env("RUST_LOG", "error")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("natter runs");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .expect("standard input written");
    }
    child.wait_with_output().expect("natter ends")
}

/// The built `natter` binary for tests that start it as a process:
/// `NATTER_BIN`, or the one beside the test binary
/// (target/debug/deps/e2e-HASH -> target/debug/natter), refused when the
/// server's sources are newer than it.
pub fn natter_bin() -> PathBuf {
    const BUILD: &str = "cargo build -p natter-server --bin natter";
    if let Some(path) = std::env::var_os("NATTER_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("natter"))
        .filter(|bin| bin.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no natter binary beside {}: run `{BUILD}` (or `cargo xtask test`) first, \
                 or set NATTER_BIN",
                exe.display()
            )
        });
    let built = std::fs::metadata(&bin).and_then(|m| m.modified()).ok();
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join("../server");
    let edited = newest_change(&server.join("src")).max(newest_change(&server.join("migrations")));
    assert!(
        built.is_none() || edited <= built,
        "{} is older than the server's sources: run `{BUILD}`",
        bin.display()
    );
    bin
}

/// The latest modification time of any file under `dir`.
fn newest_change(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let time = if path.is_dir() {
            newest_change(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(time);
    }
    newest
}
