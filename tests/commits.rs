//! A commit that took but whose answer never came back: the link to
//! MariaDB cut right after the `COMMIT` went through. The server cannot
//! know whether its write stands, retries it, and must neither store it
//! twice nor refuse it as a repeat of itself.

use crate::assert_no_panics;
use crate::nodes::{Proxy, app_behind};
use natter_shared::{Seq, ServerFrame};
use reqwest::Method;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A TCP proxy to the database. Armed with a needle, it watches for a
/// connection that sends it; that connection's next `COMMIT` goes through
/// to the database, and then the connection is cut without the answer.
struct CommitCutter {
    addr: SocketAddr,
    needle: Arc<Mutex<Option<Vec<u8>>>>,
    cuts: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

/// How long the database is given to finish a commit before the cut.
const COMMIT_TIME: Duration = Duration::from_millis(300);

impl Proxy for CommitCutter {
    async fn start(upstream: SocketAddr) -> CommitCutter {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let needle: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let cuts = Arc::new(AtomicUsize::new(0));
        let (armed, counted) = (needle.clone(), cuts.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(upstream).await else {
                    continue;
                };
                tokio::spawn(link(client, server, armed.clone(), counted.clone()));
            }
        });
        CommitCutter {
            addr,
            needle,
            cuts,
            task,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl CommitCutter {
    /// The next connection to send `needle` has its next commit cut.
    fn arm(&self, needle: &str) {
        *self.needle.lock().unwrap_or_else(|e| e.into_inner()) = Some(needle.as_bytes().to_vec());
    }

    fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

impl Drop for CommitCutter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One connection through the proxy.
async fn link(
    client: TcpStream,
    server: TcpStream,
    needle: Arc<Mutex<Option<Vec<u8>>>>,
    cuts: Arc<AtomicUsize>,
) {
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let muted = Arc::new(AtomicBool::new(false));
    let mute = muted.clone();
    let answers = tokio::spawn(async move {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let Ok(n) = from_server.read(&mut buf).await else {
                return;
            };
            if n == 0 {
                return;
            }
            // Once muted, what the database answers is dropped, and the
            // connection held until it is cut.
            if !mute.load(Ordering::SeqCst) && to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut marked = false;
    let mut buf = vec![0; 64 * 1024];
    while let Ok(n) = from_client.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        if !marked {
            let mut armed = needle.lock().unwrap_or_else(|e| e.into_inner());
            if armed
                .as_deref()
                .is_some_and(|needle| contains(chunk, needle))
            {
                *armed = None;
                marked = true;
            }
        } else if contains(chunk, b"COMMIT") {
            cuts.fetch_add(1, Ordering::SeqCst);
            muted.store(true, Ordering::SeqCst);
            if to_server.write_all(chunk).await.is_ok() {
                tokio::time::sleep(COMMIT_TIME).await;
            }
            break;
        }
        if to_server.write_all(chunk).await.is_err() {
            break;
        }
    }
    answers.abort();
}

/// A call: what it is, its method, path and body, the status that says it
/// was done, and a needle only its write sends.
type Step<'a> = (&'a str, Method, String, Option<Value>, u16, &'a str);

/// Each change the HTTP API makes, its commit cut unanswered: every one is
/// answered as done, stored once, and reaches a member once, in order.
#[tokio::test]
async fn a_commit_whose_answer_is_lost_is_neither_doubled_nor_refused() {
    let (app, cutter, _) = app_behind::<CommitCutter>().await;
    let room = app.group("busy", &["alice", "bob"]).await.id;
    let (mut bob, _) = app.login("bob").await;
    let messages = format!("/rooms/{room}/messages");
    let members = format!("/rooms/{room}/members");
    let steps: [Step; 4] = [
        (
            "a member's post without a client id",
            Method::POST,
            messages.clone(),
            Some(json!({"from": "alice", "body": "alpha-cut"})),
            201,
            "alpha-cut",
        ),
        (
            "a system message",
            Method::POST,
            messages.clone(),
            Some(json!({"body": "system-cut"})),
            201,
            "system-cut",
        ),
        (
            "a member added",
            Method::POST,
            members.clone(),
            Some(json!({"user": {"id": "dora"}})),
            201,
            "member_joined",
        ),
        (
            "a member removed",
            Method::DELETE,
            format!("{members}/dora"),
            None,
            200,
            "member_left",
        ),
    ];
    for (n, (what, method, path, body, status, needle)) in steps.into_iter().enumerate() {
        cutter.arm(needle);
        let (got, answer) = app.call(method, &path, body).await;
        assert_eq!(cutter.cuts(), n + 1, "{what}: its commit was cut");
        assert_eq!(got, status, "{what}: answered as done: {answer}");
        let seq = n as Seq + 1;
        assert_eq!(answer["seq"].as_u64(), Some(seq), "{what}: {answer}");
        match bob
            .recv_until(|f| matches!(f, ServerFrame::Event { .. }))
            .await
        {
            ServerFrame::Event { event } => assert_eq!(
                (&event.room, event.seq),
                (&room, seq),
                "{what}: reaches Bob once, in order"
            ),
            other => panic!("expected an event, got {other:?}"),
        }
    }
    let (status, page) = app.call(Method::GET, &messages, None).await;
    assert_eq!(status, 200);
    let kinds: Vec<String> = page["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["seq"],
                e["body"]
                    .as_str()
                    .unwrap_or(e["kind"].as_str().unwrap_or(""))
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "1 alpha-cut",
            "2 system-cut",
            "3 member_joined",
            "4 member_left"
        ],
        "each change stored once"
    );
    assert_no_panics();
    app.stop().await;
}
