//! B11: what read state costs the server. Rooms of three members (a, b
//! and a poster who is not connected), a and b connected, the messages
//! b's. Each a sends `typing` frames in one run, as many `read` frames
//! (each moving the marker one of b's messages on) in another, at the
//! same rate; server CPU per frame for each, the read markers' batched
//! writes included (each run ends after the next write). Both kinds
//! reach exactly one other connection, b's: typing goes to the room's
//! other members, a receipt to the author of what it passed. Each a types
//! less often than the server's typing interval (2 s), so none is
//! dropped.
//!
//! The runs come in pairs, and each pair gives a ratio. The two kinds run
//! at the same time, on two natter servers of their own (both fresh,
//! both pinned to the same core): one server takes the `typing` frames
//! while the other takes the `read` frames, and the next pair swaps them.
//! This machine's CPU time drifts by a tenth or more from one half-minute
//! to the next, and by as much between two runs a few seconds apart (the
//! kernel's cost of waking a thread that slept); runs made side by side
//! on one core share that drift, so their ratio keeps only what the
//! frames themselves cost. The swap keeps a difference between the two
//! servers from falling on one kind. Two short pairs come first (each
//! server reads in one) and are not counted: the first markers written
//! to each member's row, and the presence of the connections just made,
//! cost once.

use super::{SETUP_PARALLEL, cpu_us, each, send_acked, trios};
use crate::client::{self, Next, Ws};
use crate::log;
use crate::plan::Plan;
use crate::report::{Report, Row, med, set, why_start};
use crate::sys::{self, Db, Paths, Server};
use anyhow::{Result, bail};
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;

/// How long after its last frame a run still counts: past the next write
/// of the read markers (every second by default).
const SETTLE: Duration = Duration::from_millis(1500);

/// A connection of B11: its room, its socket and, for a sender (a), the
/// seq its room's `read` frames count from.
type Conn = (String, Ws, Option<u64>);

/// What a run's senders send.
#[derive(Clone, Copy)]
enum Frames {
    Typing,
    /// `read` frames, the n-th moving the marker to `base + n`.
    Read {
        base: u64,
    },
}

