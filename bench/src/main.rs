//! `natter-bench [--quick] [--out FILE]`: natter beside its peers (a Node.js
//! `ws` server, nginx + nchan, the kernel's write floor and the storage
//! floor), each figure the median of 3 runs, written into BENCHMARKS.md.
//!
//! The servers run pinned to core 0 (`taskset -c 0`), this load generator
//! re-executes itself pinned to core 1 and runs on one thread. Server CPU
//! time comes from /proc/PID/stat, memory from /proc/PID/status.

mod benches;
mod client;
mod plan;
mod report;
mod sys;

use anyhow::{Context, Result, bail};
use plan::{FULL, Plan, QUICK, RUNS};
use report::{Report, Row, med, num, ratio, render, set, why_start, write_section};
use std::path::{Path, PathBuf};
use std::time::Instant;
use sys::{Db, Kind, Paths, Server};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("floor-writer") {
        let addr = args.get(1).context("floor-writer ADDR N")?;
        let n = args.get(2).context("floor-writer ADDR N")?.parse()?;
        return benches::floor_writer(addr, n);
    }
    pin_to_load_core()?;
    let mut quick = false;
    let mut out = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--out" => out = Some(PathBuf::from(it.next().context("--out FILE")?)),
            other => {
                bail!("unknown argument {other:?}; usage: natter-bench [--quick] [--out FILE]")
            }
        }
    }
    let plan = if quick { &QUICK } else { &FULL };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    let out = out.unwrap_or_else(|| root.join("BENCHMARKS.md"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(plan, root, out))
}

