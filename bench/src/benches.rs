//! The benchmarks, a module each, named for what it measures; each holds
//! both its measurement and its orchestration (the servers it runs on, the
//! runs, its rows of the report). Each sets its connections up once per
//! server, then measures a run: server CPU from /proc/PID/stat across the
//! run, latencies from send times carried in the message bodies.
//!
//! Here is what several share: set-up through natter's HTTP API, receiving
//! connections, bulk posting, percentiles.

pub mod catch_up;
pub mod chat_latency;
pub mod durable_writes;
pub mod fanout;
pub mod files;
pub mod flood;
pub mod growth;
pub mod idle_connections;
pub mod nodes;
pub mod read_state;
pub mod reconnect_storm;
pub mod relay;
pub mod widget_size;
pub mod write_floor;

use crate::client::{self, Follower, Ws, frame_type, now_ns};
use crate::log;
use crate::plan::RUNS;
use crate::sys::{self, Db, Endpoint, Kind, Paths, Server};
use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, stream};
use std::time::{Duration, Instant};

/// How many connection set-ups run at once.
pub(crate) const SETUP_PARALLEL: usize = 64;

/// The `p` quantile of `values` (sorted in place).
pub fn percentile(values: &mut [u64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_unstable();
    let idx = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
    values[idx] as f64
}

fn ms(ns: f64) -> f64 {
    ns / 1e6
}

fn cpu_us(server: &Server, before: Duration) -> f64 {
    (server.cpu() - before).as_secs_f64() * 1e6
}

/// Runs `f(i)` for `0..n`, at most `limit` at once; results in order.
async fn each<T, F, Fut>(n: usize, limit: usize, f: F) -> Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    stream::iter(0..n)
        .map(f)
        .buffered(limit)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

// ---------------------------------------------------------------- HTTP API

async fn api(
    ep: &Endpoint,
    http: &reqwest::Client,
    path: &str,
    body: serde_json::Value,
) -> Result<(String, u64)> {
    let res = http
        .post(format!("http://{}/api/v1{path}", ep.addr))
        .bearer_auth(&ep.api_key)
        .json(&body)
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("POST {path}: {}", res.status());
    }
    let room: serde_json::Value = res.json().await?;
    let id = room["id"].as_str().context("room id")?.to_string();
    Ok((id, room["last_seq"].as_u64().unwrap_or(0)))
}

/// Dialogs between `a{i}` and `b{i}` users; ids and last seqs. For the peers
/// a room is just a name.
async fn dialogs(ep: &Endpoint, prefix: &str, n: usize) -> Result<Vec<(String, u64)>> {
    made(ep, prefix, n, "/dialogs", |name| {
        serde_json::json!({"users": [{"id": format!("{name}a")}, {"id": format!("{name}b")}]})
    })
    .await
}

/// `n` rooms named `{prefix}{i}`, each made through natter's API by
/// posting `body(name)` to `path` (other servers: the names only).
async fn made(
    ep: &Endpoint,
    prefix: &str,
    n: usize,
    path: &'static str,
    body: impl Fn(&str) -> serde_json::Value,
) -> Result<Vec<(String, u64)>> {
    if ep.kind != Kind::Natter {
        return Ok((0..n).map(|i| (format!("{prefix}{i}"), 0)).collect());
    }
    let http = reqwest::Client::new();
    each(n, 16, |i| {
        let (ep, http) = (ep.clone(), http.clone());
        let request = body(&format!("{prefix}{i}"));
        async move { api(&ep, &http, path, request).await }
    })
    .await
}

/// A group room with these members.
async fn group(ep: &Endpoint, name: &str, members: &[String]) -> Result<(String, u64)> {
    if ep.kind != Kind::Natter {
        return Ok((name.to_string(), 0));
    }
    let members: Vec<_> = members
        .iter()
        .map(|m| serde_json::json!({"id": m}))
        .collect();
    api(
        ep,
        &reqwest::Client::new(),
        "/rooms",
        serde_json::json!({"title": name, "members": members}),
    )
    .await
}