impl Frames {
    fn text(self, room: &str, n: u64) -> String {
        match self {
            Frames::Typing => format!(r#"{{"type":"typing","room":"{room}"}}"#),
            Frames::Read { base } => {
                format!(r#"{{"type":"read","room":"{room}","seq":{}}}"#, base + n)
            }
        }
    }

    fn name(self) -> &'static str {
        match self {
            Frames::Typing => "typing",
            Frames::Read { .. } => "read",
        }
    }
}

/// B11 on natter (the other servers have no read state), on two servers
/// of its own.
pub async fn run(plan: &Plan, paths: &Paths, report: &mut Report) {
    let label = |what: &str| {
        format!(
            "{what}, server CPU µs/frame, {} conns at {} frames/s",
            plan.read_conns, plan.read_rate
        )
    };
    let mut typing = Row::new("B11", label("typing"), "—");
    let mut read = Row::new("B11", label("read (batched writes included)"), "≤ typing");
    let mut ratio = Row::new(
        "B11",
        format!(
            "read ÷ typing, median of {} pairs of runs side by side",
            plan.read_pairs
        ),
        "≤ 1.0",
    );
    why_start();
    let measured = async {
        let one = sys::start_natter(paths, Db::Sqlite).await?;
        let two = sys::start_natter(paths, Db::Sqlite).await?;
        on_servers(plan, [&one, &two]).await
    };
    match measured.await {
        Ok(pairs) => {
            let kind = sys::Kind::Natter;
            set(&mut typing, kind, med(&pairs, |p| p.0));
            set(&mut read, kind, med(&pairs, |p| p.1));
            set(&mut ratio, kind, med(&pairs, |p| p.1 / p.0));
        }
        Err(e) => report.fail("B11 natter", e),
    }
    report.rows.extend([typing, read, ratio]);
}

/// Each counted pair of runs: typing and read, µs per frame.
async fn on_servers(plan: &Plan, servers: [&Server; 2]) -> Result<Vec<(f64, f64)>> {
    let what = "B11 natter";
    log(what);
    let t0 = Instant::now();
    // Both servers' rooms first, then their connections at once: a
    // connection left unread for long misses the server's pings and is
    // dropped.
    let rooms_one = rooms(plan, servers[0], "rs").await?;
    let rooms_two = rooms(plan, servers[1], "rt").await?;
    let (mut one, mut two) = tokio::try_join!(
        connect(servers[0], &rooms_one, "rs"),
        connect(servers[1], &rooms_two, "rt"),
    )?;
    let t1 = Instant::now();
    let warm_up = if plan.read_warm_up_frames > 0 { 2 } else { 0 };
    let mut bases = [0u64; 2];
    let mut pairs = Vec::new();
    let mut by_reader: [Vec<f64>; 2] = Default::default();
    for step in 0..warm_up + plan.read_pairs {
        let counted = step >= warm_up;
        let k = if counted {
            plan.read_frames
        } else {
            plan.read_warm_up_frames
        };
        let reader = step % 2;
        let frames = |i: usize| {
            if i == reader {
                Frames::Read { base: bases[i] }
            } else {
                Frames::Typing
            }
        };
        let start = tokio::time::Instant::now() + Duration::from_millis(20);
        let (a, b) = tokio::try_join!(
            blast(servers[0], &mut one, plan, k, start, frames(0)),
            blast(servers[1], &mut two, plan, k, start, frames(1)),
        )?;
        bases[reader] += k as u64;
        let (t, r) = if reader == 0 { (b, a) } else { (a, b) };
        let name = if counted {
            format!("pair {}", step + 1 - warm_up)
        } else {
            "warm-up".to_string()
        };
        log(format!(
            "B11 {name}, read on server {}: typing {t:.1}, read {r:.1} µs/frame, read ÷ typing {:.2}",
            reader + 1,
            r / t
        ));
        if counted {
            pairs.push((t, r));
            by_reader[reader].push(r / t);
        }
    }
    log(format!(
        "{what}: set-up {:.1} s, {} pairs of runs {:.1} s; median ratio with the read on server 1: {:.2}, on server 2: {:.2}",
        (t1 - t0).as_secs_f64(),
        plan.read_pairs,
        t1.elapsed().as_secs_f64(),
        med(&by_reader[0], |r| *r),
        med(&by_reader[1], |r| *r),
    ));
    Ok(pairs)
}

/// A server's rooms (trios whose users' names start with `prefix`), each
/// holding enough of b's messages for every run's reads, with the seq
/// before b's messages (the members' joining).
async fn rooms(plan: &Plan, server: &Server, prefix: &str) -> Result<Vec<(String, u64)>> {
    let rooms = trios(&server.ep, prefix, plan.read_conns / 2).await?;
    let per_room = plan.read_warm_up_frames + plan.read_frames * plan.read_pairs;
    each(rooms.len(), SETUP_PARALLEL, |i| {
        let (ep, room) = (server.ep.clone(), rooms[i].0.clone());
        async move { post_as(&ep, &format!("{prefix}{i}b"), &room, per_room).await }
    })
    .await?;
    Ok(rooms)
}

/// The rooms' a and b, connected and synced.
async fn connect(server: &Server, rooms: &[(String, u64)], prefix: &str) -> Result<Vec<Conn>> {
    each(rooms.len() * 2, SETUP_PARALLEL, |i| {
        let (ep, (room, before)) = (server.ep.clone(), rooms[i / 2].clone());
        async move {
            let side = if i % 2 == 0 { "a" } else { "b" };
            let mut ws = client::login(&ep, &format!("{prefix}{}{side}", i / 2)).await?;
            client::sync(&mut ws, &[(&room, 0)]).await?;
            Ok((room, ws, (side == "a").then_some(before)))
        }
    })
    .await
}

/// Sends `n` messages to `room` as `user` over one connection; returns
/// when all are acked.
async fn post_as(ep: &crate::sys::Endpoint, user: &str, room: &str, n: usize) -> Result<()> {
    let mut ws = client::login(ep, user).await?;
    send_acked(&mut ws, &vec![room.to_string(); n]).await
}

/// Every sending connection (those with the seq their room's frames
/// count from) sends `k` of `frames`, the first at `start`, spread evenly
/// at `plan.read_rate` in all; every connection reads what comes
/// meanwhile. Server CPU µs per frame sent.
async fn blast(
    server: &Server,
    conns: &mut Vec<Conn>,
    plan: &Plan,
    k: usize,
    start: tokio::time::Instant,
    frames: Frames,
) -> Result<f64> {
    let n = conns.iter().filter(|c| c.2.is_some()).count();
    let period = Duration::from_secs_f64(n as f64 / plan.read_rate);
    let until = start.into_std() + period * (k as u32 + 1) + SETTLE;
    let cpu0 = server.cpu();
    let mut tasks = Vec::with_capacity(n);
    for (i, (room, mut ws, sends)) in conns.drain(..).enumerate() {
        let offset = period.mul_f64((i / 2) as f64 / n as f64);
        let (k, from) = (if sends.is_some() { k } else { 0 }, sends.unwrap_or(0));
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(start + offset, period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let (mut sent, mut got_n) = (0, 0u64);
            loop {
                tokio::select! {
                    _ = tick.tick(), if sent < k => {
                        sent += 1;
                        client::send_text(&mut ws, frames.text(&room, from + sent as u64)).await?;
                    }
                    got = client::next_text(&mut ws, until) => match got {
                        Next::Text(_) => got_n += 1,
                        Next::Ended(how) => bail!("a connection ended: {how}"),
                        Next::TimedOut => break,
                    }
                }
            }
            Ok::<_, anyhow::Error>((room, ws, sends, got_n))
        }));
    }
    let mut received = 0;
    for task in tasks {
        let (room, ws, sends, got_n) = task.await??;
        received += got_n;
        conns.push((room, ws, sends));
    }
    let per_frame = cpu_us(server, cpu0) / (n * k) as f64;
    log(format!(
        "B11 {} on {}: {per_frame:.1} µs/frame, {:.2} frames received per frame sent",
        frames.name(),
        server.ep.addr,
        received as f64 / (n * k) as f64
    ));
    Ok(per_frame)
}