/// Re-executes this program under `taskset -c 1` unless already pinned.
fn pin_to_load_core() -> Result<()> {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("NATTER_BENCH_PINNED").is_some() {
        return Ok(());
    }
    let err = std::process::Command::new("taskset")
        .args(["-c", sys::LOAD_CORE])
        .arg(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .env("NATTER_BENCH_PINNED", "1")
        .exec();
    Err(err).context("re-executing under taskset")
}

fn log(msg: impl AsRef<str>) {
    let t = client::epoch().elapsed().as_secs_f64();
    eprintln!("bench: [{t:6.1} s] {}", msg.as_ref());
}

async fn run(plan: &Plan, root: PathBuf, out: PathBuf) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("natter-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    let paths = Paths {
        natter: root.join("target/release/natter"),
        root: root.clone(),
        scratch: scratch.clone(),
    };
    build_natter(&root)?;
    sys::ensure_node_peer(&paths)?;
    let nchan = sys::ensure_nchan();
    let started = Instant::now();
    let machine = sys::machine_line();
    let load_before = loadavg();
    log(format!("{} variant on {machine}", plan.name));
    let mut report = Report {
        rows: Vec::new(),
        growth: Vec::new(),
        notes: Vec::new(),
        laps: Vec::new(),
    };

    // The kernel floor first, while nothing else runs.
    let t0 = Instant::now();
    let mut floor_runs = Vec::new();
    for _ in 0..RUNS {
        floor_runs.push(benches::write_floor(plan.write_floor_n).await?);
    }
    let write_us = med(&floor_runs, |v| *v);
    log(format!("kernel floor: {write_us:.2} µs per small write"));
    report.lap("floor", t0);

    let t0 = Instant::now();
    b1(plan, &paths, nchan, &mut report).await;
    report.lap("B1", t0);

    let natter = sys::start_natter(&paths, Db::Sqlite).await?;
    let node = sys::start_node(&paths)?;
    let nchan_server = if nchan {
        sys::start_nchan(&paths).ok()
    } else {
        None
    };
    let mut peers: Vec<&Server> = vec![&natter, &node];
    if let Some(n) = &nchan_server {
        peers.push(n);
    }

    // B2
    let t0 = Instant::now();
    let mut row = Row::new(
        "B2",
        format!(
            "1:1 relay, server CPU µs/msg at {} msg/s offered",
            plan.relay_rate
        ),
        "≤10",
    );
    let mut lat = Row::new(
        "B2",
        format!("1:1 relay, p99 ms at {} msg/s offered", plan.relay_rate),
        "—",
    );
    for server in &peers {
        why_start();
        let what = format!("B2 {}", server.ep.kind.label());
        match b2(plan, server).await {
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
    report.lap("B2", t0);

    // B3
    let t0 = Instant::now();
    b3(plan, &paths, &natter, &node, &mut report).await;
    report.lap("B3 + B7 MariaDB", t0);

    // B4
    let t0 = Instant::now();
    let mut row = Row::new(
        "B4",
        format!(
            "fan-out, {}-member room: deliveries per server CPU-s",
            plan.fan_members
        ),
        "≥250,000",
    );
    let mut lat = Row::new(
        "B4",
        format!(
            "fan-out, {}-member room: p99 delivery ms at {}/s",
            plan.fan_members, plan.fan_rate
        ),
        "—",
    );
    for server in &peers {
        why_start();
        let what = format!("B4 {}", server.ep.kind.label());
        match b4(server, plan.fan_members, plan.fan_msgs, plan.fan_rate, RUNS).await {
            Ok((dps, p99, lost, due)) => {
                set(&mut row, server.ep.kind, dps);
                set(&mut lat, server.ep.kind, p99);
                let lost =
                    (lost > 0).then(|| format!("{lost} of {due} deliveries missing (3 runs)"));
                report.why(&what, lost);
            }
            Err(e) => report.fail(&what, e),
        }
    }
    row.floor = 1e6 / write_us;
    report.rows.push(row);
    report.rows.push(lat);
    drop(nchan_server);
    report.lap("B4", t0);

    // B5
    let t0 = Instant::now();
    let mut p50 = Row::new(
        "B5",
        format!("{} conns × 1 msg/s: p50 ms end to end", plan.chat_conns),
        "—",
    );
    let mut p99 = Row::new(
        "B5",
        format!("{} conns × 1 msg/s: p99 ms end to end", plan.chat_conns),
        "≤10",
    );
    for server in [&natter, &node] {
        why_start();
        let what = format!("B5 {}", server.ep.kind.label());
        match b5(plan, server).await {
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
    report.lap("B5", t0);

    // B6
    let t0 = Instant::now();
    let mut secs = Row::new(
        "B6",
        format!(
            "reconnect storm, {} clients × {} msgs: s to all caught up",
            plan.storm_clients,
            benches::CATCH_UP
        ),
        "≤10 (10k)",
    );
    let mut gaps = Row::new(
        "B6",
        "reconnect storm: gaps + failed clients (worst run)",
        "0",
    );
    let mut storm_cpu = Row::new("B6", "reconnect storm: server CPU s", "—");
    for server in [&natter, &node] {
        why_start();
        let what = format!("B6 {}", server.ep.kind.label());
        match b6(plan, server).await {
            Ok((s, c, worst)) => {
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
                        worst.gaps.saturating_sub(worst.failed * benches::CATCH_UP as u64)
                    )
                });
                report.why(&what, lost);
            }
            Err(e) => report.fail(&what, e),
        }
    }
    report.rows.extend([secs, gaps, storm_cpu]);
    report.lap("B6", t0);

    // B7
    let t0 = Instant::now();
    b7(plan, &paths, &natter, &node, &mut report).await;
    drop(natter);
    drop(node);
    report.lap("B7", t0);

    let t0 = Instant::now();
    growth(plan, &paths, &mut report).await;
    report.lap("growth", t0);
    b8(&root, &mut report);

    sys::drop_mysql_databases().await;
    let _ = std::fs::remove_dir_all(&scratch);
    report.rows.sort_by_key(|r| r.id);
    let took = started.elapsed().as_secs_f64();
    log(format!("done in {took:.0} s"));
    report.notes.insert(
        0,
        format!(
            "load average (1 min) before the run {load_before}, after it {}: other work on this 2-core machine shares both cores, so figures move between runs",
            loadavg()
        ),
    );
    let section = render(plan, &machine, write_us, took, &report);
    println!("{section}");
    write_section(&out, plan.name, &section)?;
    log(format!(
        "wrote the {} section of {}",
        plan.name,
        out.display()
    ));
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn build_natter(root: &Path) -> Result<()> {
    log("cargo build --release -p natter-server --bin natter");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "-p",
            "natter-server",
            "--bin",
            "natter",
        ])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building natter failed: {status}");
    }
    Ok(())
}

