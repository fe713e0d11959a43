//! B6: a reconnect storm: every client of many rooms reconnects at once,
//! authenticates and catches up on the messages it missed; seconds until
//! all have caught up, gaps, failed clients and server CPU.

use super::{cpu_us, log_phases, post_bulk, trios};
use crate::client::{self, Ws};
use crate::log;
use crate::plan::{Plan, RUNS};
use crate::report::{Report, Row, med, set, why_start};
use crate::sys::{Endpoint, Kind, Server};
use anyhow::{Context, Result};
use futures_util::{StreamExt, stream};
use std::time::{Duration, Instant};

/// B6 on natter and node ws.
pub async fn run(plan: &Plan, natter: &Server, node: &Server, report: &mut Report) {
    let mut secs = Row::new(
        "B6",
        format!(
            "reconnect storm, {} clients × {} msgs: s to all caught up",
            plan.storm_clients, CATCH_UP
        ),
        "≤6 (10k)",
    );
    let mut gaps = Row::new(
        "B6",
        "reconnect storm: gaps + failed clients (worst run)",
        "0",
    );
    let mut storm_cpu = Row::new("B6", "reconnect storm: server CPU s", "—");
    let mut quiet = Row::new(
        "B6",
        "reconnect storm with presence off: s to all caught up",
        "with it on ≤ 1.1×",
    );
    for server in [natter, node] {
        why_start();
        let what = format!("B6 {}", server.ep.kind.label());
        match on_server(plan, server).await {
            Ok((s, c, worst, off)) => {
                if let Some(off) = off {
                    set(&mut quiet, server.ep.kind, off);
                }
                set(&mut secs, server.ep.kind, s);
                set(
                    &mut gaps,
                    server.ep.kind,
                    (worst.gaps + worst.failed) as f64,
                );
                set(&mut storm_cpu, server.ep.kind, c);
                let lost = (worst.gaps + worst.failed > 0).then(|| {
                format!(
                    "worst run {} failed clients, {} events missing or out of order (why: all 3 runs)",
                    worst.failed,
                    worst.gaps.saturating_sub(worst.failed * CATCH_UP as u64)
                )
            });
                report.why(&what, lost);
            }
            Err(e) => report.fail(&what, e),
        }
    }
    report.rows.extend([secs, gaps, storm_cpu, quiet]);
}

/// B6 on one server: seconds, server CPU s, the worst run, and on natter
/// the seconds with the site's presence turned off (what presence costs
/// a storm).
async fn on_server(plan: &Plan, server: &Server) -> Result<(f64, f64, StormResult, Option<f64>)> {
    let what = format!("B6 {}", server.ep.kind.label());
    log(&what);
    let t0 = Instant::now();
    let setup = storm_setup(&server.ep, plan.storm_clients).await?;
    let t1 = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(storm(server, &setup, plan.storm_parallel).await?);
    }
    let off = if server.ep.kind == Kind::Natter {
        presence(&server.ep, false).await?;
        let mut quiet = Vec::new();
        for _ in 0..RUNS {
            quiet.push(storm(server, &setup, plan.storm_parallel).await?);
        }
        presence(&server.ep, true).await?;
        Some(med(&quiet, |r| r.secs))
    } else {
        None
    };
    log_phases(&what, t0, t1);
    let (secs, cpu) = (med(&runs, |r| r.secs), med(&runs, |r| r.cpu_s));
    let worst = runs
        .into_iter()
        .max_by_key(|r| r.gaps + r.failed)
        .context("no storm run")?;
    Ok((secs, cpu, worst, off))
}

/// Turns the site's presence on or off (connections made after follow it).
async fn presence(ep: &Endpoint, on: bool) -> Result<()> {
    let settings = serde_json::json!({"receipts": {"dialog": true, "group": true}, "presence": on});
    let res = reqwest::Client::new()
        .put(format!("http://{}/api/v1/settings", ep.addr))
        .bearer_auth(&ep.api_key)
        .json(&settings)
        .send()
        .await?;
    anyhow::ensure!(res.status().is_success(), "settings: {}", res.status());
    Ok(())
}

/// B6's rooms: `clients / 2` rooms of (a, b, poster), each with 50 new
/// messages after `base`.
struct Storm {
    rooms: Vec<(String, u64)>,
}

/// Messages each room gains while its clients are away.
const CATCH_UP: usize = 50;

async fn storm_setup(ep: &Endpoint, clients: usize) -> Result<Storm> {
    let rooms = trios(ep, "s", clients / 2).await?;
    let names: Vec<String> = rooms.iter().map(|r| r.0.clone()).collect();
    post_bulk(ep, "poster", &names, CATCH_UP, 8).await?;
    Ok(Storm { rooms })
}

/// What one run measured.
struct StormResult {
    pub secs: f64,
    pub gaps: u64,
    pub failed: u64,
    pub cpu_s: f64,
}

/// B6: every client connects at once (at most `parallel` handshakes in
/// flight), authenticates and syncs from before the 50 messages.
async fn storm(server: &Server, setup: &Storm, parallel: usize) -> Result<StormResult> {
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
