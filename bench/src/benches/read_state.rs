//! B11: what read state costs the server. Rooms of three members (a, b
//! and a poster who is not connected), a and b connected, the messages
//! b's. Each a sends `typing` frames, then as many `read` frames (each
//! moving the marker one of b's messages on), at the same rate; server
//! CPU per frame for each, the read markers' batched writes included
//! (each run ends after the next write). Both kinds reach exactly one
//! other connection, b's: typing goes to the room's other members, a
//! receipt to the author of what it passed. Each a types less often than
//! the server's typing interval (2 s), so none is dropped.
//!
//! The runs come in pairs, one of each kind, and each pair gives a
//! ratio: this machine's CPU time drifts by a tenth or more from one
//! half-minute to the next, which a pair's two runs share. Every other
//! pair runs its read first, so that a drift within a pair does not
//! always fall on the same kind. A short pair comes first
//! and is not counted: the first markers written to each member's row,
//! and the presence of the connections just made, cost once and would
//! fall on whichever run came first.

use super::{SETUP_PARALLEL, cpu_us, each, send_acked, trios};
use crate::client::{self, Next, Ws};
use crate::log;
use crate::plan::Plan;
use crate::report::{Report, Row, med, set, why_start};
use crate::sys::Server;
use anyhow::{Result, bail};
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;

/// How long after its last frame a run still counts: past the next write
/// of the read markers (every second by default).
const SETTLE: Duration = Duration::from_millis(1500);

/// B11 on natter (the other servers have no read state).
pub async fn run(plan: &Plan, natter: &Server, report: &mut Report) {
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
        format!("read ÷ typing, median of {} pairs of runs", plan.read_pairs),
        "≤ 1.0",
    );
    why_start();
    match on_server(plan, natter).await {
        Ok(pairs) => {
            set(&mut typing, natter.ep.kind, med(&pairs, |p| p.0));
            set(&mut read, natter.ep.kind, med(&pairs, |p| p.1));
            set(&mut ratio, natter.ep.kind, med(&pairs, |p| p.1 / p.0));
        }
        Err(e) => report.fail("B11 natter", e),
    }
    report.rows.extend([typing, read, ratio]);
}

/// Each pair of runs: typing and read, µs per frame.
async fn on_server(plan: &Plan, server: &Server) -> Result<Vec<(f64, f64)>> {
    let what = "B11 natter";
    log(what);
    let t0 = Instant::now();
    let rooms = trios(&server.ep, "rs", plan.read_conns / 2).await?;
    // Each run's reads move the markers further on: enough of b's
    // messages for all.
    let per_room = plan.read_warm_up_frames + plan.read_frames * plan.read_pairs;
    each(rooms.len(), SETUP_PARALLEL, |i| {
        let (ep, room) = (server.ep.clone(), rooms[i].0.clone());
        async move { post_as(&ep, &format!("rs{i}b"), &room, per_room).await }
    })
    .await?;
    let mut conns = each(rooms.len() * 2, SETUP_PARALLEL, |i| {
        let (ep, (room, before)) = (server.ep.clone(), rooms[i / 2].clone());
        async move {
            let side = if i % 2 == 0 { "a" } else { "b" };
            let mut ws = client::login(&ep, &format!("rs{}{side}", i / 2)).await?;
            client::sync(&mut ws, &[(&room, 0)]).await?;
            // `before`: the seq before b's messages (the members' joining).
            Ok((room, ws, (side == "a").then_some(before)))
        }
    })
    .await?;
    let t1 = Instant::now();
    let mut pairs = Vec::new();
    // Pair 0 warms up (where the plan has it); its figures are not kept.
    let mut base = 0;
    let first = if plan.read_warm_up_frames > 0 { 0 } else { 1 };
    for pair in first..=plan.read_pairs {
        let (k, warm) = match pair {
            0 => (plan.read_warm_up_frames, " (warm-up)"),
            _ => (plan.read_frames, ""),
        };
        // Every other counted pair runs its read first, so that a drift
        // within a pair weighs on both kinds alike.
        let read_first = pair % 2 == 0 && pair > 0;
        let (mut t, mut r) = (0.0, 0.0);
        for read in [read_first, !read_first] {
            if read {
                r = blast(
                    &format!("read{warm}"),
                    server,
                    &mut conns,
                    plan,
                    k,
                    move |room, n| {
                        format!(r#"{{"type":"read","room":"{room}","seq":{}}}"#, base + n)
                    },
                )
                .await?;
            } else {
                t = blast(
                    &format!("typing{warm}"),
                    server,
                    &mut conns,
                    plan,
                    k,
                    |room, _| format!(r#"{{"type":"typing","room":"{room}"}}"#),
                )
                .await?;
            }
        }
        base += k as u64;
        if pair > 0 {
            log(format!("B11 pair {pair}: read ÷ typing {:.2}", r / t));
            pairs.push((t, r));
        }
    }
    log(format!(
        "{what}: set-up {:.1} s, {} pairs of runs {:.1} s",
        (t1 - t0).as_secs_f64(),
        plan.read_pairs,
        t1.elapsed().as_secs_f64()
    ));
    Ok(pairs)
}

/// Sends `n` messages to `room` as `user` over one connection; returns
/// when all are acked.
async fn post_as(ep: &crate::sys::Endpoint, user: &str, room: &str, n: usize) -> Result<()> {
    let mut ws = client::login(ep, user).await?;
    send_acked(&mut ws, &vec![room.to_string(); n]).await
}

/// Every sending connection (those with the seq their room's frames
/// count from) sends `k` frames made by `frame(room, seq + i)` (i from
/// 1), spread evenly at `plan.read_rate` in all; every connection reads
/// what comes meanwhile. Server CPU µs per frame sent.
async fn blast(
    what: &str,
    server: &Server,
    conns: &mut Vec<(String, Ws, Option<u64>)>,
    plan: &Plan,
    k: usize,
    frame: impl Fn(&str, u64) -> String + Clone + Send + 'static,
) -> Result<f64> {
    let n = conns.iter().filter(|c| c.2.is_some()).count();
    let period = Duration::from_secs_f64(n as f64 / plan.read_rate);
    let until = Instant::now() + period * (k as u32 + 1) + SETTLE;
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let cpu0 = server.cpu();
    let mut tasks = Vec::with_capacity(n);
    for (i, (room, mut ws, sends)) in conns.drain(..).enumerate() {
        let offset = period.mul_f64((i / 2) as f64 / n as f64);
        let (k, from) = (if sends.is_some() { k } else { 0 }, sends.unwrap_or(0));
        let frame = frame.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(start + offset, period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let (mut sent, mut got_n) = (0, 0u64);
            loop {
                tokio::select! {
                    _ = tick.tick(), if sent < k => {
                        sent += 1;
                        client::send_text(&mut ws, frame(&room, from + sent as u64)).await?;
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
        "B11 {what}: {per_frame:.1} µs/frame, {:.2} frames received per frame sent",
        received as f64 / (n * k) as f64
    ));
    Ok(per_frame)
}
