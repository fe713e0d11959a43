//! B5: many people chatting: every connection sends one message a second
//! to its dialog; p50 and p99 latency from send to the partner's frame.

use super::relay::Relay;
use super::{SETUP_PARALLEL, cpu_us, dialogs, each, log_phases, ms, percentile, receiver};
use crate::client::{self, Delivered, Follower, now_ns};
use crate::log;
use crate::plan::{Plan, RUNS};
use crate::report::{Report, Row, med, set, why_start};
use crate::sys::{Endpoint, Server};
use anyhow::Result;
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;

/// B5 on natter and node ws.
pub async fn run(plan: &Plan, natter: &Server, node: &Server, report: &mut Report) {
    let mut p50 = Row::new(
        "B5",
        format!("{} conns × 1 msg/s: p50 ms end to end", plan.chat_conns),
        "≤1",
    );
    let mut p99 = Row::new(
        "B5",
        format!("{} conns × 1 msg/s: p99 ms end to end", plan.chat_conns),
        "≤10",
    );
    for server in [natter, node] {
        why_start();
        let what = format!("B5 {}", server.ep.kind.label());
        match on_server(plan, server).await {
            Ok((a, b, lost, sent)) => {
                set(&mut p50, server.ep.kind, a);
                set(&mut p99, server.ep.kind, b);
                let lost = (lost > 0).then(|| {
                    format!("{lost} of {sent} messages never reached the partner (3 runs)")
                });
                report.why(&what, lost);
            }
            Err(e) => report.fail(&what, e),
        }
    }
    report.rows.push(p50);
    report.rows.push(p99);
}

/// B5 on one server: p50 and p99 ms, messages lost and sent (all runs).
async fn on_server(plan: &Plan, server: &Server) -> Result<(f64, f64, u64, u64)> {
    let what = format!("B5 {}", server.ep.kind.label());
    log(&what);
    let t0 = Instant::now();
    let mut fleet = chatters(&server.ep, plan.chat_conns, "c").await?;
    let t1 = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(chat(server, &mut fleet, plan.chat_secs).await?);
    }
    log_phases(&what, t0, t1);
    let lost = runs.iter().map(|r| r.lost).sum();
    let sent = runs.iter().map(|r| r.sent).sum();
    Ok((
        med(&runs, |r| r.p50_ms),
        med(&runs, |r| r.p99_ms),
        lost,
        sent,
    ))
}

/// B5's connections: both sides of each dialog synced.
pub(super) struct Chatters {
    conns: Vec<Follower>,
}

/// `n` connections in `n / 2` dialogs of users named from `prefix`.
pub(super) async fn chatters(ep: &Endpoint, n: usize, prefix: &str) -> Result<Chatters> {
    let rooms = dialogs(ep, prefix, n / 2).await?;
    let conns = each(n / 2 * 2, SETUP_PARALLEL, |i| {
        let (ep, (room, seq)) = (ep.clone(), rooms[i / 2].clone());
        async move {
            let side = if i % 2 == 0 { "a" } else { "b" };
            receiver(&ep, &format!("{prefix}{}{side}", i / 2), &room, seq).await
        }
    })
    .await?;
    Ok(Chatters { conns })
}

/// B5: every connection sends one message a second to its dialog for
/// `secs`; latency from send to the partner's frame.
pub(super) async fn chat(server: &Server, fleet: &mut Chatters, secs: u64) -> Result<Relay> {
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
