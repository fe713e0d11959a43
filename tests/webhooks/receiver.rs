//! The test side of webhooks: a site's endpoint (`receiver.mjs`, which
//! checks every signature with the Standard Webhooks reference library),
//! the API calls that manage endpoints, and what the deliveries must show.

use natter_shared::webhooks::{Webhook, WebhookAttempts, WebhookType};
use natter_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

/// One request the endpoint took and verified.
#[derive(Debug, Clone)]
pub(super) struct Delivery {
    pub(super) id: String,
    pub(super) status: u16,
    pub(super) kind: String,
    pub(super) room: String,
    /// 0 for `room.created`.
    pub(super) seq: u64,
    pub(super) payload: Value,
}

impl Delivery {
    pub(super) fn accepted(&self) -> bool {
        self.status == 204
    }
}

/// The site's endpoint: a Node.js process checking signatures with the
/// reference verifier.
pub(super) struct Receiver {
    pub(super) port: u16,
    pub(super) child: Child,
    pub(super) stdin: ChildStdin,
    pub(super) lines: mpsc::UnboundedReceiver<Value>,
    pub(super) got: Vec<Delivery>,
}

impl Receiver {
    /// Starts listening on `port` (0: any).
    pub(super) async fn start(port: u16) -> Receiver {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/webhooks/receiver.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs the test receiver (npm ci installs its verifier)");
        let stdin = child.stdin.take().expect("the receiver's stdin");
        let stdout = child.stdout.take().expect("the receiver's stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("the receiver wrote {line:?}: {e}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let mut receiver = Receiver {
            port,
            child,
            stdin,
            lines,
            got: Vec::new(),
        };
        let first = receiver.line().await;
        receiver.port = first["listening"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("the receiver said {first}"));
        receiver
    }

    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    pub(super) async fn line(&mut self) -> Value {
        tokio::time::timeout(WAIT, self.lines.recv())
            .await
            .expect("the receiver said something in time")
            .expect("the receiver runs")
    }

    /// Tells the receiver something and waits until it took it.
    pub(super) async fn command(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("the receiver reads commands");
        loop {
            let value = self.line().await;
            if value.get("command").is_some() {
                return;
            }
            self.take(value);
        }
    }

    pub(super) fn take(&mut self, value: Value) {
        assert_eq!(
            value["verified"],
            json!(true),
            "the reference verifier refused a webhook: {value}"
        );
        let payload = value["payload"].clone();
        let data = &payload["data"];
        let (room, seq) = match data["event"].as_object() {
            Some(event) => (
                event["room"].as_str().unwrap_or_default().to_string(),
                event["seq"].as_u64().unwrap_or_default(),
            ),
            None => (
                data["room"]["id"].as_str().unwrap_or_default().to_string(),
                0,
            ),
        };
        self.got.push(Delivery {
            id: value["id"].as_str().unwrap_or_default().to_string(),
            status: value["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(0),
            kind: payload["type"].as_str().unwrap_or_default().to_string(),
            room,
            seq,
            payload,
        });
    }

    /// Takes deliveries until `done` holds for the accepted ones.
    pub(super) async fn until(
        &mut self,
        within: Duration,
        what: &str,
        done: impl Fn(&[Delivery]) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + within;
        while !done(&self.accepted()) {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Ok(Some(value)) = tokio::time::timeout(left, self.lines.recv()).await else {
                panic!(
                    "waited {within:?} for {what}; accepted: {:#?}",
                    self.accepted()
                        .iter()
                        .map(|d| (&d.kind, &d.room, d.seq))
                        .collect::<Vec<_>>()
                );
            };
            self.take(value);
        }
    }

    pub(super) fn accepted(&self) -> Vec<Delivery> {
        self.got.iter().filter(|d| d.accepted()).cloned().collect()
    }

    /// Stops listening: the endpoint is down.
    pub(super) async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Adds an endpoint through the API.
pub(super) async fn add_hook(api: &ApiClient, url: &str, events: &[WebhookType]) -> Webhook {
    let res = api
        .request(Method::POST, "/webhooks")
        .json(&json!({ "url": url, "events": events }))
        .send()
        .await
        .expect("the webhook request is answered");
    assert_eq!(res.status(), StatusCode::CREATED, "adding a webhook");
    res.json().await.expect("a webhook")
}

pub(super) async fn get_hook(api: &ApiClient, id: &str) -> Webhook {
    let res = api
        .request(Method::GET, &format!("/webhooks/{id}"))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("a webhook")
}

pub(super) async fn attempts(api: &ApiClient, id: &str) -> WebhookAttempts {
    let res = api
        .request(Method::GET, &format!("/webhooks/{id}/attempts?limit=1000"))
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), StatusCode::OK);
    res.json().await.expect("attempts")
}

/// Each room's accepted deliveries of `kind`, in arrival order, as seqs.
pub(super) fn seqs_by_room(got: &[Delivery], kind: &str) -> BTreeMap<String, Vec<u64>> {
    let mut rooms: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for d in got.iter().filter(|d| d.kind == kind) {
        rooms.entry(d.room.clone()).or_default().push(d.seq);
    }
    rooms
}

/// Every delivery of one event came with one `webhook-id`, and no two
/// events share one.
pub(super) fn assert_one_id_per_event(got: &[Delivery]) {
    let mut ids: HashMap<(String, String, u64), String> = HashMap::new();
    let mut events: HashMap<String, (String, String, u64)> = HashMap::new();
    for d in got {
        let event = (d.kind.clone(), d.room.clone(), d.seq);
        let id = ids.entry(event.clone()).or_insert_with(|| d.id.clone());
        assert_eq!(
            *id, d.id,
            "{event:?} was sent again under another webhook-id"
        );
        let owner = events.entry(d.id.clone()).or_insert_with(|| event.clone());
        assert_eq!(*owner, event, "one webhook-id for two events");
    }
}

/// In order within each room: seqs never go back (a repeat may follow
/// its own event, never a later one).
pub(super) fn assert_in_seq_order(got: &[Delivery]) {
    let mut last: HashMap<&str, u64> = HashMap::new();
    for d in got {
        let before = last.insert(d.room.as_str(), d.seq).unwrap_or(0);
        assert!(
            d.seq >= before,
            "room {} went from seq {before} back to {} ({})",
            d.room,
            d.seq,
            d.kind
        );
    }
}