/// A receiving connection: natter/node log in and sync from `seq`; nchan
/// subscribes to the channel.
/// `n` group rooms of `{prefix}{i}a`, `{prefix}{i}b` and `poster`, made
/// through natter's API (other servers: the names only).
async fn trios(ep: &Endpoint, prefix: &str, n: usize) -> Result<Vec<(String, u64)>> {
    made(ep, prefix, n, "/rooms", |name| {
        serde_json::json!({"title": name, "members": [{"id": format!("{name}a")}, {"id": format!("{name}b")}, {"id": "poster"}]})
    })
    .await
}

async fn receiver(ep: &Endpoint, user: &str, room: &str, seq: u64) -> Result<Follower> {
    if ep.kind == Kind::Nchan {
        let ws = client::subscribe_nchan(ep, room).await?;
        return Ok(Follower::new(ws, ep.kind, room, 0));
    }
    let mut ws = client::login(ep, user).await?;
    let seqs = client::sync(&mut ws, &[(room, seq)]).await?;
    let cursor = seqs.into_iter().max().unwrap_or(seq).max(seq);
    Ok(Follower::new(ws, ep.kind, room, cursor))
}

/// Latencies of stamped deliveries, now.
fn latencies(stamps: &[(u64, u64)]) -> impl Iterator<Item = u64> + '_ {
    let now = now_ns();
    stamps.iter().map(move |(ts, _)| now.saturating_sub(*ts))
}

/// Sends one message to each of `rooms` (a room may come again) over
/// `ws`, 64 in flight; returns when all are acked.
async fn send_acked(ws: &mut Ws, rooms: &[String]) -> Result<()> {
    let mut next = 0;
    let mut inflight = 0usize;
    while next < rooms.len() || inflight > 0 {
        while inflight < 64 && next < rooms.len() {
            client::feed_text(ws, client::send_frame(&rooms[next], 0)).await?;
            next += 1;
            inflight += 1;
        }
        futures_util::SinkExt::flush(ws).await?;
        let text = client::recv(ws, "ack").await?;
        match frame_type(&text) {
            "ack" => inflight -= 1,
            "error" => bail!("a bulk send was refused: {text}"),
            _ => {}
        }
    }
    Ok(())
}

/// Sends `per_room` messages to each room over `conns` connections of
/// `user`, 64 in flight per connection; returns when all are acked.
async fn post_bulk(
    ep: &Endpoint,
    user: &str,
    rooms: &[String],
    per_room: usize,
    conns: usize,
) -> Result<()> {
    let work: Vec<String> = (0..per_room).flat_map(|_| rooms.iter().cloned()).collect();
    let chunk = work.len().div_ceil(conns.max(1)).max(1);
    let mut tasks = Vec::new();
    for part in work.chunks(chunk) {
        let part = part.to_vec();
        let mut ws = client::login(ep, user).await?;
        tasks.push(tokio::spawn(
            async move { send_acked(&mut ws, &part).await },
        ));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Who sends: a natter/node connection, or an HTTP client to nchan.
// A few hundred of these at most: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Sender {
    Ws(Ws),
    Http(reqwest::Client),
}

/// Starts one server of this kind, natter on SQLite.
async fn start(paths: &Paths, kind: Kind) -> Result<Server> {
    match kind {
        Kind::Natter => sys::start_natter(paths, Db::Sqlite).await,
        Kind::Node => sys::start_node(paths),
        Kind::Nchan => sys::start_nchan(paths),
    }
}

/// Logs how long a benchmark's set-up and runs took on one server.
fn log_phases(what: &str, t0: Instant, t1: Instant) {
    log(format!(
        "{what}: set-up {:.1} s, {RUNS} runs {:.1} s",
        (t1 - t0).as_secs_f64(),
        t1.elapsed().as_secs_f64()
    ));
}
