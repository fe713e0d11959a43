//! The benchmarks. Each one sets its connections up once per server, then
//! measures a run: server CPU from /proc/PID/stat across the run, latencies
//! from send times carried in the message bodies.

use crate::client::{self, Delivered, Follower, Next, Ws, frame_type, now_ns};
use crate::sys::{Db, Endpoint, Kind, Paths, Server};
use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, stream};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;

/// How many connection set-ups run at once.
const SETUP_PARALLEL: usize = 64;

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
    if ep.kind != Kind::Natter {
        return Ok((0..n).map(|i| (format!("{prefix}{i}"), 0)).collect());
    }
    let http = reqwest::Client::new();
    each(n, 16, |i| {
        let (ep, http) = (ep.clone(), http.clone());
        let prefix = prefix.to_string();
        async move {
            let users = serde_json::json!({"users": [{"id": format!("{prefix}{i}a")}, {"id": format!("{prefix}{i}b")}]});
            api(&ep, &http, "/dialogs", users).await
        }
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

/// How long receivers wait for the last deliveries after the last send
/// was due, before counting the rest as lost.
pub const GRACE_B2: f64 = 10.0;
pub const GRACE_B4: f64 = 15.0;

/// Latencies of stamped deliveries, now.
fn latencies(stamps: &[(u64, u64)]) -> impl Iterator<Item = u64> + '_ {
    let now = now_ns();
    stamps.iter().map(move |(ts, _)| now.saturating_sub(*ts))
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
        tasks.push(tokio::spawn(async move {
            let mut next = 0;
            let mut inflight = 0usize;
            while next < part.len() || inflight > 0 {
                while inflight < 64 && next < part.len() {
                    client::feed_text(&mut ws, client::send_frame(&part[next], 0)).await?;
                    next += 1;
                    inflight += 1;
                }
                futures_util::SinkExt::flush(&mut ws).await?;
                let text = client::recv(&mut ws, "ack").await?;
                match frame_type(&text) {
                    "ack" => inflight -= 1,
                    "error" => bail!("a bulk send was refused: {text}"),
                    _ => {}
                }
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

// ---------------------------------------------------------------- B1

pub struct Idle {
    pub rss_kib_per_conn: f64,
    pub cpu_us_per_conn: f64,
}

/// B1: opens `n` authenticated connections (nchan: subscribers of one
/// channel) and leaves them idle.
pub async fn idle(server: &Server, n: usize) -> Result<Idle> {
    let ep = server.ep.clone();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rss0, cpu0) = (server.rss_kib(), server.cpu());
    let conns = each(n, SETUP_PARALLEL, |i| {
        let ep = ep.clone();
        async move {
            match ep.kind {
                Kind::Nchan => client::subscribe_nchan(&ep, "idle").await,
                _ => client::login(&ep, &format!("idle{i}")).await,
            }
        }
    })
    .await?;
    let cpu = cpu_us(server, cpu0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let rss = server.rss_kib().saturating_sub(rss0);
    drop(conns);
    tokio::time::sleep(Duration::from_millis(200)).await;
    Ok(Idle {
        rss_kib_per_conn: rss as f64 / n as f64,
        cpu_us_per_conn: cpu / n as f64,
    })
}

// ---------------------------------------------------------------- B2 / B5

/// Who sends: a natter/node connection, or an HTTP client to nchan.
// A few hundred of these at most: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
enum Sender {
    Ws(Ws),
    Http(reqwest::Client),
}

/// B2's connections: pairs of an unsynced sender and a synced receiver.
pub struct Pairs {
    ep: Endpoint,
    pairs: Vec<(String, Sender, Follower)>,
}

pub async fn pairs(ep: &Endpoint, n: usize) -> Result<Pairs> {
    let rooms = dialogs(ep, "p", n).await?;
    let pairs = each(n, SETUP_PARALLEL, |i| {
        let (ep, (room, seq)) = (ep.clone(), rooms[i].clone());
        async move {
            let rx = receiver(&ep, &format!("p{i}b"), &room, seq).await?;
            let tx = match ep.kind {
                Kind::Nchan => Sender::Http(reqwest::Client::new()),
                _ => Sender::Ws(client::login(&ep, &format!("p{i}a")).await?),
            };
            Ok((room, tx, rx))
        }
    })
    .await?;
    Ok(Pairs {
        ep: ep.clone(),
        pairs,
    })
}

pub struct Relay {
    pub cpu_us_per_msg: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub lost: u64,
    pub sent: u64,
}

/// B2: `rate` messages per second in all, spread over the pairs, for
/// `secs`; latency from send to the receiver's frame.
pub async fn relay(server: &Server, fleet: &mut Pairs, rate: f64, secs: f64) -> Result<Relay> {
    let n = fleet.pairs.len();
    let per_pair = ((rate * secs) / n as f64).round().max(1.0) as usize;
    let period = Duration::from_secs_f64(n as f64 / rate);
    let deadline = Instant::now() + Duration::from_secs_f64(secs + GRACE_B2);
    let cpu0 = server.cpu();
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let mut tasks = Vec::new();
    for (i, (room, tx, mut rx)) in fleet.pairs.drain(..).enumerate() {
        let addr = fleet.ep.addr;
        let offset = period.mul_f64(i as f64 / n as f64);
        tasks.push(tokio::spawn(async move {
            let receive = async {
                let mut lat = Vec::with_capacity(per_pair);
                while lat.len() < per_pair {
                    match rx.next(deadline).await {
                        Delivered::Stamps(s) => lat.extend(latencies(&s)),
                        Delivered::Ended => break,
                        Delivered::TimedOut => {
                            client::timed_out("deliveries");
                            break;
                        }
                    }
                }
                lat
            };
            let send = async {
                let mut tick = tokio::time::interval_at(start + offset, period);
                tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
                let tx = tx;
                match tx {
                    Sender::Ws(mut ws) => {
                        // An `error` answers a send too (counted, with its code).
                        let (mut sent, mut answered) = (0, 0);
                        while answered < per_pair {
                            tokio::select! {
                                _ = tick.tick(), if sent < per_pair => {
                                    client::send_text(&mut ws, client::send_frame(&room, i as u64)).await?;
                                    sent += 1;
                                }
                                got = client::next_text(&mut ws, deadline) => match got {
                                    Next::Text(t) if matches!(frame_type(&t), "ack" | "error") => answered += 1,
                                    Next::Text(_) => {}
                                    Next::Ended(how) => bail!("sender connection ended: {how}"),
                                    Next::TimedOut => {
                                        client::timed_out("acks");
                                        break;
                                    }
                                }
                            }
                        }
                        Ok(Sender::Ws(ws))
                    }
                    Sender::Http(http) => {
                        let url = format!("http://{addr}/pub/{room}");
                        for _ in 0..per_pair {
                            tick.tick().await;
                            let res = http.post(&url).body(client::body(i as u64)).send().await?;
                            res.bytes().await?;
                        }
                        Ok(Sender::Http(http))
                    }
                }
            };
            let (lat, tx) = tokio::join!(receive, send);
            Ok::<_, anyhow::Error>((room, tx?, rx, lat))
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        let (room, tx, rx, l) = t.await??;
        lat.extend(l);
        fleet.pairs.push((room, tx, rx));
    }
    let cpu = cpu_us(server, cpu0);
    let sent = (per_pair * n) as u64;
    Ok(Relay {
        cpu_us_per_msg: cpu / sent as f64,
        lost: sent.saturating_sub(lat.len() as u64),
        sent,
        p50_ms: ms(percentile(&mut lat, 0.50)),
        p99_ms: ms(percentile(&mut lat, 0.99)),
    })
}

/// B5's connections: both sides of each dialog synced.
pub struct Chatters {
    conns: Vec<Follower>,
}

pub async fn chatters(ep: &Endpoint, n: usize) -> Result<Chatters> {
    let rooms = dialogs(ep, "c", n / 2).await?;
    let conns = each(n / 2 * 2, SETUP_PARALLEL, |i| {
        let (ep, (room, seq)) = (ep.clone(), rooms[i / 2].clone());
        async move {
            let side = if i % 2 == 0 { "a" } else { "b" };
            receiver(&ep, &format!("c{}{side}", i / 2), &room, seq).await
        }
    })
    .await?;
    Ok(Chatters { conns })
}

/// B5: every connection sends one message a second to its dialog for
/// `secs`; latency from send to the partner's frame.
pub async fn chat(server: &Server, fleet: &mut Chatters, secs: u64) -> Result<Relay> {
    let n = fleet.conns.len();
    let start = tokio::time::Instant::now() + Duration::from_millis(50);
    let deadline = Instant::now() + Duration::from_secs(secs + 15);
    let cpu0 = server.cpu();
    let mut tasks = Vec::new();
    for (i, mut f) in fleet.conns.drain(..).enumerate() {
        let offset = Duration::from_secs_f64(i as f64 / n as f64);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(start + offset, Duration::from_secs(1));
            tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let (mut sent, mut lat) = (0u64, Vec::new());
            while (sent < secs || (lat.len() as u64) < secs) && Instant::now() < deadline {
                tokio::select! {
                    _ = tick.tick(), if sent < secs => {
                        let frame = client::send_frame(f.room(), i as u64);
                        if !f.send(frame).await {
                            break;
                        }
                        sent += 1;
                    }
                    got = f.next(deadline) => match got {
                        // Its own messages come back too; the partner's count.
                        Delivered::Stamps(s) => {
                            let now = now_ns();
                            lat.extend(
                                s.iter()
                                    .filter(|(_, tag)| *tag != i as u64)
                                    .map(|(ts, _)| now.saturating_sub(*ts)),
                            );
                        }
                        Delivered::Ended => break,
                        Delivered::TimedOut => {
                            client::timed_out("deliveries");
                            break;
                        }
                    }
                }
            }
            Ok::<_, anyhow::Error>((f, lat))
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        let (f, l) = t.await??;
        lat.extend(l);
        fleet.conns.push(f);
    }
    let cpu = cpu_us(server, cpu0);
    let sent = n as u64 * secs;
    Ok(Relay {
        cpu_us_per_msg: cpu / sent as f64,
        lost: sent.saturating_sub(lat.len() as u64),
        sent,
        p50_ms: ms(percentile(&mut lat, 0.50)),
        p99_ms: ms(percentile(&mut lat, 0.99)),
    })
}

// ---------------------------------------------------------------- B3

pub struct Durable {
    pub msgs_per_s: f64,
    pub p99_ms: f64,
    pub cpu_us_per_msg: f64,
}

/// B3's connections: unsynced senders, each in its own dialog.
pub async fn writers(ep: &Endpoint, n: usize) -> Result<Vec<(String, Ws)>> {
    let rooms = dialogs(ep, "w", n).await?;
    each(n, SETUP_PARALLEL, |i| {
        let (ep, room) = (ep.clone(), rooms[i].0.clone());
        async move { Ok((room, client::login(&ep, &format!("w{i}a")).await?)) }
    })
    .await
}

/// B3: each writer keeps `window` sends in flight for `secs`; throughput
/// and latency of the acks (sent after commit).
pub async fn durable(
    server: &Server,
    fleet: &mut Vec<(String, Ws)>,
    window: usize,
    secs: f64,
) -> Result<Durable> {
    let cpu0 = server.cpu();
    let t0 = Instant::now();
    let stop = t0 + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for (room, mut ws) in fleet.drain(..) {
        tasks.push(tokio::spawn(async move {
            let mut pending = VecDeque::with_capacity(window);
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            for _ in 0..window {
                client::feed_text(&mut ws, client::send_frame(&room, 0)).await?;
                pending.push_back(now_ns());
            }
            futures_util::SinkExt::flush(&mut ws).await?;
            while !pending.is_empty() {
                let text = client::recv(&mut ws, "ack").await?;
                let ty = frame_type(&text);
                if ty != "ack" && ty != "error" {
                    continue;
                }
                let sent = pending.pop_front().unwrap_or(0);
                if Instant::now() < stop {
                    if ty == "ack" {
                        lat.push(now_ns() - sent);
                    } else {
                        errors += 1;
                    }
                    client::send_text(&mut ws, client::send_frame(&room, 0)).await?;
                    pending.push_back(now_ns());
                }
            }
            Ok::<_, anyhow::Error>((room, ws, lat, errors))
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (room, ws, l, e) = t.await??;
        lat.extend(l);
        errors += e;
        fleet.push((room, ws));
    }
    let cpu = cpu_us(server, cpu0);
    if errors > 0 {
        bail!("{errors} sends were refused");
    }
    let n = lat.len() as f64;
    Ok(Durable {
        msgs_per_s: n / secs,
        cpu_us_per_msg: cpu / n,
        p99_ms: ms(percentile(&mut lat, 0.99)),
    })
}

const EVENTS_TABLE: &str = "CREATE TABLE events (
    room_id VARCHAR(64) NOT NULL, seq BIGINT NOT NULL, ts BIGINT NOT NULL,
    kind VARCHAR(32) NOT NULL, sender VARCHAR(128), client_id CHAR(36), body TEXT,
    PRIMARY KEY (room_id, seq), UNIQUE (room_id, sender, client_id))";

/// The storage floor: rows of natter's event shape inserted straight into
/// a fresh database, `batch` per transaction, for `secs`. Rows per second.
pub async fn storage_floor(paths: &Paths, db: Db, batch: usize, secs: f64) -> Result<f64> {
    use sqlx::{Connection, Executor};
    let insert = "INSERT INTO events (room_id, seq, ts, kind, sender, client_id, body) VALUES (?, ?, ?, 'message', ?, ?, ?)";
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let mut rows = 0u64;
    macro_rules! run {
        ($conn:expr) => {{
            let conn = $conn;
            while Instant::now() < stop {
                let mut tx = conn.begin().await?;
                for _ in 0..batch {
                    rows += 1;
                    sqlx::query(insert)
                        .bind(format!("r{}", rows % 64))
                        .bind(rows as i64)
                        .bind(rows as i64)
                        .bind("floor")
                        .bind(client::client_id())
                        .bind(client::body(0))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            }
        }};
    }
    match db {
        Db::Sqlite => {
            let dir = paths.scratch.join(format!("floor_{}", client::client_id()));
            std::fs::create_dir_all(&dir)?;
            let url = format!("sqlite://{}?mode=rwc", dir.join("floor.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await?;
            conn.execute("PRAGMA journal_mode = WAL").await?;
            conn.execute("PRAGMA synchronous = FULL").await?;
            conn.execute(EVENTS_TABLE).await?;
            run!(&mut conn);
            conn.close().await?;
            let _ = std::fs::remove_dir_all(dir);
        }
        Db::MariaDb => {
            let url = crate::sys::fresh_mysql().await?;
            let mut conn = sqlx::MySqlConnection::connect(&url).await?;
            conn.execute(EVENTS_TABLE).await?;
            run!(&mut conn);
            conn.close().await?;
        }
    }
    Ok(rows as f64 / t0.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------- B4

/// B4's connections: `members` synced subscribers and one publisher.
pub struct Room {
    ep: Endpoint,
    room: String,
    subs: Vec<Follower>,
    publisher: Option<Sender>,
}

pub async fn room(ep: &Endpoint, members: usize) -> Result<Room> {
    let name = format!("fan{members}");
    let users: Vec<String> = (0..members).map(|i| format!("{name}m{i}")).collect();
    let (room, seq) = group(ep, &name, &users).await?;
    let subs = each(members, SETUP_PARALLEL, |i| {
        let (ep, room, user) = (ep.clone(), room.clone(), users[i].clone());
        async move { receiver(&ep, &user, &room, seq).await }
    })
    .await?;
    let publisher = match ep.kind {
        Kind::Nchan => Sender::Http(reqwest::Client::new()),
        _ => Sender::Ws(client::login(ep, &users[0]).await?),
    };
    Ok(Room {
        ep: ep.clone(),
        room,
        subs,
        publisher: Some(publisher),
    })
}

pub struct Fanout {
    pub deliveries_per_cpu_s: f64,
    pub p99_ms: f64,
    pub lost: u64,
}

/// B4: the publisher sends `msgs` at `rate` per second; every subscriber
/// must receive each.
pub async fn fanout(server: &Server, fleet: &mut Room, msgs: usize, rate: f64) -> Result<Fanout> {
    let deadline = Instant::now() + Duration::from_secs_f64(msgs as f64 / rate + GRACE_B4);
    let cpu0 = server.cpu();
    let mut tasks = Vec::new();
    for mut f in fleet.subs.drain(..) {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(msgs);
            while lat.len() < msgs {
                match f.next(deadline).await {
                    Delivered::Stamps(s) => lat.extend(latencies(&s)),
                    Delivered::Ended => break,
                    Delivered::TimedOut => {
                        client::timed_out("deliveries");
                        break;
                    }
                }
            }
            (f, lat)
        }));
    }
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    match fleet.publisher.take().context("publisher")? {
        Sender::Ws(mut ws) => {
            let (mut sent, mut answered) = (0, 0);
            while answered < msgs {
                tokio::select! {
                    _ = tick.tick(), if sent < msgs => {
                        client::send_text(&mut ws, client::send_frame(&fleet.room, 0)).await?;
                        sent += 1;
                    }
                    got = client::next_text(&mut ws, deadline) => match got {
                        Next::Text(t) if matches!(frame_type(&t), "ack" | "error") => answered += 1,
                        Next::Text(_) => {}
                        Next::Ended(how) => bail!("publisher connection ended: {how}"),
                        Next::TimedOut => {
                            client::timed_out("acks");
                            break;
                        }
                    }
                }
            }
            fleet.publisher = Some(Sender::Ws(ws));
        }
        Sender::Http(http) => {
            let url = format!("http://{}/pub/{}", fleet.ep.addr, fleet.room);
            for _ in 0..msgs {
                tick.tick().await;
                http.post(&url)
                    .body(client::body(0))
                    .send()
                    .await?
                    .bytes()
                    .await?;
            }
            fleet.publisher = Some(Sender::Http(http));
        }
    }
    let mut lat = Vec::new();
    for t in tasks {
        let (f, l) = t.await?;
        lat.extend(l);
        fleet.subs.push(f);
    }
    let cpu = cpu_us(server, cpu0);
    let delivered = lat.len() as f64;
    Ok(Fanout {
        deliveries_per_cpu_s: delivered / (cpu / 1e6),
        lost: ((fleet.subs.len() * msgs) as u64).saturating_sub(lat.len() as u64),
        p99_ms: ms(percentile(&mut lat, 0.99)),
    })
}

// ---------------------------------------------------------------- B6

/// B6's rooms: `clients / 2` rooms of (a, b, poster), each with 50 new
/// messages after `base`.
pub struct Storm {
    rooms: Vec<(String, u64)>,
}

pub const CATCH_UP: usize = 50;

pub async fn storm_setup(ep: &Endpoint, clients: usize) -> Result<Storm> {
    let n = clients / 2;
    let rooms = if ep.kind == Kind::Natter {
        let http = reqwest::Client::new();
        each(n, 16, |i| {
            let (ep, http) = (ep.clone(), http.clone());
            async move {
                let members = serde_json::json!({"title": format!("s{i}"), "members": [{"id": format!("s{i}a")}, {"id": format!("s{i}b")}, {"id": "poster"}]});
                api(&ep, &http, "/rooms", members).await
            }
        })
        .await?
    } else {
        (0..n).map(|i| (format!("s{i}"), 0)).collect()
    };
    let names: Vec<String> = rooms.iter().map(|r| r.0.clone()).collect();
    post_bulk(ep, "poster", &names, CATCH_UP, 8).await?;
    Ok(Storm { rooms })
}

pub struct StormResult {
    pub secs: f64,
    pub gaps: u64,
    pub failed: u64,
    pub cpu_s: f64,
}

/// B6: every client connects at once (at most `parallel` handshakes in
/// flight), authenticates and syncs from before the 50 messages.
pub async fn storm(server: &Server, setup: &Storm, parallel: usize) -> Result<StormResult> {
    let ep = server.ep.clone();
    let cpu0 = server.cpu();
    let t0 = Instant::now();
    let results: Vec<(Option<Ws>, u64, bool)> = stream::iter(0..setup.rooms.len() * 2)
        .map(|i| {
            let (ep, (room, base)) = (ep.clone(), setup.rooms[i / 2].clone());
            async move {
                let side = if i % 2 == 0 { "a" } else { "b" };
                let attempt = async {
                    let mut ws = client::login(&ep, &format!("s{}{side}", i / 2)).await?;
                    let seqs = client::sync(&mut ws, &[(&room, base)]).await?;
                    Ok::<_, anyhow::Error>((ws, seqs))
                };
                match attempt.await {
                    Ok((ws, seqs)) => {
                        let want = base + 1..=base + CATCH_UP as u64;
                        let got = want.clone().filter(|s| seqs.contains(s)).count();
                        let in_order = seqs.windows(2).all(|w| w[1] == w[0] + 1);
                        let gaps = (CATCH_UP - got) as u64 + u64::from(!in_order);
                        (Some(ws), gaps, false)
                    }
                    Err(_) => (None, CATCH_UP as u64, true),
                }
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let secs = t0.elapsed().as_secs_f64();
    let cpu_s = cpu_us(server, cpu0) / 1e6;
    let gaps = results.iter().map(|r| r.1).sum();
    let failed = results.iter().filter(|r| r.2).count() as u64;
    drop(results);
    tokio::time::sleep(Duration::from_millis(300)).await;
    Ok(StormResult {
        secs,
        gaps,
        failed,
        cpu_s,
    })
}

// ---------------------------------------------------------------- B7

/// B7's room: `count` messages for one reader to catch up on.
pub struct History {
    room: String,
    base: u64,
    count: usize,
}

pub async fn history_setup(ep: &Endpoint, count: usize) -> Result<History> {
    let (room, base) = group(ep, "hist", &["reader".to_string(), "poster".to_string()]).await?;
    post_bulk(ep, "poster", std::slice::from_ref(&room), count, 8).await?;
    Ok(History { room, base, count })
}

/// B7: one client syncs from the start of the room; events per second.
pub async fn catch_up(server: &Server, setup: &History) -> Result<(f64, f64)> {
    let mut ws = client::login(&server.ep, "reader").await?;
    let cpu0 = server.cpu();
    let t0 = Instant::now();
    let seqs = client::sync(&mut ws, &[(&setup.room, setup.base)]).await?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_us(server, cpu0);
    if seqs.len() != setup.count {
        bail!("caught up {} events of {}", seqs.len(), setup.count);
    }
    Ok((seqs.len() as f64 / secs, cpu / seqs.len() as f64))
}

/// B7's floor: the same rows read straight from natter's database in pages
/// of 200, as natter's catch-up query does. Rows per second.
pub async fn read_floor(database_url: &str, setup: &History) -> Result<f64> {
    use sqlx::Connection;
    let query = "SELECT seq, ts, kind, sender, client_id, body FROM events WHERE room_id = ? AND seq > ? ORDER BY seq LIMIT 200";
    let t0 = Instant::now();
    let mut rows = 0usize;
    macro_rules! run {
        ($conn:expr) => {{
            let conn = $conn;
            let mut after = setup.base as i64;
            loop {
                let page = sqlx::query(query)
                    .bind(&setup.room)
                    .bind(after)
                    .fetch_all(&mut *conn)
                    .await?;
                let Some(last) = page.last() else { break };
                after = sqlx::Row::try_get::<i64, _>(last, 0)?;
                rows += page.len();
            }
        }};
    }
    if database_url.starts_with("sqlite") {
        let mut conn = sqlx::SqliteConnection::connect(database_url).await?;
        run!(&mut conn);
    } else {
        let mut conn = sqlx::MySqlConnection::connect(database_url).await?;
        run!(&mut conn);
    }
    if rows != setup.count {
        bail!("read {rows} rows of {}", setup.count);
    }
    Ok(rows as f64 / t0.elapsed().as_secs_f64())
}

// ---------------------------------------------------------------- floor

/// The kernel floor: CPU µs per small `write()` to a loopback socket, by a
/// process pinned to the server's core while this one reads.
pub async fn write_floor(n: usize) -> Result<f64> {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let exe = std::env::current_exe()?;
    let child = tokio::process::Command::new("taskset")
        .args(["-c", crate::sys::SERVER_CORE])
        .arg(exe)
        .args(["floor-writer", &addr.to_string(), &n.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let (mut sock, _) = listener.accept().await?;
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(k) = sock.read(&mut buf).await {
            if k == 0 {
                break;
            }
        }
    });
    let out = child.wait_with_output().await?;
    drain.await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ns: f64 = text
        .trim()
        .strip_prefix("cpu_ns ")
        .and_then(|v| v.parse().ok())
        .context("floor-writer output")?;
    Ok(ns / 1e3 / n as f64)
}

/// The child side of [`write_floor`]: `n` writes of a 64-byte WebSocket-
/// sized frame, then its own CPU time.
pub fn floor_writer(addr: &str, n: usize) -> Result<()> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let frame = [b'x'; 64];
    let before = crate::sys::cpu_of(std::process::id());
    for _ in 0..n {
        s.write_all(&frame)?;
    }
    let cpu = crate::sys::cpu_of(std::process::id()) - before;
    println!("cpu_ns {}", cpu.as_nanos());
    Ok(())
}
