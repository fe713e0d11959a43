//! B1: idle authenticated connections: resident memory per connection and
//! the server CPU of the handshake and authentication.

use super::{SETUP_PARALLEL, cpu_us, each, start};
use crate::client;
use crate::log;
use crate::plan::{Plan, RUNS};
use crate::report::{Report, Row, med, set, why_start};
use crate::sys::{Kind, Paths, Server};
use anyhow::Result;
use std::time::{Duration, Instant};

/// B1 on natter, node and (if installed) nchan, each on fresh servers.
pub async fn run(plan: &Plan, paths: &Paths, nchan: bool, report: &mut Report) {
    let mut rss = Row::new(
        "B1",
        format!("{} idle authenticated conns: RSS KiB/conn", plan.idle_n),
        "≤4, ≤0.4× node",
    );
    let mut cpu = Row::new("B1", "handshake + auth: server CPU µs/conn", "—");
    let mut kinds = vec![Kind::Natter, Kind::Node];
    if nchan {
        kinds.push(Kind::Nchan);
    }
    for kind in kinds {
        why_start();
        let t0 = Instant::now();
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            match once(paths, kind, plan.idle_n).await {
                Ok(r) => runs.push(r),
                Err(e) => {
                    report.fail(&format!("B1 {}", kind.label()), e);
                    break;
                }
            }
        }
        if runs.len() == RUNS {
            set(&mut rss, kind, med(&runs, |r| r.rss_kib_per_conn));
            set(&mut cpu, kind, med(&runs, |r| r.cpu_us_per_conn));
            report.why(&format!("B1 {}", kind.label()), None);
        }
        log(format!(
            "B1 {}: {RUNS} runs in {:.1} s",
            kind.label(),
            t0.elapsed().as_secs_f64()
        ));
    }
    report.rows.push(rss);
    report.rows.push(cpu);
}

/// One run on a fresh server of this kind.
pub async fn once(paths: &Paths, kind: Kind, n: usize) -> Result<Idle> {
    let server = start(paths, kind).await?;
    idle(&server, n).await
}

/// What one run measured.
pub struct Idle {
    pub rss_kib_per_conn: f64,
    pub cpu_us_per_conn: f64,
}

/// B1: opens `n` authenticated connections (nchan: subscribers of one
/// channel) and leaves them idle.
async fn idle(server: &Server, n: usize) -> Result<Idle> {
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
