//! B2: one-to-one relay: pairs of a sender and a receiver in a dialog at a
//! fixed total rate; server CPU per message and p99 latency from send to
//! the receiver's frame.

use super::{
    SETUP_PARALLEL, Sender, cpu_us, dialogs, each, latencies, log_phases, ms, percentile, receiver,
};
use crate::client::{self, Delivered, Follower, Next, frame_type};
use crate::log;
use crate::plan::{Plan, RUNS};
use crate::report::{Report, Row, med, set, why_start};
use crate::sys::{Endpoint, Kind, Server};
use anyhow::{Result, bail};
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;

/// How long receivers wait for the last deliveries after the last send
/// was due, before counting the rest as lost.
pub const GRACE_B2: f64 = 10.0;

/// B2 on natter and its peers; the floor is two writes per message (the
/// ack to the sender and the event to the receiver).
pub async fn run(plan: &Plan, peers: &[&Server], write_us: f64, report: &mut Report) {
    let mut row = Row::new(
        "B2",
        format!(
            "1:1 relay, server CPU µs/msg at {} msg/s offered",
            plan.relay_rate
        ),
        "≤0.5× node, ≤1× nchan",
    );
    let mut lat = Row::new(
        "B2",
        format!("1:1 relay, p99 ms at {} msg/s offered", plan.relay_rate),
        "≤10",
    );
    for server in peers {
        why_start();
        let what = format!("B2 {}", server.ep.kind.label());
        match on_server(plan, server).await {
            Ok((cpu, p99, lost, sent)) => {
                set(&mut row, server.ep.kind, cpu);
                set(&mut lat, server.ep.kind, p99);
                let lost = (lost > 0).then(|| {
                    format!("{lost} of {sent} messages never reached the receiver (3 runs)")
                });
                report.why(&what, lost);
            }
            Err(e) => report.fail(&what, e),
        }
    }
    // Floor: the ack to the sender and the event to the receiver.
    row.floor = 2.0 * write_us;
    report.rows.push(row);
    report.rows.push(lat);
}

/// B2 on one server: CPU µs/msg, p99 ms, messages lost and sent (all runs).
async fn on_server(plan: &Plan, server: &Server) -> Result<(f64, f64, u64, u64)> {
    let what = format!("B2 {}", server.ep.kind.label());
    log(&what);
    let t0 = Instant::now();
    let mut fleet = pairs(&server.ep, plan.relay_pairs).await?;
    let t1 = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(relay(server, &mut fleet, plan.relay_rate, plan.relay_secs).await?);
    }
    log_phases(&what, t0, t1);
    let lost = runs.iter().map(|r| r.lost).sum();
    let sent = runs.iter().map(|r| r.sent).sum();
    Ok((
        med(&runs, |r| r.cpu_us_per_msg),
        med(&runs, |r| r.p99_ms),
        lost,
        sent,
    ))
}

/// B2's connections: pairs of an unsynced sender and a synced receiver.
struct Pairs {
    ep: Endpoint,
    pairs: Vec<(String, Sender, Follower)>,
}

async fn pairs(ep: &Endpoint, n: usize) -> Result<Pairs> {
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

/// What one run measured (B5 measures the same).
pub struct Relay {
    pub cpu_us_per_msg: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub lost: u64,
    pub sent: u64,
}

/// B2: `rate` messages per second in all, spread over the pairs, for
/// `secs`; latency from send to the receiver's frame.
async fn relay(server: &Server, fleet: &mut Pairs, rate: f64, secs: f64) -> Result<Relay> {
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
