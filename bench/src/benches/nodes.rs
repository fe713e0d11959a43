//! B9: three natter nodes on one MariaDB database, fanning out to each
//! other through NATS: deliveries per CPU-second of all three in a room
//! whose members are spread over them, and resident memory per idle
//! connection when many connections are spread over the three processes.
//!
//! One process may hold at most 20,000 file descriptors, so the idle
//! connections are held by helper processes (this program run as
//! `natter-bench hold …`), one per node.

use super::{SETUP_PARALLEL, each, fanout};
use crate::client;
use crate::log;
use crate::plan::{Plan, RUNS};
use crate::report::{Report, Row, why_start};
use crate::sys::{self, Endpoint, Kind, Paths, Server};
use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Nodes in the cluster.
const NODES: usize = 3;

/// B9's rows, on a fresh three-node cluster.
pub async fn run(plan: &Plan, paths: &Paths, report: &mut Report) {
    let t0 = Instant::now();
    let mut fan = Row::new(
        "B9",
        format!(
            "{NODES} nodes (MariaDB + NATS), {}-member room spread over them: deliveries per CPU-s of all nodes",
            plan.fan_members
        ),
        "—",
    );
    let mut lat = Row::new(
        "B9",
        format!(
            "{NODES} nodes, {}-member room: p99 delivery ms at {}/s",
            plan.fan_members, plan.fan_rate
        ),
        "—",
    );
    let mut idle = Row::new(
        "B9",
        format!(
            "{NODES} nodes, {} idle authenticated conns over them: RSS KiB/conn",
            plan.cluster_idle_n
        ),
        "≤4",
    );
    let per_node = plan.cluster_idle_n.div_ceil(NODES);
    let cluster = match sys::start_cluster(paths, NODES, per_node + 1000).await {
        Ok(c) => c,
        Err(e) => {
            report.fail("B9 cluster", e);
            return;
        }
    };
    let nodes: Vec<&Server> = cluster.iter().collect();

    why_start();
    let r = fanout::on_servers(&nodes, plan.fan_members, plan.fan_msgs, plan.fan_rate, RUNS).await;
    match r {
        Ok(fanout::Spread {
            per_cpu_s,
            p99_ms,
            lost,
            due,
            ..
        }) => {
            fan.natter = per_cpu_s;
            lat.natter = p99_ms;
            let lost = (lost > 0).then(|| format!("{lost} of {due} deliveries missing (3 runs)"));
            report.why("B9 fan-out", lost);
        }
        Err(e) => report.fail("B9 fan-out", e),
    }

    why_start();
    match idle_over(&nodes, per_node).await {
        Ok(kib) => {
            idle.natter = kib;
            report.why("B9 idle", None);
        }
        Err(e) => report.fail("B9 idle", e),
    }
    drop(cluster);
    log(format!("B9: {:.1} s", t0.elapsed().as_secs_f64()));
    report.rows.extend([fan, lat, idle]);
}

/// Opens `per_node` idle authenticated connections to each node, each
/// node's from its own helper process; the nodes' RSS growth per
/// connection (one run: the set-up is the long part).
async fn idle_over(nodes: &[&Server], per_node: usize) -> Result<f64> {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss0: u64 = nodes.iter().map(|s| s.rss_kib()).sum();
    let t0 = Instant::now();
    let mut holders = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        holders.push(Holder::start(&node.ep, &format!("idle{i}n"), per_node)?);
    }
    // Blocking reads are fine: the servers are other processes and this
    // thread has nothing else to do until every helper is ready.
    for h in &mut holders {
        h.wait_ready()?;
    }
    let n = per_node * nodes.len();
    log(format!(
        "B9 idle: {n} connections open in {:.1} s",
        t0.elapsed().as_secs_f64()
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;
    let rss: u64 = nodes.iter().map(|s| s.rss_kib()).sum();
    drop(holders);
    Ok(rss.saturating_sub(rss0) as f64 / n as f64)
}

/// A helper process holding connections open until dropped.
struct Holder {
    child: Child,
}

impl Holder {
    fn start(ep: &Endpoint, prefix: &str, n: usize) -> Result<Holder> {
        let child = Command::new(std::env::current_exe()?)
            .args(["hold", &ep.addr.to_string(), &ep.site, &ep.secret, prefix])
            .arg(n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a holder")?;
        Ok(Holder { child })
    }

    /// Until the helper says `ready` (or fails).
    fn wait_ready(&mut self) -> Result<()> {
        let out = self.child.stdout.take().context("holder stdout")?;
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        if line.trim() != "ready" {
            let status = self.child.wait()?;
            bail!("a holder ended before its connections were open ({status})");
        }
        Ok(())
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // Closing its stdin tells the helper to close its connections.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// `natter-bench hold ADDR SITE SECRET PREFIX N`: opens `N` authenticated
/// connections as users `PREFIX0…`, prints `ready`, then holds them until
/// stdin closes.
pub fn hold(args: &[String]) -> Result<()> {
    let usage = "hold ADDR SITE SECRET PREFIX N";
    let arg = |i: usize| args.get(i).context(usage);
    let ep = Endpoint {
        kind: Kind::Natter,
        addr: arg(0)?.parse()?,
        site: arg(1)?.clone(),
        secret: arg(2)?.clone(),
        api_key: String::new(),
    };
    let prefix = arg(3)?.clone();
    let n: usize = arg(4)?.parse()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let conns = each(n, SETUP_PARALLEL, |i| {
            let (ep, user) = (ep.clone(), format!("{prefix}{i}"));
            async move { client::login(&ep, &user).await }
        })
        .await?;
        // Each connection is read, as a client would, so natter's pings
        // are answered (the set-up outlasts two heartbeats).
        for mut ws in conns {
            tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
        }
        let mut stdout = std::io::stdout();
        stdout.write_all(b"ready\n")?;
        stdout.flush()?;
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            std::io::stdin().read_to_end(&mut sink)
        })
        .await??;
        Ok(())
    })
}
