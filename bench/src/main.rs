//! `natter-bench [--quick] [--out FILE]`: natter beside its peers (a Node.js
//! `ws` server, nginx + nchan, the kernel's write floor and the storage
//! floor), each figure the median of 3 runs, written into BENCHMARKS.md.
//!
//! The servers run pinned to core 0 (`taskset -c 0`), this load generator
//! re-executes itself pinned to core 1 and runs on one thread. Server CPU
//! time comes from /proc/PID/stat, memory from /proc/PID/status.
//!
//! `plan` says what runs and how much, `benches` holds one module per
//! benchmark (its measurement and its orchestration), `report` writes the
//! figures into BENCHMARKS.md; `client` speaks to the servers, `sys`
//! starts them and reads their CPU and memory.

mod benches;
mod client;
mod plan;
mod report;
mod sys;

use anyhow::{Context, Result, bail};
use benches::{
    catch_up, chat_latency, durable_writes, fanout, files, flood, growth, idle_connections, nodes,
    read_state, reconnect_storm, relay, widget_size, write_floor,
};
use plan::{FULL, Plan, QUICK};
use report::{Report, render, write_section};
use std::path::{Path, PathBuf};
use std::time::Instant;
use sys::{Db, Paths, Server};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("floor-writer") {
        let addr = args.get(1).context("floor-writer ADDR N")?;
        let n = args.get(2).context("floor-writer ADDR N")?.parse()?;
        return write_floor::floor_writer(addr, n);
    }
    if args.first().map(String::as_str) == Some("hold") {
        return nodes::hold(&args[1..]);
    }
    pin_to_load_core()?;
    let mut quick = false;
    let mut out = None;
    let mut only = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => quick = true,
            "--out" => out = Some(PathBuf::from(it.next().context("--out FILE")?)),
            "--only" => only = Some(Only::parse(it.next().context("--only B2,B3,…")?)?),
            other => {
                bail!(
                    "unknown argument {other:?}; usage: natter-bench [--quick] [--only B2,B3,…] [--out FILE]"
                )
            }
        }
    }
    let plan = if quick { &QUICK } else { &FULL };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("workspace root")?
        .to_path_buf();
    // A partial run never rewrites BENCHMARKS.md unless told where to write.
    let out = match (&only, out) {
        (_, Some(out)) => Some(out),
        (None, None) => Some(root.join("BENCHMARKS.md")),
        (Some(_), None) => None,
    };
    let only = only.unwrap_or_default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(plan, &only, root, out))
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

/// Progress on stderr, with the seconds since the start.
fn log(msg: impl AsRef<str>) {
    let t = client::epoch().elapsed().as_secs_f64();
    eprintln!("bench: [{t:6.1} s] {}", msg.as_ref());
}