async fn b1(plan: &Plan, paths: &Paths, nchan: bool, report: &mut Report) {
    let mut rss = Row::new(
        "B1",
        format!("{} idle authenticated conns: RSS KiB/conn", plan.idle_n),
        "≤2",
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
            match idle_once(paths, kind, plan.idle_n).await {
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

async fn start(paths: &Paths, kind: Kind) -> Result<Server> {
    match kind {
        Kind::Natter => sys::start_natter(paths, Db::Sqlite).await,
        Kind::Node => sys::start_node(paths),
        Kind::Nchan => sys::start_nchan(paths),
    }
}

async fn idle_once(paths: &Paths, kind: Kind, n: usize) -> Result<benches::Idle> {
    let server = start(paths, kind).await?;
    benches::idle(&server, n).await
}

/// Logs how long a benchmark's set-up and runs took on one server.
fn log_phases(what: &str, t0: Instant, t1: Instant) {
    log(format!(
        "{what}: set-up {:.1} s, {RUNS} runs {:.1} s",
        (t1 - t0).as_secs_f64(),
        t1.elapsed().as_secs_f64()
    ));
}

/// B2 on one server: CPU µs/msg, p99 ms, messages lost and sent (all runs).
async fn b2(plan: &Plan, server: &Server) -> Result<(f64, f64, u64, u64)> {
    let what = format!("B2 {}", server.ep.kind.label());
    log(&what);
    let t0 = Instant::now();
    let mut fleet = benches::pairs(&server.ep, plan.relay_pairs).await?;
    let t1 = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(benches::relay(server, &mut fleet, plan.relay_rate, plan.relay_secs).await?);
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

async fn b3(plan: &Plan, paths: &Paths, natter: &Server, node: &Server, report: &mut Report) {
    let title = |what: &str| {
        format!(
            "durable 1:1, {} conns × {} in flight: {what}",
            plan.durable_conns, plan.durable_window
        )
    };
    let mut sq = Row::new("B3", title("SQLite msg/s"), "≥50,000");
    let mut sq99 = Row::new("B3", title("SQLite p99 ack ms"), "≤10");
    let mut my = Row::new("B3", title("MariaDB msg/s"), "≥30,000");
    let mut my99 = Row::new("B3", title("MariaDB p99 ack ms"), "—");
    let mut sqcpu = Row::new("B3", title("SQLite server CPU µs/msg"), "—");
    let mut mycpu = Row::new("B3", title("MariaDB server CPU µs/msg"), "—");
    let mariadb = sys::start_natter(paths, Db::MariaDb).await;
    let mut servers: Vec<(&Server, bool)> = vec![(natter, false), (node, false)];
    match &mariadb {
        Ok(m) => servers.push((m, true)),
        Err(e) => report
            .notes
            .push(format!("B3 MariaDB: not measured ({e:#})")),
    }
    for (server, is_mariadb) in servers {
        let what = format!(
            "B3 {}{}",
            server.ep.kind.label(),
            if is_mariadb { " MariaDB" } else { "" }
        );
        log(&what);
        why_start();
        let result = async {
            let t0 = Instant::now();
            let mut fleet = benches::writers(&server.ep, plan.durable_conns).await?;
            let t1 = Instant::now();
            let mut runs = Vec::new();
            for _ in 0..RUNS {
                runs.push(
                    benches::durable(server, &mut fleet, plan.durable_window, plan.durable_secs)
                        .await?,
                );
            }
            log_phases(&what, t0, t1);
            Ok::<_, anyhow::Error>((
                med(&runs, |r| r.msgs_per_s),
                med(&runs, |r| r.p99_ms),
                med(&runs, |r| r.cpu_us_per_msg),
            ))
        }
        .await;
        if result.is_ok() {
            report.why(&what, None);
        }
        match (result, server.ep.kind, is_mariadb) {
            (Ok((rate, p99, cpu)), Kind::Node, _) => {
                // Not durable: the same figure beside both databases.
                for row in [&mut sq, &mut my] {
                    row.node = rate;
                }
                for row in [&mut sq99, &mut my99] {
                    row.node = p99;
                }
                for row in [&mut sqcpu, &mut mycpu] {
                    row.node = cpu;
                }
            }
            (Ok((rate, p99, cpu)), _, false) => {
                (sq.natter, sq99.natter, sqcpu.natter) = (rate, p99, cpu)
            }
            (Ok((rate, p99, cpu)), _, true) => {
                (my.natter, my99.natter, mycpu.natter) = (rate, p99, cpu)
            }
            (Err(e), kind, m) => report.fail(
                &format!("B3 {}{}", kind.label(), if m { " MariaDB" } else { "" }),
                e,
            ),
        }
    }
    for (db, row) in [(Db::Sqlite, &mut sq), (Db::MariaDb, &mut my)] {
        let t0 = Instant::now();
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            match benches::storage_floor(paths, db, 256, plan.durable_secs).await {
                Ok(v) => runs.push(v),
                Err(e) => {
                    report.fail(&format!("B3 storage floor {}", db.label()), e);
                    break;
                }
            }
        }
        row.floor = med(&runs, |v| *v);
        log(format!(
            "B3 storage floor {}: {RUNS} runs in {:.1} s",
            db.label(),
            t0.elapsed().as_secs_f64()
        ));
    }
    report.rows.extend([sq, sq99, sqcpu, my, my99, mycpu]);
    if let Ok(m) = mariadb {
        b7_mariadb(plan, &m, report).await;
    }
}

/// B4 on one server: deliveries per CPU-s, p99 ms, deliveries missing and
/// due (all runs).
async fn b4(
    server: &Server,
    members: usize,
    msgs: usize,
    rate: f64,
    runs_n: usize,
) -> Result<(f64, f64, u64, u64)> {
    let what = format!("B4 {} {members} members", server.ep.kind.label());
    log(&what);
    let t0 = Instant::now();
    let mut fleet = benches::room(&server.ep, members).await?;
    let t1 = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..runs_n {
        runs.push(benches::fanout(server, &mut fleet, msgs, rate).await?);
    }
    log(format!(
        "{what}: set-up {:.1} s, {runs_n} runs {:.1} s",
        (t1 - t0).as_secs_f64(),
        t1.elapsed().as_secs_f64()
    ));
    let lost = runs.iter().map(|r| r.lost).sum();
    let due = (members * msgs * runs_n) as u64;
    Ok((
        med(&runs, |r| r.deliveries_per_cpu_s),
        med(&runs, |r| r.p99_ms),
        lost,
        due,
    ))
}

/// B5 on one server: p50 and p99 ms, messages lost and sent (all runs).
async fn b5(plan: &Plan, server: &Server) -> Result<(f64, f64, u64, u64)> {
    let what = format!("B5 {}", server.ep.kind.label());
    log(&what);
    let t0 = Instant::now();
    let mut fleet = benches::chatters(&server.ep, plan.chat_conns).await?;
    let t1 = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(benches::chat(server, &mut fleet, plan.chat_secs).await?);
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

/// B6 on one server: seconds, server CPU s, and the worst run.
async fn b6(plan: &Plan, server: &Server) -> Result<(f64, f64, benches::StormResult)> {
    let what = format!("B6 {}", server.ep.kind.label());
    log(&what);
    let t0 = Instant::now();
    let setup = benches::storm_setup(&server.ep, plan.storm_clients).await?;
    let t1 = Instant::now();
    let mut runs = Vec::new();
    for _ in 0..RUNS {
        runs.push(benches::storm(server, &setup, plan.storm_parallel).await?);
    }
    log_phases(&what, t0, t1);
    let (secs, cpu) = (med(&runs, |r| r.secs), med(&runs, |r| r.cpu_s));
    let worst = runs
        .into_iter()
        .max_by_key(|r| r.gaps + r.failed)
        .context("no storm run")?;
    Ok((secs, cpu, worst))
}

async fn b7(plan: &Plan, paths: &Paths, natter: &Server, node: &Server, report: &mut Report) {
    let _ = paths;
    let mut row = Row::new(
        "B7",
        format!(
            "history catch-up of {} msgs, SQLite: msgs/s",
            plan.history_msgs
        ),
        "≥100,000",
    );
    for server in [natter, node] {
        let what = format!("B7 {}", server.ep.kind.label());
        log(&what);
        why_start();
        let result = async {
            let t0 = Instant::now();
            let setup = benches::history_setup(&server.ep, plan.history_msgs).await?;
            let t1 = Instant::now();
            let mut runs = Vec::new();
            for _ in 0..RUNS {
                runs.push(benches::catch_up(server, &setup).await?.0);
            }
            let mut floor = Vec::new();
            if let Some(url) = &server.database_url {
                for _ in 0..RUNS {
                    floor.push(benches::read_floor(url, &setup).await?);
                }
            }
            log_phases(&what, t0, t1);
            Ok::<_, anyhow::Error>((med(&runs, |v| *v), med(&floor, |v| *v)))
        }
        .await;
        match result {
            Ok((rate, floor)) => {
                report.why(&what, None);
                set(&mut row, server.ep.kind, rate);
                if server.ep.kind == Kind::Natter {
                    row.floor = floor;
                }
            }
            Err(e) => report.fail(&format!("B7 {}", server.ep.kind.label()), e),
        }
    }
    report.rows.push(row);
}

async fn b7_mariadb(plan: &Plan, natter: &Server, report: &mut Report) {
    log("B7 natter MariaDB");
    why_start();
    let t0 = Instant::now();
    let mut row = Row::new(
        "B7",
        format!(
            "history catch-up of {} msgs, MariaDB: msgs/s",
            plan.history_msgs_mariadb
        ),
        "—",
    );
    let result = async {
        let setup = benches::history_setup(&natter.ep, plan.history_msgs_mariadb).await?;
        let (mut runs, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            runs.push(benches::catch_up(natter, &setup).await?.0);
            floor.push(
                benches::read_floor(natter.database_url.as_deref().unwrap_or_default(), &setup)
                    .await?,
            );
        }
        Ok::<_, anyhow::Error>((med(&runs, |v| *v), med(&floor, |v| *v)))
    }
    .await;
    log(format!(
        "B7 natter MariaDB: set-up and {RUNS} runs {:.1} s",
        t0.elapsed().as_secs_f64()
    ));
    match result {
        Ok((rate, floor)) => {
            report.why("B7 natter MariaDB", None);
            (row.natter, row.floor) = (rate, floor)
        }
        Err(e) => report.fail("B7 natter MariaDB", e),
    }
    report.rows.push(row);
}

/// How cost grows: memory and handshake CPU at more connections, CPU per
/// delivery in bigger rooms (natter and node, one run each).
async fn growth(plan: &Plan, paths: &Paths, report: &mut Report) {
    log("growth");
    let mut lines = vec![
        "| what | size | natter | node ws | natter ÷ node |".to_string(),
        "|---|---:|---:|---:|---:|".to_string(),
    ];
    for &n in plan.idle_growth {
        let mut cells = Vec::new();
        for kind in [Kind::Natter, Kind::Node] {
            why_start();
            let what = format!("growth: {n} idle conns, {}", kind.label());
            match idle_once(paths, kind, n).await {
                Ok(r) => {
                    report.why(&what, None);
                    cells.push(Some(r));
                }
                Err(e) => {
                    report.fail(&what, e);
                    cells.push(None);
                }
            }
        }
        let (b, a) = (cells.pop().flatten(), cells.pop().flatten());
        let f = |r: &Option<benches::Idle>, g: fn(&benches::Idle) -> f64| {
            r.as_ref().map_or(f64::NAN, g)
        };
        lines.push(format!(
            "| idle conns: RSS KiB/conn | {n} | {} | {} | {} |",
            num(f(&a, |r| r.rss_kib_per_conn)),
            num(f(&b, |r| r.rss_kib_per_conn)),
            ratio(f(&a, |r| r.rss_kib_per_conn), f(&b, |r| r.rss_kib_per_conn))
        ));
        lines.push(format!(
            "| handshake + auth: CPU µs/conn | {n} | {} | {} | {} |",
            num(f(&a, |r| r.cpu_us_per_conn)),
            num(f(&b, |r| r.cpu_us_per_conn)),
            ratio(f(&a, |r| r.cpu_us_per_conn), f(&b, |r| r.cpu_us_per_conn))
        ));
    }
    for &size in plan.fan_growth {
        let msgs = (plan.fan_growth_deliveries / size).max(1);
        let rate = (msgs as f64 / 1.5).max(1.0);
        let mut cells = Vec::new();
        for kind in [Kind::Natter, Kind::Node] {
            why_start();
            let what = format!("growth: room of {size}, {}", kind.label());
            let r = async {
                let server = start(paths, kind).await?;
                b4(&server, size, msgs, rate, 1).await
            }
            .await;
            match r {
                Ok((dps, _, lost, due)) => {
                    let lost = (lost > 0).then(|| format!("{lost} of {due} deliveries missing"));
                    report.why(&what, lost);
                    cells.push(1e6 / dps);
                }
                Err(e) => {
                    report.fail(&what, e);
                    cells.push(f64::NAN);
                }
            }
        }
        lines.push(format!(
            "| fan-out: server CPU µs/delivery | room of {size} | {} | {} | {} |",
            num(cells[0]),
            num(cells[1]),
            ratio(cells[0], cells[1])
        ));
    }
    if let Some(row) = report
        .rows
        .iter()
        .find(|r| r.id == "B4" && r.metric.contains("deliveries"))
    {
        lines.push(format!(
            "| fan-out: server CPU µs/delivery (B4, median of 3) | room of {} | {} | {} | {} |",
            plan.fan_members,
            num(1e6 / row.natter),
            num(1e6 / row.node),
            ratio(row.node, row.natter)
        ));
    }
    report.growth = lines;
}

/// B8: gzipped sizes of what the widget ships.
fn b8(root: &Path, report: &mut Report) {
    let dist = root.join("dist");
    let Ok(entries) = std::fs::read_dir(&dist) else {
        report
            .notes
            .push("B8: no dist/ — run `cargo xtask dist`".into());
        return;
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "wasm" || e == "js" || e == "css")
        })
        .collect();
    files.sort();
    // A debug build (`trunk build`, as the tests make) keeps DWARF sections
    // and is several times the size of what ships.
    let debug = files.iter().any(|p| {
        p.extension().is_some_and(|e| e == "wasm")
            && std::fs::read(p).is_ok_and(|bytes| {
                bytes
                    .windows(b".debug_info".len())
                    .any(|w| w == b".debug_info")
            })
    });
    if debug {
        report.notes.push(
            "B8: dist/ holds a debug build (`trunk build`); run `cargo xtask dist` for the sizes that ship"
                .into(),
        );
        return;
    }
    let mut total = 0usize;
    for path in files {
        let raw = std::fs::metadata(&path).map_or(0, |m| m.len());
        let gz = std::process::Command::new("gzip")
            .args(["-9", "-c"])
            .arg(&path)
            .output()
            .map_or(0, |o| o.stdout.len());
        total += gz;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let mut row = Row::new("B8", format!("{name} ({raw} B raw): KiB gzip -9"), "—");
        row.natter = gz as f64 / 1024.0;
        report.rows.push(row);
    }
    let mut row = Row::new("B8", "widget total: KiB gzip -9", "—");
    row.natter = total as f64 / 1024.0;
    report.rows.push(row);
}
