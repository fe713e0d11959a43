//! B4: fan-out in a big room: one publisher, every member subscribed;
//! deliveries per server CPU-second and p99 delivery latency.

use super::{SETUP_PARALLEL, Sender, each, group, latencies, ms, percentile, receiver};
use crate::client::{self, Delivered, Follower, Next, frame_type};
use crate::log;
use crate::plan::{Plan, RUNS};
use crate::report::{Report, Row, med, set, why_start};
use crate::sys::{Endpoint, Kind, Server, sum_times};
use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};
use tokio::time::MissedTickBehavior;

/// How long subscribers wait for the last deliveries after the last send
/// was due, before counting the rest as lost.
pub const GRACE_B4: f64 = 15.0;

/// B4 on natter and its peers; the floor is one write per delivery.
pub async fn run(plan: &Plan, peers: &[&Server], write_us: f64, report: &mut Report) {
    let mut row = Row::new(
        "B4",
        format!(
            "fan-out, {}-member room: deliveries per server CPU-s",
            plan.fan_members
        ),
        "≥1.3× nchan",
    );
    let mut lat = Row::new(
        "B4",
        format!(
            "fan-out, {}-member room: p99 delivery ms at {}/s",
            plan.fan_members, plan.fan_rate
        ),
        "—",
    );
    let mut own = Row::new(
        "B4",
        format!(
            "fan-out, {}-member room: server CPU µs per delivery in its own code (user time)",
            plan.fan_members
        ),
        "—",
    );
    for server in peers {
        why_start();
        let what = format!("B4 {}", server.ep.kind.label());
        let servers = [*server];
        match on_servers(
            &servers,
            plan.fan_members,
            plan.fan_msgs,
            plan.fan_rate,
            RUNS,
        )
        .await
        {
            Ok(Spread {
                per_cpu_s,
                user_us,
                p99_ms,
                lost,
                due,
            }) => {
                set(&mut row, server.ep.kind, per_cpu_s);
                set(&mut lat, server.ep.kind, p99_ms);
                set(&mut own, server.ep.kind, user_us);
                let lost =
                    (lost > 0).then(|| format!("{lost} of {due} deliveries missing (3 runs)"));
                report.why(&what, lost);
            }
            Err(e) => report.fail(&what, e),
        }
    }
    row.floor = 1e6 / write_us;
    report.rows.extend([row, lat, own]);
}

/// What the fan-out runs measured, as medians of the runs.
pub struct Spread {
    /// Deliveries per CPU-second of the servers (user and system time).
    pub per_cpu_s: f64,
    /// The servers' user time per delivery, µs.
    pub user_us: f64,
    pub p99_ms: f64,
    /// Deliveries missing, and due, over all runs.
    pub lost: u64,
    pub due: u64,
}

/// B4 on one server, or B9 on several nodes of one cluster (members spread
/// over them, the publisher on the first): their CPU per delivery, all of
/// them together.
pub async fn on_servers(
    servers: &[&Server],
    members: usize,
    msgs: usize,
    rate: f64,
    runs_n: usize,
) -> Result<Spread> {
    let first = servers.first().context("no server")?;
    let what = format!(
        "fan-out {} ×{} {members} members",
        first.ep.kind.label(),
        servers.len()
    );
    log(&what);
    let t0 = Instant::now();
    let eps: Vec<Endpoint> = servers.iter().map(|s| s.ep.clone()).collect();
    let mut fleet = room(&eps, members).await?;
    let t1 = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..runs_n {
        runs.push(fanout(servers, &mut fleet, msgs, rate).await?);
    }
    log(format!(
        "{what}: set-up {:.1} s, {runs_n} runs {:.1} s",
        (t1 - t0).as_secs_f64(),
        t1.elapsed().as_secs_f64()
    ));
    let lost = runs.iter().map(|r| r.lost).sum();
    let due = (members * msgs * runs_n) as u64;
    Ok(Spread {
        per_cpu_s: med(&runs, |r| r.deliveries_per_cpu_s),
        user_us: med(&runs, |r| r.user_us_per_delivery),
        p99_ms: med(&runs, |r| r.p99_ms),
        lost,
        due,
    })
}

/// B4's connections: `members` synced subscribers and one publisher.
struct Room {
    ep: Endpoint,
    room: String,
    subs: Vec<Follower>,
    publisher: Option<Sender>,
}

/// Subscriber `i` connects to `eps[i % eps.len()]`; the room is made and
/// the publisher connects through the first.
async fn room(eps: &[Endpoint], members: usize) -> Result<Room> {
    let ep = eps.first().context("no endpoint")?;
    let name = format!("fan{members}");
    let users: Vec<String> = (0..members).map(|i| format!("{name}m{i}")).collect();
    let (room, seq) = group(ep, &name, &users).await?;
    let subs = each(members, SETUP_PARALLEL, |i| {
        let (ep, room, user) = (eps[i % eps.len()].clone(), room.clone(), users[i].clone());
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

/// What one run measured.
struct Fanout {
    pub deliveries_per_cpu_s: f64,
    pub user_us_per_delivery: f64,
    pub p99_ms: f64,
    pub lost: u64,
}

/// B4: the publisher sends `msgs` at `rate` per second; every subscriber
/// must receive each.
async fn fanout(servers: &[&Server], fleet: &mut Room, msgs: usize, rate: f64) -> Result<Fanout> {
    let deadline = Instant::now() + Duration::from_secs_f64(msgs as f64 / rate + GRACE_B4);
    // User and system time of all the servers, read once.
    let times_all = || sum_times(servers.iter().map(|s| s.times()));
    let (user0, system0) = times_all();
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
    let (user1, system1) = times_all();
    let user = (user1 - user0).as_secs_f64() * 1e6;
    let cpu = user + (system1 - system0).as_secs_f64() * 1e6;
    let delivered = lat.len() as f64;
    Ok(Fanout {
        deliveries_per_cpu_s: delivered / (cpu / 1e6),
        user_us_per_delivery: user / delivered,
        lost: ((fleet.subs.len() * msgs) as u64).saturating_sub(lat.len() as u64),
        p99_ms: ms(percentile(&mut lat, 0.99)),
    })
}