/// The whole run, in order; writes the variant's section of `out`.
async fn run(plan: &Plan, only: &Only, root: PathBuf, out: Option<PathBuf>) -> Result<()> {
    let scratch = std::env::temp_dir().join(format!("natter-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    // A build of natter given by path (an earlier commit's, to compare
    // two builds on one host) is run as it is; otherwise this checkout's
    // is built.
    let given = std::env::var_os("NATTER_BENCH_NATTER").map(PathBuf::from);
    let paths = Paths {
        natter: given
            .clone()
            .unwrap_or_else(|| root.join("target/release/natter")),
        root: root.clone(),
        scratch: scratch.clone(),
    };
    match &given {
        Some(natter) => log(format!("natter: {}", natter.display())),
        None => build_natter(&root)?,
    }
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
    let write_us = write_floor::run(plan).await?;
    report.lap("floor", t0);

    let t0 = Instant::now();
    if only.has("B1") {
        idle_connections::run(plan, &paths, nchan, &mut report).await;
    }
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

    let t0 = Instant::now();
    if only.has("B2") {
        relay::run(plan, &peers, write_us, &mut report).await;
    }
    report.lap("B2", t0);

    let t0 = Instant::now();
    if only.has("B3") {
        durable_writes::run(plan, &paths, &natter, &node, &mut report).await;
    }
    report.lap("B3 + B7 MariaDB", t0);

    let t0 = Instant::now();
    if only.has("B4") {
        fanout::run(plan, &peers, write_us, &mut report).await;
    }
    drop(nchan_server);
    report.lap("B4", t0);

    let t0 = Instant::now();
    if only.has("B5") {
        chat_latency::run(plan, &natter, &node, &mut report).await;
    }
    report.lap("B5", t0);

    let t0 = Instant::now();
    if only.has("B12") {
        flood::run(plan, &paths, &mut report).await;
    }
    report.lap("B12", t0);

    let t0 = Instant::now();
    if only.has("B6") {
        reconnect_storm::run(plan, &natter, &node, &mut report).await;
    }
    report.lap("B6", t0);

    let t0 = Instant::now();
    if only.has("B7") {
        catch_up::run(plan, &natter, &node, &mut report).await;
    }
    report.lap("B7", t0);

    let t0 = Instant::now();
    if only.has("B11") {
        read_state::run(plan, &paths, &mut report).await;
    }
    report.lap("B11", t0);

    let t0 = Instant::now();
    if only.has("B10") {
        files::run(&paths, &natter, &mut report).await;
    }
    drop(natter);
    drop(node);
    report.lap("B10", t0);

    let t0 = Instant::now();
    if only.has("B9") {
        nodes::run(plan, &paths, &mut report).await;
    }
    report.lap("B9", t0);

    let t0 = Instant::now();
    if only.has("growth") {
        growth::run(plan, &paths, &mut report).await;
    }
    report.lap("growth", t0);
    if only.has("B8") {
        widget_size::run(&root, &mut report);
    }

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
    if let Some(out) = out {
        write_section(&out, plan.name, &section)?;
        log(format!(
            "wrote the {} section of {}",
            plan.name,
            out.display()
        ));
    }
    Ok(())
}

/// The benchmarks a run is limited to (`--only B2,B3`); empty runs all.
/// B3 also measures B7 on MariaDB, and `growth` names the growth table.
#[derive(Default)]
struct Only(Vec<String>);

impl Only {
    const NAMES: [&str; 13] = [
        "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "growth",
    ];

    fn parse(list: &str) -> Result<Self> {
        let names: Vec<String> = list.split(',').map(|n| n.trim().to_string()).collect();
        if let Some(bad) = names.iter().find(|n| !Self::NAMES.contains(&n.as_str())) {
            bail!(
                "unknown benchmark {bad:?}; known: {}",
                Self::NAMES.join(", ")
            );
        }
        Ok(Only(names))
    }

    fn has(&self, name: &str) -> bool {
        self.0.is_empty() || self.0.iter().any(|n| n == name)
    }
}

/// The 1-minute load average, as /proc/loadavg says it.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

/// A variable `cargo run` sets for the program it runs (the same list as
/// xtask's, which shares no crate with the bench).
fn set_by_cargo_run(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_MANIFEST_")
        || matches!(
            key,
            "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
        )
}

/// Builds the release `natter` binary the benchmarks start.
fn build_natter(root: &Path) -> Result<()> {
    log("cargo build --release -p natter-server --bin natter");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build
        .args([
            "build",
            "--release",
            "-p",
            "natter-server",
            "--bin",
            "natter",
        ])
        .current_dir(root);
    // Without what `cargo run` set for this program: some build scripts
    // (ring's) watch those variables, and would rebuild on every change
    // between a bench started by `cargo run` and one started by hand.
    for (key, _) in std::env::vars_os() {
        if set_by_cargo_run(&key.to_string_lossy()) {
            build.env_remove(&key);
        }
    }
    let status = build.status()?;
    if !status.success() {
        bail!("building natter failed: {status}");
    }
    Ok(())
}
