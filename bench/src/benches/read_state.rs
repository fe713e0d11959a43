//! B11: what read state costs the server: connections in group rooms send
//! `typing` frames, then as many `read` frames (each moving the marker one
//! message on), at the same rate; server CPU per frame for each, the read
//! markers' batched writes included (each run ends after the next write).

use super::{SETUP_PARALLEL, cpu_us, each, log_phases, post_bulk, trios};
use crate::client::{self, Next, Ws};
use crate::log;
use crate::plan::{Plan, RUNS};
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
    why_start();
    match on_server(plan, natter).await {
        Ok((t, r)) => {
            set(&mut typing, natter.ep.kind, t);
            set(&mut read, natter.ep.kind, r);
        }
        Err(e) => report.fail("B11 natter", e),
    }
    report.rows.extend([typing, read]);
}

/// Medians of the typing and the read runs, µs per frame.
async fn on_server(plan: &Plan, server: &Server) -> Result<(f64, f64)> {
    let what = "B11 natter";
    log(what);
    let t0 = Instant::now();
    let rooms = trios(&server.ep, "rs", plan.read_conns / 2).await?;
    let names: Vec<String> = rooms.iter().map(|r| r.0.clone()).collect();
    // Each run's reads move the markers further on: enough messages for all.
    post_bulk(&server.ep, "poster", &names, plan.read_frames * RUNS, 8).await?;
    let mut conns = each(rooms.len() * 2, SETUP_PARALLEL, |i| {
        let (ep, room) = (server.ep.clone(), rooms[i / 2].0.clone());
        async move {
            let side = if i % 2 == 0 { "a" } else { "b" };
            let mut ws = client::login(&ep, &format!("rs{}{side}", i / 2)).await?;
            client::sync(&mut ws, &[(&room, 0)]).await?;
            Ok((room, ws))
        }
    })
    .await?;
    let t1 = Instant::now();
    let (mut typing, mut read) = (Vec::new(), Vec::new());
    for run in 0..RUNS {
        typing.push(
            blast(server, &mut conns, plan, |room, _| {
                format!(r#"{{"type":"typing","room":"{room}"}}"#)
            })
            .await?,
        );
        let base = (run * plan.read_frames) as u64;
        read.push(
            blast(server, &mut conns, plan, move |room, k| {
                format!(r#"{{"type":"read","room":"{room}","seq":{}}}"#, base + k)
            })
            .await?,
        );
    }
    log_phases(what, t0, t1);
    Ok((med(&typing, |v| *v), med(&read, |v| *v)))
}

/// Every connection sends `plan.read_frames` frames made by `frame(room,
/// k)` (k from 1), spread evenly at `plan.read_rate` in all, and reads
/// what comes meanwhile; server CPU µs per frame sent.
async fn blast(
    server: &Server,
    conns: &mut Vec<(String, Ws)>,
    plan: &Plan,
    frame: impl Fn(&str, u64) -> String + Clone + Send + 'static,
) -> Result<f64> {
    let n = conns.len();
    let k = plan.read_frames;
    let period = Duration::from_secs_f64(n as f64 / plan.read_rate);
    let until = Instant::now() + period * (k as u32 + 1) + SETTLE;
    let start = tokio::time::Instant::now() + Duration::from_millis(20);
    let cpu0 = server.cpu();
    let mut tasks = Vec::with_capacity(n);
    for (i, (room, mut ws)) in conns.drain(..).enumerate() {
        let offset = period.mul_f64(i as f64 / n as f64);
        let frame = frame.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(start + offset, period);
            tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let mut sent = 0;
            loop {
                tokio::select! {
                    _ = tick.tick(), if sent < k => {
                        sent += 1;
                        client::send_text(&mut ws, frame(&room, sent as u64)).await?;
                    }
                    got = client::next_text(&mut ws, until) => match got {
                        Next::Text(_) => {}
                        Next::Ended(how) => bail!("a connection ended: {how}"),
                        Next::TimedOut => break,
                    }
                }
            }
            Ok::<_, anyhow::Error>((room, ws))
        }));
    }
    for task in tasks {
        conns.push(task.await??);
    }
    Ok(cpu_us(server, cpu0) / (n * k) as f64)
}
