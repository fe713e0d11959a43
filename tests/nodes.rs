//! Several `natter` processes sharing the load: one fresh MariaDB
//! database, a NATS server of the test's own (so that it can be stopped
//! and restarted without disturbing anything else), and people whose
//! WebSockets are spread over the nodes. Also a node whose database link
//! is cut mid-burst and restored, or hangs.
//!
//! The nodes are the real `natter` binary, beside this test binary in the
//! target directory (`cargo build -p natter-server --bin natter` makes it;
//! `cargo xtask test` builds it with the tests), or `NATTER_BIN`. The NATS
//! server is `NATTER_TEST_NATS_SERVER`, or `nats-server` on the PATH or in
//! /usr/sbin. A missing one fails the test: it never skips.

use crate::assert_no_panics;
use futures_util::{SinkExt, StreamExt};
use natter_shared::{
    ClientFrame, ClientId, Cursor, ErrorCode, Event, EventKind, RoomId, Seq, ServerFrame,
};
use natter_tests::{
    ApiClient, Client, Db, ORIGIN, Scratch, TestApp, TestSite, User, cid, eventually,
    fresh_database, metric_in, natter_bin, register, spawn_app_at, token_for, unique,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

/// How long a node or the NATS server may take to come up.
const START: Duration = Duration::from_secs(30);
/// How long a stage of a burst may take to make its progress.
const STAGE: Duration = Duration::from_secs(60);
/// A sweep interval no test lasts: the sweep cannot hide a miss.
const NO_SWEEP: Duration = Duration::from_secs(3600);

// ---------------------------------------------------------------------
// Processes: the NATS server and the nodes; a proxy that cuts links.
// ---------------------------------------------------------------------

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A directory for one test's logs, named in failure messages.
pub(crate) fn log_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique(test));
    std::fs::create_dir_all(&dir).expect("a log directory");
    dir
}

/// The last lines of a log file.
pub(crate) fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// An executable: the environment's choice, else the first candidate
/// that exists.
fn executable(env: &str, candidates: &[PathBuf], hint: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return path.into();
    }
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .unwrap_or_else(|| panic!("no {hint} (looked at {candidates:?}; or set {env})"))
}

/// Migrates the database at `url` and registers the test site in it: what
/// runs before any node starts.
pub(crate) async fn site_on(url: &str) -> TestSite {
    let store = natter_server::store::Store::connect(url, 2)
        .await
        .expect("the test database opens");
    let site = register(&store, "test", &[ORIGIN.to_string()]).await;
    store.close().await;
    site
}

/// `name` in each directory of `PATH`.
fn on_path(name: &str) -> Vec<PathBuf> {
    std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .collect()
        })
        .unwrap_or_default()
}

/// A tool the tests start: `env`'s choice, else `name` on `PATH`, else
/// `fallback`.
pub(crate) fn tool(env: &str, name: &str, fallback: &str, hint: &str) -> PathBuf {
    let mut candidates = on_path(name);
    candidates.push(fallback.into());
    executable(env, &candidates, hint)
}

fn nats_bin() -> PathBuf {
    tool(
        "NATTER_TEST_NATS_SERVER",
        "nats-server",
        "/usr/sbin/nats-server",
        "nats-server (Debian's package nats-server)",
    )
}

pub(crate) fn log_file(log: &Path) -> (Stdio, Stdio) {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("a log file");
    let err = out.try_clone().expect("a log file");
    (out.into(), err.into())
}

pub(crate) fn kill(child: &mut Option<Child>) {
    if let Some(mut child) = child.take() {
        let _ = child.kill(); // SIGKILL; it may already have exited
        let _ = child.wait();
    }
}

/// A NATS server of the test's own, on a fixed free port so that it can
/// be killed and started again where the nodes look for it.
struct Nats {
    port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl Nats {
    async fn start(dir: &Path) -> Nats {
        let mut nats = Nats {
            port: free_port(),
            log: dir.join("nats.log"),
            child: None,
        };
        nats.spawn().await;
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub(crate) async fn spawn(&mut self) {
        let (out, err) = log_file(&self.log);
        let child = Command::new(nats_bin())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let log = self.log.clone();
        eventually(START, "nats-server to listen", async || {
            TcpStream::connect(addr).await.ok().map(drop)
        })
        .await;
        assert!(
            self.child
                .as_mut()
                .is_some_and(|c| c.try_wait().ok().flatten().is_none()),
            "nats-server exited:\n{}",
            tail(&log)
        );
    }

    /// Stops the broker at once, as a crash would.
    fn kill(&mut self) {
        kill(&mut self.child);
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One `natter` process, restartable on the same port.
pub(crate) struct Node {
    addr: SocketAddr,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    /// Starts a node; `extra` are more arguments (the broker's, say).
    pub(crate) async fn start(
        name: &str,
        dir: &Path,
        database_url: &str,
        extra: &[String],
    ) -> Node {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut args = vec![
            "--bind".to_string(),
            addr.to_string(),
            "--database-url".to_string(),
            database_url.to_string(),
            "--widget-dir".to_string(),
            dir.join("no-widget").display().to_string(),
            // One directory for all nodes, as a site's nodes share one.
            "--files-dir".to_string(),
            dir.join("files").display().to_string(),
            // People go offline a second after their last connection.
            "--presence-grace-secs".to_string(),
            "1".to_string(),
        ];
        args.extend_from_slice(extra);
        let mut node = Node {
            addr,
            args,
            log: dir.join(format!("{name}.log")),
            child: None,
        };
        node.spawn().await;
        node
    }

    pub(crate) async fn spawn(&mut self) {
        let (out, err) = log_file(&self.log);
        let child = Command::new(natter_bin())
            .args(&self.args)
            .env("RUST_LOG", "info,sqlx=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("the natter binary starts");
        self.child = Some(child);
        let url = format!("http://{}/healthz", self.addr);
        let http = reqwest::Client::new();
        let (child, log) = (&mut self.child, &self.log);
        eventually(START, "a node to answer /healthz", async || {
            if let Some(Ok(Some(status))) = child.as_mut().map(Child::try_wait) {
                panic!("the node exited ({status}):\n{}", tail(log));
            }
            let res = http.get(&url).send().await.ok()?;
            res.status().is_success().then_some(())
        })
        .await;
    }

    /// `kill -9`: no shutdown, no flush.
    pub(crate) fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Starts the node again, same port, same database.
    async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    pub(crate) fn api(&self, site: &TestSite) -> ApiClient {
        ApiClient::new(reqwest::Client::new(), self.addr, &site.api_key)
    }

    /// A counter from the node's `/metrics`.
    async fn metric(&self, name: &str) -> u64 {
        let text = reqwest::get(format!("http://{}/metrics", self.addr))
            .await
            .expect("metrics answer")
            .text()
            .await
            .expect("metrics text");
        metric_in(&text, name)
    }

    pub(crate) fn assert_no_panic(&self) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            !text.contains("panicked"),
            "a node panicked:\n{}",
            tail(&self.log)
        );
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Nodes sharing one fresh MariaDB database and a NATS server of their own.
struct Cluster {
    nats: Nats,
    nodes: Vec<Node>,
    site: TestSite,
    database_url: String,
    scratch: Scratch,
    /// The logs, removed when the test passes (kept with `TEST_LOG`).
    dir: PathBuf,
    /// The cluster's subject prefix, of the test's own: clusters never
    /// hear each other.
    prefix: String,
    sweep: Duration,
}

impl Cluster {
    /// `nodes` nodes, sweeping every `sweep` (see the server's
    /// `broker::sweep`; the tests of the other mechanisms make it long, so
    /// that it cannot hide what they miss).
    async fn start(test: &str, nodes: usize, sweep: Duration) -> Cluster {
        let dir = log_dir(test);
        let (database_url, scratch) = fresh_database(Db::MariaDb).await;
        let site = site_on(&database_url).await;
        let nats = Nats::start(&dir).await;
        let url = nats.url();
        let mut cluster = Cluster {
            nats,
            nodes: Vec::new(),
            site,
            database_url,
            scratch,
            dir,
            prefix: unique("natter_test"),
            sweep,
        };
        for _ in 0..nodes {
            cluster.add_node(&url).await;
        }
        cluster
    }

    /// Starts one more node, reaching the broker at `broker`.
    async fn add_node(&mut self, broker: &str) {
        let database_url = self.database_url.clone();
        self.add_node_on(broker, &database_url).await;
    }

    /// Starts one more node, reaching the broker at `broker` and the
    /// database at `database_url` (the cluster's, through a proxy, say).
    async fn add_node_on(&mut self, broker: &str, database_url: &str) {
        let args = [
            "--broker".to_string(),
            broker.to_string(),
            "--broker-subject-prefix".to_string(),
            self.prefix.clone(),
            "--broker-sweep-secs".to_string(),
            self.sweep.as_secs().to_string(),
        ];
        let name = format!("node{}", self.nodes.len());
        let node = Node::start(&name, &self.dir, database_url, &args).await;
        self.nodes.push(node);
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.addr).collect()
    }

    async fn stop(mut self) {
        for node in &mut self.nodes {
            node.assert_no_panic();
            node.kill();
        }
        self.nats.kill();
        self.scratch.remove().await;
        if std::env::var_os("TEST_LOG").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir); // best effort, in temp
        }
    }
}

/// What a [`Cutter`] lets through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Everything.
    All,
    /// Nothing: open connections are cut, new ones refused.
    Nothing,
    /// Nothing, silently: open connections are cut, new ones accepted and
    /// never answered (a host that hangs).
    Silence,
}

/// A TCP proxy whose link the test cuts and restores.
struct Cutter {
    addr: SocketAddr,
    pass: watch::Sender<Pass>,
    task: tokio::task::JoinHandle<()>,
}

/// A TCP proxy a test puts between a server and its database.
pub(crate) trait Proxy: Sized {
    /// Listens on a free port, passing connections on to `upstream`.
    async fn start(upstream: SocketAddr) -> Self;
    /// Where it listens.
    fn addr(&self) -> SocketAddr;
}

/// A server on a fresh MariaDB database, which it reaches through a proxy
/// of type `P` only; with the database's own URL, for the test.
pub(crate) async fn app_behind<P: Proxy>() -> (TestApp, P, String) {
    let (direct, scratch) = fresh_database(Db::MariaDb).await;
    let (proxy, url) = proxied::<P>(&direct).await;
    let app = spawn_app_at(Db::MariaDb, url, scratch, |_| {}).await;
    (app, proxy, direct)
}

/// A proxy of type `P` in front of the database `url` names, and the URL
/// that reaches the database through it.
async fn proxied<P: Proxy>(url: &str) -> (P, String) {
    let (_, upstream) = through(url, SocketAddr::from(([127, 0, 0, 1], 0))).await;
    let proxy = P::start(upstream).await;
    let (through_proxy, _) = through(url, proxy.addr()).await;
    (proxy, through_proxy)
}

impl Proxy for Cutter {
    async fn start(upstream: SocketAddr) -> Cutter {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let (pass, _) = watch::channel(Pass::All);
        let links = pass.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut link = links.subscribe();
                let now = *link.borrow_and_update();
                tokio::spawn(async move {
                    match now {
                        Pass::All => {}
                        Pass::Nothing => return, // dropped: refused
                        Pass::Silence => {
                            // Held open, unanswered, until the link changes.
                            let _ = link.changed().await; // either way, drop it
                            return;
                        }
                    }
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let cut = link.wait_for(|pass| *pass != Pass::All);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Cutter { addr, pass, task }
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Cutter {
    fn cut(&self) {
        self.pass.send_replace(Pass::Nothing);
    }

    fn hang(&self) {
        self.pass.send_replace(Pass::Silence);
    }

    fn restore(&self) {
        self.pass.send_replace(Pass::All);
    }
}

impl Drop for Cutter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The database URL with its host and port replaced by `addr`, and the
/// host and port it named.
pub(crate) async fn through(url: &str, addr: SocketAddr) -> (String, SocketAddr) {
    let start = url
        .rfind('@')
        .map(|at| at + 1)
        .or_else(|| url.find("://").map(|s| s + 3))
        .expect("a database URL with a host");
    let end = url[start..]
        .find('/')
        .map_or(url.len(), |slash| start + slash);
    let upstream = tokio::net::lookup_host(&url[start..end])
        .await
        .expect("the database host resolves")
        .next()
        .expect("an address for the database host");
    (format!("{}{addr}{}", &url[..start], &url[end..]), upstream)
}

// ---------------------------------------------------------------------
// People: a client that keeps its view and outbox across connections.
// ---------------------------------------------------------------------

/// What one person's client has received and sent, across connections.
#[derive(Default)]
struct View {
    /// Per room, every event received in order: index `seq - 1`.
    rooms: BTreeMap<RoomId, Vec<Event>>,
    /// The (room, seq) of each acked send.
    acked: HashMap<ClientId, (RoomId, Seq)>,
    /// Promises broken: gaps, two events under one seq, unexpected errors.
    violations: Vec<String>,
    /// Sends written and not acked yet.
    outstanding: usize,
    connects: usize,
    resyncs: usize,
    send_errors: usize,
    /// Sends acked by each node, by its index.
    acked_by: BTreeMap<usize, usize>,
    /// The node of the last connection that synced.
    synced_on: Option<usize>,
}

impl View {
    /// Takes an event in: the next seq is kept, one already held must be
    /// the same event, and one past a gap is a broken promise.
    fn take(&mut self, event: Event) {
        let list = self.rooms.entry(event.room.clone()).or_default();
        let next = list.len() as u64 + 1;
        if event.seq == next {
            list.push(event);
        } else if event.seq == 0 || event.seq > next {
            self.violations.push(format!(
                "{}: seq {} arrived when {} was next",
                event.room, event.seq, next
            ));
        } else if list[(event.seq - 1) as usize] != event {
            self.violations.push(format!(
                "{}: two different events under seq {}",
                event.room, event.seq
            ));
        }
    }

    fn cursors(&self) -> Vec<Cursor> {
        self.rooms
            .iter()
            .map(|(room, list)| Cursor::new(room.clone(), list.len() as u64))
            .collect()
    }
}

/// A send not acked yet.
struct Pending {
    client_id: ClientId,
    room: RoomId,
    body: String,
    /// Not before this instant (after an error).
    not_before: Instant,
}

/// A person: who they are, where they connect, and what they will write.
struct Person {
    name: String,
    site: TestSite,
    nodes: Vec<SocketAddr>,
    home: usize,
    /// A node the test sends this person to: they leave the one they are
    /// on and connect there.
    go: watch::Receiver<usize>,
    /// Messages to write, in order; the first `allowance` may be written.
    plan: Vec<(RoomId, String)>,
    allowance: watch::Receiver<usize>,
    view: Arc<Mutex<View>>,
    acked: Arc<AtomicUsize>,
    done: CancellationToken,
}

/// Sends in flight per connection.
const WINDOW: usize = 4;
/// Pause before retrying after an error or a failed connection.
const RETRY: Duration = Duration::from_millis(200);

fn lock(view: &Mutex<View>) -> MutexGuard<'_, View> {
    view.lock().unwrap_or_else(|e| e.into_inner())
}

/// How a connection ended.
enum Ended {
    Dropped,
    /// Left for the node the test named.
    Sent(usize),
    Done,
}

impl Person {
    async fn run(self) {
        let mut outbox: Vec<Pending> = Vec::new();
        let mut written = 0;
        let mut home = self.home;
        let mut attempt = 0;
        loop {
            // Home first; after a drop, the next node.
            let node = (home + attempt) % self.nodes.len();
            match self.session(node, &mut outbox, &mut written).await {
                Ended::Done => return,
                Ended::Dropped => attempt += 1,
                Ended::Sent(to) => {
                    (home, attempt) = (to, 0);
                    continue;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(RETRY) => {}
                () = self.done.cancelled() => return,
            }
        }
    }

    /// One connection: auth, sync, then sends and deliveries until it drops.
    async fn session(&self, node: usize, outbox: &mut Vec<Pending>, written: &mut usize) -> Ended {
        let mut go = self.go.clone();
        go.mark_unchanged();
        let addr = self.nodes[node];
        let Ok(mut client) = Client::connect_to(addr, &self.site.id, Some(ORIGIN)).await else {
            return Ended::Dropped;
        };
        lock(&self.view).connects += 1;
        let token = token_for(&self.site, &self.name, 3600);
        if put(&mut client, &ClientFrame::Auth { token })
            .await
            .is_err()
        {
            return Ended::Dropped;
        }
        let mut synced = false;
        let mut sync_at: Option<Instant> = None;
        let mut inflight: HashSet<ClientId> = HashSet::new();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            let msg = tokio::select! {
                msg = client.ws.next() => msg,
                _ = tick.tick() => {
                    let now = Instant::now();
                    if sync_at.is_some_and(|at| at <= now) {
                        sync_at = None;
                        let cursors = lock(&self.view).cursors();
                        if put(&mut client, &ClientFrame::Sync { cursors }).await.is_err() {
                            return Ended::Dropped;
                        }
                    }
                    if !synced {
                        continue;
                    }
                    while *written < (*self.allowance.borrow()).min(self.plan.len())
                        && outbox.len() < WINDOW
                    {
                        let (room, body) = self.plan[*written].clone();
                        outbox.push(Pending { client_id: cid(), room, body, not_before: now });
                        *written += 1;
                    }
                    lock(&self.view).outstanding = outbox.len();
                    for p in outbox.iter() {
                        if inflight.len() >= WINDOW {
                            break;
                        }
                        if inflight.contains(&p.client_id) || p.not_before > now {
                            continue;
                        }
                        let frame = ClientFrame::Send {
                            client_id: p.client_id,
                            room: p.room.clone(),
                            body: p.body.clone(),
                            files: Vec::new(),
                        };
                        if put(&mut client, &frame).await.is_err() {
                            return Ended::Dropped;
                        }
                        inflight.insert(p.client_id);
                    }
                    continue;
                }
                () = self.done.cancelled() => {
                    let _ = client.ws.close(None).await; // leaving anyway
                    return Ended::Done;
                }
                Ok(()) = go.changed() => {
                    let _ = client.ws.close(None).await; // leaving anyway
                    return Ended::Sent(*go.borrow_and_update());
                }
            };
            let text = match msg {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ended::Dropped,
                Some(Ok(_)) => continue,
            };
            let frame: ServerFrame = match serde_json::from_str(&text) {
                Ok(frame) => frame,
                Err(err) => panic!("the server sent an undecodable frame {text}: {err}"),
            };
            let mut view = lock(&self.view);
            match frame {
                ServerFrame::Hello { .. } => sync_at = Some(Instant::now()),
                ServerFrame::Rooms { rooms } => {
                    for room in rooms {
                        view.rooms.entry(room.id).or_default();
                    }
                }
                ServerFrame::Page { events, .. } => events.into_iter().for_each(|e| view.take(e)),
                ServerFrame::Event { event } => view.take(event),
                ServerFrame::Synced {} => {
                    synced = true;
                    view.synced_on = Some(node);
                }
                ServerFrame::Resync { .. } => {
                    view.resyncs += 1;
                    synced = false;
                    sync_at = Some(Instant::now());
                }
                ServerFrame::Ack {
                    client_id,
                    room,
                    seq,
                    ..
                } => {
                    inflight.remove(&client_id);
                    let before = outbox.len();
                    outbox.retain(|p| p.client_id != client_id);
                    view.outstanding = outbox.len();
                    match view.acked.insert(client_id, (room.clone(), seq)) {
                        None if outbox.len() < before => {
                            *view.acked_by.entry(node).or_default() += 1;
                            self.acked.fetch_add(1, Ordering::SeqCst);
                        }
                        None => view
                            .violations
                            .push(format!("an ack for {client_id}, never sent")),
                        Some(first) if first != (room.clone(), seq) => view.violations.push(
                            format!("{client_id} acked as {first:?}, then as {room} {seq}"),
                        ),
                        Some(_) => {}
                    }
                }
                ServerFrame::Error {
                    code,
                    client_id: Some(client_id),
                    message,
                    ..
                } => {
                    inflight.remove(&client_id);
                    view.send_errors += 1;
                    if !matches!(code, ErrorCode::Internal | ErrorCode::ShuttingDown) {
                        view.violations
                            .push(format!("send {client_id} refused: {code:?} {message}"));
                    }
                    for p in outbox.iter_mut().filter(|p| p.client_id == client_id) {
                        p.not_before = Instant::now() + RETRY;
                    }
                }
                // A store failure while syncing or filling a gap: sync again.
                ServerFrame::Error {
                    code: ErrorCode::Internal,
                    client_id: None,
                    ..
                } => {
                    synced = false;
                    sync_at = Some(Instant::now() + RETRY);
                }
                ServerFrame::Error { code, message, .. } => view
                    .violations
                    .push(format!("an error frame: {code:?} {message}")),
                ServerFrame::Typing { .. }
                | ServerFrame::Presence { .. }
                | ServerFrame::Read { .. }
                | ServerFrame::Pong { .. } => {}
                other => view.violations.push(format!("unexpected frame {other:?}")),
            }
        }
    }
}

async fn put(client: &mut Client, frame: &ClientFrame) -> Result<(), ()> {
    let json = serde_json::to_string(frame).expect("frames encode");
    client
        .ws
        .send(Message::Text(json.into()))
        .await
        .map_err(drop)
}

/// The people of a burst and the knobs the test turns.
struct Crowd {
    views: Vec<(String, Arc<Mutex<View>>)>,
    /// Where to send each person (see [`Crowd::send_to`]).
    goes: Vec<watch::Sender<usize>>,
    acked: Arc<AtomicUsize>,
    allowance: watch::Sender<usize>,
    done: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    total: usize,
}

impl Crowd {
    /// `people` people, person `i` connecting first to node `i % nodes`;
    /// the first `writers` each write `each` messages, round-robin over
    /// `rooms`; the others only read.
    fn start(
        site: &TestSite,
        nodes: &[SocketAddr],
        people: &[String],
        writers: usize,
        rooms: &[RoomId],
        each: usize,
    ) -> Crowd {
        let acked = Arc::new(AtomicUsize::new(0));
        let (allowance, allowed) = watch::channel(0);
        let done = CancellationToken::new();
        let mut views = Vec::new();
        let mut goes = Vec::new();
        let mut tasks = Vec::new();
        for (i, name) in people.iter().enumerate() {
            let mut view = View::default();
            for room in rooms {
                view.rooms.insert(room.clone(), Vec::new());
            }
            let view = Arc::new(Mutex::new(view));
            let writes = if i < writers { each } else { 0 };
            let plan = (0..writes)
                .map(|n| (rooms[(i + n) % rooms.len()].clone(), format!("{name} #{n}")))
                .collect();
            let (to, go) = watch::channel(i % nodes.len());
            goes.push(to);
            let person = Person {
                name: name.clone(),
                site: site.clone(),
                nodes: nodes.to_vec(),
                home: i % nodes.len(),
                go,
                plan,
                allowance: allowed.clone(),
                view: view.clone(),
                acked: acked.clone(),
                done: done.clone(),
            };
            views.push((name.clone(), view));
            tasks.push(tokio::spawn(person.run()));
        }
        Crowd {
            views,
            goes,
            acked,
            allowance,
            done,
            tasks,
            total: writers.min(people.len()) * each,
        }
    }

    fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    /// Sends person `i` to node `node`: they leave the node they are on
    /// and go on from there.
    fn send_to(&self, i: usize, node: usize) {
        self.goes[i].send_replace(node);
    }

    /// Lets every person write up to `n` messages.
    fn allow(&self, n: usize) {
        self.allowance.send_replace(n);
    }

    /// Waits until `n` sends in all are acked.
    async fn acked_at_least(&self, n: usize, what: &str) {
        let acked = &self.acked;
        eventually(STAGE, &format!("{n} acks ({what})"), async || {
            (acked.load(Ordering::SeqCst) >= n).then_some(())
        })
        .await;
    }

    async fn stop(self) {
        self.done.cancel();
        for task in self.tasks {
            task.await.expect("a person's task ends cleanly");
        }
    }
}

// ---------------------------------------------------------------------
// The database, read directly.
// ---------------------------------------------------------------------

/// One event as a line both the database and a client can produce.
fn line(event: &Event) -> String {
    let sender = event.sender.as_ref().map(|s| s.to_string());
    match &event.kind {
        EventKind::Message {
            body, client_id, ..
        } => format!(
            "{} message {:?} {:?} {body}",
            event.seq,
            sender,
            client_id.map(|c| c.to_string())
        ),
        EventKind::MemberJoined { user } => format!("{} member_joined {user}", event.seq),
        EventKind::MemberLeft { user } => format!("{} member_left {user}", event.seq),
        EventKind::Deleted { client_id } => format!(
            "{} deleted {:?} {:?}",
            event.seq,
            sender,
            client_id.map(|c| c.to_string())
        ),
        EventKind::MessageDeleted { target } => format!("{} message_deleted {target}", event.seq),
    }
}

/// A room's events as stored: (seq, client id, line).
async fn stored(database_url: &str, room: &RoomId) -> Vec<(Seq, Option<String>, String)> {
    use sqlx::{Connection, Row};
    let mut conn = sqlx::MySqlConnection::connect(database_url)
        .await
        .expect("the test database answers");
    let rows = sqlx::query(
        "SELECT seq, kind, sender, client_id, body, subject FROM events \
         WHERE room_id = ? ORDER BY seq",
    )
    .bind(room.as_str())
    .fetch_all(&mut conn)
    .await
    .expect("events read");
    let _ = conn.close().await; // done with it either way
    rows.iter()
        .map(|row| {
            let seq: i64 = row.get("seq");
            let seq = seq as Seq;
            let kind: String = row.get("kind");
            let sender: Option<String> = row.get("sender");
            let client_id: Option<String> = row.get("client_id");
            let body: Option<String> = row.get("body");
            let subject: Option<String> = row.get("subject");
            let text = match kind.as_str() {
                "message" => format!(
                    "{seq} message {sender:?} {client_id:?} {}",
                    body.unwrap_or_default()
                ),
                other => format!("{seq} {other} {}", subject.unwrap_or_default()),
            };
            (seq, client_id, text)
        })
        .collect()
}

/// Every promise, checked against the database: each room's seqs run
/// 1..=N with no gap; every message sent is stored exactly once, at the
/// seq its ack named; and every person holds exactly what is stored, in
/// that order (waited for: deliveries may still be on their way).
async fn check_everything(database_url: &str, rooms: &[RoomId], crowd: &Crowd) {
    let mut stored_rooms = Vec::new();
    let mut ids = HashMap::new();
    for room in rooms {
        let events = stored(database_url, room).await;
        for (i, (seq, client_id, _)) in events.iter().enumerate() {
            assert_eq!(*seq, i as u64 + 1, "{room}: seqs run 1..=N without a gap");
            if let Some(id) = client_id {
                assert!(
                    ids.insert(id.clone(), (room.clone(), *seq)).is_none(),
                    "{id} stored twice"
                );
            }
        }
        stored_rooms.push((room, events));
    }
    assert_eq!(ids.len(), crowd.total, "every message sent is stored");
    for (name, view) in &crowd.views {
        let view = lock(view);
        assert!(
            view.violations.is_empty(),
            "{name}: {:?}",
            &view.violations[..view.violations.len().min(10)]
        );
        for (client_id, at) in &view.acked {
            assert_eq!(
                ids.get(&client_id.to_string()),
                Some(at),
                "{name}: {client_id} stored where its ack said"
            );
        }
    }
    let deadline = Instant::now() + STAGE;
    for (name, view) in &crowd.views {
        for (room, events) in &stored_rooms {
            let want: Vec<&str> = events.iter().map(|(_, _, l)| l.as_str()).collect();
            loop {
                let have: Vec<String> = lock(view)
                    .rooms
                    .get(*room)
                    .map(|list| list.iter().map(line).collect())
                    .unwrap_or_default();
                if have == want {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name} holds {} events of {room}, the database {}; first difference at {:?}",
                    have.len(),
                    want.len(),
                    have.iter().zip(&want).position(|(h, w)| h != w)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let view = lock(view);
            assert!(view.violations.is_empty(), "{name}: {:?}", view.violations);
        }
    }
}

// ---------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------

/// A connection on node `n`, authenticated and synced.
async fn login(cluster: &Cluster, n: usize, user: &str) -> Client {
    let mut client = Client::connect_to(cluster.nodes[n].addr, &cluster.site.id, Some(ORIGIN))
        .await
        .expect("a node accepts the connection");
    client.auth(&token_for(&cluster.site, user, 3600)).await;
    client.sync(vec![]).await;
    client
}

/// a on node 0 and b on node 1, both synced, in a new group `title` of
/// the two (made through node 0; b has heard of it).
async fn a_and_b_in(cluster: &Cluster, title: &str) -> (Client, Client, RoomId) {
    let a = login(cluster, 0, "a").await;
    let mut b = login(cluster, 1, "b").await;
    let api = cluster.nodes[0].api(&cluster.site);
    let room = api.group(title, &[User::id("a"), User::id("b")]).await.id;
    b.recv_until(|f| announces(f, &room)).await;
    (a, b, room)
}

fn announces(frame: &ServerFrame, room: &RoomId) -> bool {
    matches!(frame, ServerFrame::Rooms { rooms } if rooms.iter().any(|r| &r.id == room))
}

fn is_event(frame: &ServerFrame, room: &RoomId, seq: Seq) -> bool {
    matches!(frame, ServerFrame::Event { event } if &event.room == room && event.seq == seq)
}

#[tokio::test]
async fn read_markers_presence_and_bans_reach_every_node() {
    let cluster = Cluster::start("natter_people", 2, NO_SWEEP).await;
    let room = cluster.nodes[0]
        .api(&cluster.site)
        .dialog(User::id("a"), User::id("b"))
        .await
        .id;
    let mut a = login(&cluster, 0, "a").await;
    a.presence = true;
    let presence_of_b = |f: &ServerFrame| match f {
        ServerFrame::Presence { users } => users
            .iter()
            .find(|p| p.user.as_str() == "b")
            .map(|p| (p.online, p.last_seen.is_some())),
        _ => None,
    };
    let mut b = login(&cluster, 1, "b").await;
    let online = a
        .recv_until(|f| presence_of_b(f) == Some((true, false)))
        .await;
    assert_eq!(
        presence_of_b(&online),
        Some((true, false)),
        "b on node 1 is online for a on node 0"
    );

    let seq = a.say(&room, "read me").await;
    b.recv_until(|f| is_event(f, &room, seq)).await;
    b.send(&ClientFrame::Read {
        room: room.clone(),
        seq,
    })
    .await;
    let read = a
        .recv_until(|f| matches!(f, ServerFrame::Read { user, .. } if user.as_str() == "b"))
        .await;
    assert!(
        matches!(read, ServerFrame::Read { seq: s, .. } if s == seq),
        "{read:?}"
    );

    drop(b);
    a.recv_until(|f| presence_of_b(f) == Some((false, true)))
        .await;

    // A ban through node 1 closes a's connection on node 0 at once.
    let res = cluster.nodes[1]
        .api(&cluster.site)
        .request(reqwest::Method::PUT, "/users/a/ban")
        .send()
        .await
        .expect("ban");
    assert_eq!(res.status(), 204);
    let close = a.closed().await.expect("a close frame");
    assert_eq!(close.reason.as_str(), "banned");
    cluster.stop().await;
}

#[tokio::test]
async fn rooms_members_and_typing_reach_every_node() {
    let cluster = Cluster::start("natter_rooms", 3, NO_SWEEP).await;
    let mut a = login(&cluster, 0, "a").await;
    let mut b = login(&cluster, 1, "b").await;
    let mut c = login(&cluster, 2, "c").await;

    // A room created through node 0 is announced to b on node 1.
    let api = |n: usize| cluster.nodes[n].api(&cluster.site);
    let room = api(0)
        .group("shared", &[User::id("a"), User::id("b")])
        .await
        .id;
    b.recv_until(|f| announces(f, &room)).await;

    // A message sent on node 0 reaches node 1 live.
    let seq = a.say(&room, "hello from node 0").await;
    match b.recv_until(|f| is_event(f, &room, seq)).await {
        ServerFrame::Event { event } => assert!(
            matches!(event.kind, EventKind::Message { ref body, .. } if body == "hello from node 0")
        ),
        other => panic!("expected the event, got {other:?}"),
    }

    // c joins through node 2's API: everyone sees it, c is told of the room.
    let res = api(2)
        .request(reqwest::Method::POST, &format!("/rooms/{room}/members"))
        .json(&serde_json::json!({"user": {"id": "c"}}))
        .send()
        .await
        .expect("add member");
    assert_eq!(res.status(), 201);
    let joined = seq + 1;
    for client in [&mut a, &mut b] {
        client.recv_until(|f| is_event(f, &room, joined)).await;
    }
    c.recv_until(|f| announces(f, &room)).await;
    c.recv_until(|f| is_event(f, &room, joined)).await;

    // c types on node 2; a and b see it.
    c.send(&ClientFrame::Typing { room: room.clone() }).await;
    for client in [&mut a, &mut b] {
        let typing = client
            .recv_until(|f| matches!(f, ServerFrame::Typing { .. }))
            .await;
        assert!(
            matches!(typing, ServerFrame::Typing { room: r, user } if r == room && user.as_str() == "c")
        );
    }

    // b is removed through node 1's API: a and c see it on their nodes.
    let res = api(1)
        .request(reqwest::Method::DELETE, &format!("/rooms/{room}/members/b"))
        .send()
        .await
        .expect("remove member");
    assert_eq!(res.status(), 200);
    for client in [&mut a, &mut c] {
        match client.recv_until(|f| is_event(f, &room, joined + 1)).await {
            ServerFrame::Event { event } => assert!(
                matches!(event.kind, EventKind::MemberLeft { ref user } if user.as_str() == "b")
            ),
            other => panic!("expected member_left, got {other:?}"),
        }
    }

    // A dialog opened through node 1 is announced on nodes 0 and 2.
    let dialog = api(1).dialog(User::id("a"), User::id("c")).await.id;
    a.recv_until(|f| announces(f, &dialog)).await;
    c.recv_until(|f| announces(f, &dialog)).await;
    let seq = c.say(&dialog, "hi a").await;
    a.recv_until(|f| is_event(f, &dialog, seq)).await;

    cluster.stop().await;
}

/// Reads `client` until it holds `want` of `room` (after `held`), syncing
/// again whenever it is told to resync; returns the seqs received.
async fn catch_up(client: &mut Client, room: &RoomId, held: Seq, want: Seq) -> Vec<Seq> {
    let mut seqs = Vec::new();
    let mut last = held;
    let deadline = Instant::now() + STAGE;
    while last < want {
        assert!(Instant::now() < deadline, "{room}: holds {last} of {want}");
        match client.recv().await {
            ServerFrame::Event { event } if &event.room == room => {
                seqs.push(event.seq);
                last = event.seq;
            }
            ServerFrame::Page {
                room: r, events, ..
            } if &r == room => {
                for event in events {
                    seqs.push(event.seq);
                    last = event.seq;
                }
            }
            ServerFrame::Resync { .. } => {
                let cursors = vec![Cursor::new(room.clone(), last)];
                client.send(&ClientFrame::Sync { cursors }).await;
            }
            _ => {}
        }
    }
    seqs
}

#[tokio::test]
async fn what_was_sent_while_the_broker_was_down_arrives_once_it_is_back() {
    let mut cluster = Cluster::start("natter_tail", 2, NO_SWEEP).await;
    let (mut a, mut b, room) = a_and_b_in(&cluster, "tail").await;
    let first = a.say(&room, "before").await;
    b.recv_until(|f| is_event(f, &room, first)).await;

    // The broker dies; node 0 keeps accepting and persisting.
    cluster.nats.kill();
    let mut acked = Vec::new();
    for n in 0..3 {
        acked.push(a.say(&room, &format!("while it was down #{n}")).await);
    }
    assert_eq!(acked, [first + 1, first + 2, first + 3]);

    // It comes back, and nothing more is sent: b still gets the tail,
    // once each, in order.
    cluster.nats.spawn().await;
    assert_eq!(catch_up(&mut b, &room, first, first + 3).await, acked);
    // However it came, node 1 also had its connections resync.
    let node = &cluster.nodes[1];
    eventually(STAGE, "node 1 to resync its connections", async || {
        (node.metric("natter_broker_resyncs_total").await >= 1).then_some(())
    })
    .await;
    cluster.stop().await;
}

/// Stores the event a node killed between its commit and its publication
/// leaves behind: `seq` in `room`, a message from `a` with this body, or
/// `member_left` of the user named by `body`.
async fn store_unpublished(
    database_url: &str,
    room: &RoomId,
    seq: Seq,
    kind: &str,
    body: Option<&str>,
) {
    use sqlx::Connection;
    let mut conn = sqlx::MySqlConnection::connect(database_url)
        .await
        .expect("the test database answers");
    let mut tx = conn.begin().await.expect("a transaction");
    let (sender, client_id, text, subject) = match kind {
        "message" => (Some("a"), Some(cid().to_string()), body, None),
        _ => (None, None, None, body),
    };
    if kind == "member_left" {
        sqlx::query("DELETE FROM members WHERE room_id = ? AND user_id = ?")
            .bind(room.as_str())
            .bind(subject)
            .execute(&mut *tx)
            .await
            .expect("the member is removed");
    }
    sqlx::query(
        "INSERT INTO events (room_id, seq, ts, kind, sender, client_id, body, subject) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(room.as_str())
    .bind(seq as i64)
    .bind(natter_tests::now_secs() * 1000)
    .bind(kind)
    .bind(sender)
    .bind(client_id)
    .bind(text)
    .bind(subject)
    .execute(&mut *tx)
    .await
    .expect("the event is stored");
    sqlx::query("UPDATE rooms SET last_seq = ? WHERE id = ?")
        .bind(seq as i64)
        .bind(room.as_str())
        .execute(&mut *tx)
        .await
        .expect("the room's seq advances");
    tx.commit().await.expect("committed");
}

/// The reason of the `resync` the client is told within the stage;
/// panics on an event of `room` before it.
async fn resync_before_any_event_of(client: &mut Client, room: &RoomId) -> String {
    tokio::time::timeout(STAGE, async {
        loop {
            match client.recv().await {
                ServerFrame::Event { event } if &event.room == room => {
                    panic!("sent {event:?} before a resync")
                }
                ServerFrame::Resync { reason } => return reason,
                _ => {}
            }
        }
    })
    .await
    .expect("told to resync")
}

/// Sends `sync` with these cursors until a frame of its answer is `done`,
/// within the stage; asks again after `synced`, or after an error (the
/// database may still be reconnecting).
async fn sync_until(
    client: &mut Client,
    cursors: &[Cursor],
    what: &str,
    mut done: impl FnMut(&ServerFrame) -> bool,
) {
    let deadline = Instant::now() + STAGE;
    loop {
        assert!(Instant::now() < deadline, "not within the stage: {what}");
        client
            .send(&ClientFrame::Sync {
                cursors: cursors.to_vec(),
            })
            .await;
        loop {
            let frame = client.recv().await;
            if done(&frame) {
                return;
            }
            match frame {
                ServerFrame::Synced {} => break,
                ServerFrame::Error { .. } => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
                _ => {}
            }
        }
    }
}

/// Two nodes on NATS, node 1 reaching the database through a link the
/// test cuts.
async fn cut_off_second_node(test: &str) -> (Cluster, Cutter) {
    let mut cluster = Cluster::start(test, 1, NO_SWEEP).await;
    let (cutter, url) = proxied::<Cutter>(&cluster.database_url).await;
    let broker = cluster.nats.url();
    cluster.add_node_on(&broker, &url).await;
    (cluster, cutter)
}

#[tokio::test]
async fn a_gap_a_node_cannot_read_is_never_stepped_over() {
    let (cluster, cutter) = cut_off_second_node("natter_gap_unread").await;
    let (mut a, mut b, room) = a_and_b_in(&cluster, "gap").await;
    let first = a.say(&room, "before").await;
    b.recv_until(|f| is_event(f, &room, first)).await;

    // An event no node published (its node died after the commit), then
    // node 1 loses the database, then a published one: node 1 sees the
    // gap and cannot read it.
    store_unpublished(
        &cluster.database_url,
        &room,
        first + 1,
        "message",
        Some("lost"),
    )
    .await;
    cutter.cut();
    let after = a.say(&room, "after the gap").await;
    assert_eq!(after, first + 2);
    // b is told to resync, and sent nothing of the room past the gap.
    let told = resync_before_any_event_of(&mut b, &room).await;
    assert!(told.contains("could not be read"), "{told}");

    // The database is back: b syncs from what it holds and gets both.
    cutter.restore();
    let cursors = vec![Cursor::new(room.clone(), first)];
    let mut seqs = Vec::new();
    sync_until(&mut b, &cursors, "b holds the seq past the gap", |frame| {
        if let ServerFrame::Page {
            room: r, events, ..
        } = frame
            && r == &room
        {
            seqs = events.iter().map(|e| e.seq).collect();
        }
        seqs.contains(&after)
    })
    .await;
    assert_eq!(seqs, [first + 1, first + 2]);
    cluster.stop().await;
}

/// A member added while their node cannot read the database: their
/// connection cannot tell them of the room, so it sends nothing of the
/// room (no event of a room the client was never given) and asks for a
/// resync; once the database is back, the sync brings the room.
#[tokio::test]
async fn a_member_added_while_their_node_cannot_read_gets_the_room_before_its_events() {
    let (cluster, cutter) = cut_off_second_node("natter_join_unread").await;
    let mut a = login(&cluster, 0, "a").await;
    let mut b = login(&cluster, 1, "b").await;
    let api = cluster.nodes[0].api(&cluster.site);
    let room = api.group("later", &[User::id("a"), User::id("c")]).await.id;
    a.say(&room, "before b").await;

    cutter.cut();
    let res = api
        .request(reqwest::Method::POST, &format!("/rooms/{room}/members"))
        .json(&serde_json::json!({"user": {"id": "b"}}))
        .send()
        .await
        .expect("add member");
    assert_eq!(res.status(), 201);
    // b is told to resync, and sent nothing of the room it was not given.
    let told = resync_before_any_event_of(&mut b, &room).await;
    assert!(told.contains("could not be read"), "{told}");

    // The database is back: b syncs and is given the room.
    cutter.restore();
    sync_until(&mut b, &[], "b is given the room", |frame| {
        announces(frame, &room)
    })
    .await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_leaving_no_node_published_still_ends_the_room_for_that_member() {
    let cluster = Cluster::start("natter_leave", 2, NO_SWEEP).await;
    let mut a = login(&cluster, 0, "a").await;
    let mut b = login(&cluster, 1, "b").await;
    let api = cluster.nodes[0].api(&cluster.site);
    let members = [User::id("a"), User::id("b"), User::id("c")];
    let room = api.group("leave", &members).await.id;
    let dialog = api.dialog(User::id("a"), User::id("b")).await.id;
    b.recv_until(|f| announces(f, &dialog)).await;
    let first = a.say(&room, "before").await;
    b.recv_until(|f| is_event(f, &room, first)).await;

    // b's leaving is stored, and published nowhere; the room goes on.
    store_unpublished(
        &cluster.database_url,
        &room,
        first + 1,
        "member_left",
        Some("b"),
    )
    .await;
    a.say(&room, "after b left").await;
    a.say(&room, "and more").await;
    let marker = a.say(&dialog, "marker").await;

    // b learns it left (from the store, filling the gap), and nothing of
    // the room after it reaches b: the dialog's marker comes next.
    match b
        .recv_until(|f| matches!(f, ServerFrame::Event { .. }))
        .await
    {
        ServerFrame::Event { event } => {
            assert_eq!((&event.room, event.seq), (&room, first + 1));
            assert!(
                matches!(event.kind, EventKind::MemberLeft { ref user } if user.as_str() == "b")
            );
        }
        other => panic!("expected b's leaving, got {other:?}"),
    }
    match b
        .recv_until(|f| matches!(f, ServerFrame::Event { .. }))
        .await
    {
        ServerFrame::Event { event } => assert_eq!((&event.room, event.seq), (&dialog, marker)),
        other => panic!("expected the dialog's marker, got {other:?}"),
    }
    cluster.stop().await;
}

/// The room's row in the database, not a node's memory, decides each
/// seq: a seq taken by another writer between two sends of a node is never
/// given again, and two nodes sending at once never collide.
#[tokio::test]
async fn every_seq_is_the_databases_whoever_writes() {
    let cluster = Cluster::start("natter_seqs", 2, NO_SWEEP).await;
    let (mut a, mut b, room) = a_and_b_in(&cluster, "seqs").await;
    assert_eq!(a.say(&room, "one").await, 1);
    assert_eq!(b.say(&room, "two").await, 2);
    // Another writer (a third process) takes seq 3 behind both nodes' backs.
    store_unpublished(&cluster.database_url, &room, 3, "message", Some("three")).await;
    assert_eq!(a.say(&room, "four").await, 4);
    assert_eq!(b.say(&room, "five").await, 5);
    // Both nodes at once, many times over: one order, no seq twice.
    let (from_a, from_b) = tokio::join!(
        async {
            let mut seqs = Vec::new();
            for n in 0..30 {
                seqs.push(a.say(&room, &format!("a{n}")).await);
            }
            seqs
        },
        async {
            let mut seqs = Vec::new();
            for n in 0..30 {
                seqs.push(b.say(&room, &format!("b{n}")).await);
            }
            seqs
        }
    );
    let mut all: Vec<Seq> = from_a.iter().chain(&from_b).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (6..=65).collect::<Vec<Seq>>(), "every seq once");
    let stored: Vec<Seq> = stored(&cluster.database_url, &room)
        .await
        .into_iter()
        .map(|(seq, _, _)| seq)
        .collect();
    assert_eq!(stored, (1..=65).collect::<Vec<Seq>>());
    cluster.stop().await;
}

#[tokio::test]
async fn an_event_a_dying_node_never_published_reaches_every_node_by_the_sweep() {
    let cluster = Cluster::start("natter_sweep", 2, Duration::from_secs(1)).await;
    let (mut a, mut b, room) = a_and_b_in(&cluster, "sweep").await;
    let first = a.say(&room, "published").await;
    b.recv_until(|f| is_event(f, &room, first)).await;

    // What a node killed between its commit and its publication leaves:
    // an event stored, announced nowhere.
    let body = Some("never published");
    store_unpublished(&cluster.database_url, &room, first + 1, "message", body).await;
    for client in [&mut a, &mut b] {
        match client.recv_until(|f| is_event(f, &room, first + 1)).await {
            ServerFrame::Event { event } => assert!(
                matches!(event.kind, EventKind::Message { ref body, .. } if body == "never published")
            ),
            other => panic!("expected the event, got {other:?}"),
        }
    }
    for node in &cluster.nodes {
        assert_eq!(node.metric("natter_sweep_fills_total").await, 1);
    }
    cluster.stop().await;
}

#[tokio::test]
async fn a_room_a_dying_node_never_announced_reaches_its_members_by_the_sweep() {
    let cluster = Cluster::start("natter_sweep_rooms", 2, Duration::from_secs(1)).await;
    let mut a = login(&cluster, 0, "a").await;
    let mut b = login(&cluster, 1, "b").await;

    // What a node killed between creating a room and announcing it leaves:
    // the room and its members stored, announced nowhere.
    let room = RoomId::parse(format!("r_{}", uuid::Uuid::now_v7().simple())).expect("a room id");
    {
        use sqlx::Connection;
        let mut conn = sqlx::MySqlConnection::connect(&cluster.database_url)
            .await
            .expect("the test database answers");
        let now = natter_tests::now_secs() * 1000;
        sqlx::query(
            "INSERT INTO rooms (id, site_id, kind, title, last_seq, created_at) \
             VALUES (?, ?, 'group', 'never announced', 0, ?)",
        )
        .bind(room.as_str())
        .bind(cluster.site.id.as_str())
        .bind(now)
        .execute(&mut conn)
        .await
        .expect("the room is stored");
        for user in ["a", "b"] {
            sqlx::query(
                "INSERT INTO members (room_id, site_id, user_id, joined_at) VALUES (?, ?, ?, ?)",
            )
            .bind(room.as_str())
            .bind(cluster.site.id.as_str())
            .bind(user)
            .bind(now)
            .execute(&mut conn)
            .await
            .expect("a member is stored");
        }
    }
    for client in [&mut a, &mut b] {
        match client.recv_until(|f| announces(f, &room)).await {
            ServerFrame::Rooms { rooms } => {
                let info = rooms.iter().find(|r| r.id == room).expect("the room");
                assert_eq!(info.title.as_deref(), Some("never announced"));
            }
            other => panic!("expected the room, got {other:?}"),
        }
    }
    // Followed from then on: the room's first message reaches both.
    let first = a.say(&room, "hello").await;
    b.recv_until(|f| is_event(f, &room, first)).await;
    for node in &cluster.nodes {
        assert_eq!(node.metric("natter_sweep_announcements_total").await, 1);
    }
    cluster.stop().await;
}

#[tokio::test]
async fn a_burst_across_three_nodes_survives_a_killed_node_and_a_broker_restart() {
    const PEOPLE: usize = 9;
    const EACH: usize = 50;
    let mut cluster = Cluster::start("natter_burst", 3, NO_SWEEP).await;
    let people: Vec<String> = (0..PEOPLE).map(|i| format!("p{i}")).collect();
    let members: Vec<User> = people.iter().map(|p| User::id(p)).collect();
    let mut rooms = Vec::new();
    for n in 0..3 {
        let api = cluster.nodes[n].api(&cluster.site);
        rooms.push(api.group(&format!("room {n}"), &members).await.id);
    }
    let crowd = Crowd::start(
        &cluster.site,
        &cluster.addrs(),
        &people,
        PEOPLE,
        &rooms,
        EACH,
    );

    // Stage 1: writing everywhere; node 1 is killed mid-burst.
    crowd.allow(15);
    crowd.acked_at_least(PEOPLE * 10, "before the kill").await;
    cluster.nodes[1].kill();
    let at_kill = crowd.acked();
    crowd.allow(30);
    crowd
        .acked_at_least(at_kill + PEOPLE * 5, "with node 1 dead")
        .await;

    // Stage 2: the broker dies; nodes keep accepting and persisting.
    cluster.nats.kill();
    let at_broker_stop = crowd.acked();
    crowd
        .acked_at_least(at_broker_stop + PEOPLE * 3, "with the broker down")
        .await;
    crowd.allow(40);
    cluster.nats.spawn().await;
    crowd
        .acked_at_least(PEOPLE * 32, "after the broker is back")
        .await;

    // Stage 3: node 1 comes back, and the people it had go back to it;
    // the rest of the burst.
    cluster.nodes[1].restart().await;
    let back: Vec<usize> = (1..PEOPLE).step_by(3).collect();
    let before_back: Vec<usize> = back
        .iter()
        .map(|&i| {
            lock(&crowd.views[i].1)
                .acked_by
                .get(&1)
                .copied()
                .unwrap_or(0)
        })
        .collect();
    for &i in &back {
        crowd.send_to(i, 1);
    }
    eventually(
        STAGE,
        "the people of node 1 synced on it again",
        async || {
            back.iter()
                .all(|&i| lock(&crowd.views[i].1).synced_on == Some(1))
                .then_some(())
        },
    )
    .await;
    crowd.allow(EACH);
    crowd.acked_at_least(crowd.total, "every message").await;
    assert!(
        at_kill < crowd.total && at_broker_stop < crowd.total,
        "the kill and the broker restart came mid-burst"
    );

    check_everything(&cluster.database_url, &rooms, &crowd).await;
    for (&i, before) in back.iter().zip(before_back) {
        let (name, view) = &crowd.views[i];
        let view = lock(view);
        assert!(
            view.connects >= 3,
            "{name}, first on node 1, reconnected elsewhere, then came back"
        );
        assert!(
            view.acked_by.get(&1).copied().unwrap_or(0) > before,
            "{name} wrote through the restarted node 1: {:?}",
            view.acked_by
        );
    }
    crowd.stop().await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_node_cut_off_from_the_broker_alone_catches_up_once_it_is_back() {
    const EACH: usize = 20;
    let mut cluster = Cluster::start("natter_link", 1, NO_SWEEP).await;
    // Node 1 reaches the broker through a proxy that cuts its link only.
    let cutter = Cutter::start(SocketAddr::from(([127, 0, 0, 1], cluster.nats.port))).await;
    cluster.add_node(&format!("nats://{}", cutter.addr)).await;
    let people = ["a".to_string(), "b".to_string()];
    let room = cluster.nodes[0]
        .api(&cluster.site)
        .group("link", &[User::id("a"), User::id("b")])
        .await
        .id;
    let rooms = [room];
    let crowd = Crowd::start(&cluster.site, &cluster.addrs(), &people, 2, &rooms, EACH);
    crowd.allow(EACH / 2);
    crowd.acked_at_least(EACH / 2, "before the cut").await;

    cutter.cut();
    let http = reqwest::Client::new();
    let health = format!("http://{}/healthz", cluster.nodes[1].addr);
    eventually(STAGE, "node 1 to report the broker down", async || {
        let res = http.get(&health).send().await.ok()?;
        let body: serde_json::Value = res.json().await.ok()?;
        (body["broker"] == "down" && body["status"] == "ok").then_some(())
    })
    .await;
    // Both nodes keep taking sends; then nothing more is sent.
    crowd.allow(EACH);
    crowd
        .acked_at_least(crowd.total, "every message, cut off")
        .await;

    cutter.restore();
    check_everything(&cluster.database_url, &rooms, &crowd).await;
    crowd.stop().await;
    cluster.stop().await;
}

#[tokio::test]
async fn a_node_starts_serves_and_stops_while_its_broker_is_unreachable() {
    let nowhere = format!("nats://127.0.0.1:{}", free_port());
    let app = natter_tests::spawn_app_with(Db::Sqlite, |config| {
        config.broker = Some(nowhere);
    })
    .await;
    let res = app
        .http
        .get(app.url("/healthz"))
        .send()
        .await
        .expect("health answers");
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("health JSON");
    assert_eq!(body["broker"], "down");
    let room = app.dialog("a", "b").await.id;
    let (mut a, _) = app.login("a").await;
    let (mut b, _) = app.login("b").await;
    let seq = a.say(&room, "alone").await;
    b.recv_until(|f| is_event(f, &room, seq)).await;
    assert_no_panics();
    app.stop().await;
}

#[tokio::test]
async fn a_broker_setting_that_cannot_work_stops_the_start() {
    for (url, prefix) in [
        ("nats://127.0.0.1:4222", "two words"),
        ("nats://127.0.0.1:4222", "natter.>"),
        ("not a url at all", "natter"),
    ] {
        let (database, scratch) = fresh_database(Db::Sqlite).await;
        let mut config = natter_server::config::Config::for_database(database);
        config.broker = Some(url.to_string());
        config.broker_subject_prefix = prefix.to_string();
        let built = natter_server::App::build(config).await;
        assert!(
            matches!(built, Err(natter_server::StartError::Broker { .. })),
            "{url} {prefix} is refused"
        );
        scratch.remove().await;
    }
}

#[tokio::test]
async fn a_database_cut_mid_burst_loses_nothing_acked_and_recovers() {
    const PEOPLE: usize = 4;
    const EACH: usize = 40;
    let (app, cutter, direct) = app_behind::<Cutter>().await;
    let people: Vec<String> = (0..PEOPLE).map(|i| format!("w{i}")).collect();
    let mut members: Vec<&str> = people.iter().map(String::as_str).collect();
    members.push("reader");
    let room = app.group("busy", &members).await.id;
    let mut everyone = people.clone();
    everyone.push("reader".into());
    let rooms = [room];
    let crowd = Crowd::start(&app.site, &[app.addr], &everyone, PEOPLE, &rooms, EACH);

    crowd.allow(10);
    crowd.acked_at_least(PEOPLE * 6, "before the cut").await;
    cutter.cut();
    crowd.allow(25);
    // Health says 503 while the database is away, and says it quickly.
    let http = &app.http;
    let health = app.url("/healthz");
    eventually(STAGE, "/healthz to answer 503", async || {
        let asked = Instant::now();
        let res = http.get(&health).send().await.ok()?;
        let status = res.status();
        if status == 503 {
            assert!(asked.elapsed() < Duration::from_secs(5), "a quick 503");
            return Some(());
        }
        None
    })
    .await;
    // Every writer has sends waiting meanwhile, and the server gives up
    // on some of them with an `internal` error (the person retries those).
    let views = &crowd.views[..PEOPLE];
    eventually(
        STAGE,
        "sends waiting, and one refused, during the cut",
        async || {
            let waiting = views.iter().all(|(_, view)| lock(view).outstanding > 0);
            let refused = views.iter().any(|(_, view)| lock(view).send_errors > 0);
            (waiting && refused).then_some(())
        },
    )
    .await;
    cutter.restore();
    crowd.allow(EACH);
    crowd.acked_at_least(crowd.total, "every message").await;
    eventually(STAGE, "/healthz to answer 200 again", async || {
        let res = http.get(&health).send().await.ok()?;
        (res.status() == 200).then_some(())
    })
    .await;
    check_everything(&direct, &rooms, &crowd).await;
    crowd.stop().await;
    assert_no_panics();
    app.stop().await;
}

#[tokio::test]
async fn health_says_503_within_two_seconds_when_the_database_hangs() {
    let (app, cutter, _) = app_behind::<Cutter>().await;
    let health = app.url("/healthz");
    let res = app.http.get(&health).send().await.expect("health answers");
    assert_eq!(res.status(), 200);

    cutter.hang();
    // The pooled connections were cut: a check that picks one fails at
    // once. Once they are gone, a connection can only be opened into
    // silence and the check gives up after its own 2 s, never the pool's
    // longer timeout. Every answer meanwhile is 503.
    let mut waited = None;
    for _ in 0..=16 {
        let asked = Instant::now();
        let res = app.http.get(&health).send().await.expect("health answers");
        let took = asked.elapsed();
        assert_eq!(res.status(), 503);
        assert!(took < Duration::from_secs(5), "the check hung: {took:?}");
        if took >= Duration::from_millis(1500) {
            waited = Some(took);
            break;
        }
    }
    assert!(
        waited.is_some(),
        "no check waited for its 2 s on a hanging database"
    );

    cutter.restore();
    let http = &app.http;
    eventually(STAGE, "/healthz to answer 200 again", async || {
        let res = http.get(&health).send().await.ok()?;
        (res.status() == 200).then_some(())
    })
    .await;
    assert_no_panics();
    app.stop().await;
}
