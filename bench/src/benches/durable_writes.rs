//! B3: durable one-to-one writes: writers keeping a window of sends in
//! flight, each acked after its commit, on SQLite and on MariaDB;
//! messages per second, p99 ack latency and server CPU per message,
//! beside the storage floor (the same rows inserted straight into the
//! database in batches).

use super::{SETUP_PARALLEL, cpu_us, dialogs, each, log_phases, ms, percentile};
use crate::client::{self, Ws, frame_type, now_ns};
use crate::log;
use crate::plan::{Plan, RUNS};
use crate::report::{Report, Row, med, why_start};
use crate::sys::{self, Db, Endpoint, Kind, Paths, Server};
use anyhow::{Result, bail};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// B3 on natter (SQLite, then a MariaDB natter started here) and node ws;
/// B7 on MariaDB follows on that server while it runs.
pub async fn run(plan: &Plan, paths: &Paths, natter: &Server, node: &Server, report: &mut Report) {
    let title = |what: &str| {
        format!(
            "durable 1:1, {} conns × {} in flight: {what}",
            plan.durable_conns, plan.durable_window
        )
    };
    let mut sq = Row::new("B3", title("SQLite msg/s"), "≥50,000");
    let mut sq99 = Row::new("B3", title("SQLite p99 ack ms"), "—");
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
            let mut fleet = writers(&server.ep, plan.durable_conns).await?;
            let t1 = Instant::now();
            let mut runs = Vec::new();
            for _ in 0..RUNS {
                runs.push(
                    durable(server, &mut fleet, plan.durable_window, plan.durable_secs).await?,
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
            match storage_floor(paths, db, FLOOR_BATCH, plan.durable_secs).await {
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
        super::catch_up::run_mariadb(plan, &m, report).await;
    }
}

/// What one run measured.
struct Durable {
    pub msgs_per_s: f64,
    pub p99_ms: f64,
    pub cpu_us_per_msg: f64,
}

/// B3's connections: unsynced senders, each in its own dialog.
async fn writers(ep: &Endpoint, n: usize) -> Result<Vec<(String, Ws)>> {
    let rooms = dialogs(ep, "w", n).await?;
    each(n, SETUP_PARALLEL, |i| {
        let (ep, room) = (ep.clone(), rooms[i].0.clone());
        async move { Ok((room, client::login(&ep, &format!("w{i}a")).await?)) }
    })
    .await
}

/// B3: each writer keeps `window` sends in flight for `secs`; throughput
/// and latency of the acks (sent after commit).
async fn durable(
    server: &Server,
    fleet: &mut Vec<(String, Ws)>,
    window: usize,
    secs: f64,
) -> Result<Durable> {
    let cpu0 = server.cpu();
    let t0 = Instant::now();
    let stop = t0 + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for (room, mut ws) in fleet.drain(..) {
        tasks.push(tokio::spawn(async move {
            let mut pending = VecDeque::with_capacity(window);
            let (mut lat, mut errors) = (Vec::new(), 0u64);
            for _ in 0..window {
                client::feed_text(&mut ws, client::send_frame(&room, 0)).await?;
                pending.push_back(now_ns());
            }
            futures_util::SinkExt::flush(&mut ws).await?;
            while !pending.is_empty() {
                let text = client::recv(&mut ws, "ack").await?;
                let ty = frame_type(&text);
                if ty != "ack" && ty != "error" {
                    continue;
                }
                let sent = pending.pop_front().unwrap_or(0);
                if Instant::now() < stop {
                    if ty == "ack" {
                        lat.push(now_ns() - sent);
                    } else {
                        errors += 1;
                    }
                    client::send_text(&mut ws, client::send_frame(&room, 0)).await?;
                    pending.push_back(now_ns());
                }
            }
            Ok::<_, anyhow::Error>((room, ws, lat, errors))
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (room, ws, l, e) = t.await??;
        lat.extend(l);
        errors += e;
        fleet.push((room, ws));
    }
    let cpu = cpu_us(server, cpu0);
    if errors > 0 {
        bail!("{errors} sends were refused");
    }
    let n = lat.len() as f64;
    Ok(Durable {
        msgs_per_s: n / secs,
        cpu_us_per_msg: cpu / n,
        p99_ms: ms(percentile(&mut lat, 0.99)),
    })
}

/// Rows per transaction of the storage floor: natter's default batch.
const FLOOR_BATCH: usize = 1024;
/// Rows per INSERT statement of the storage floor.
const FLOOR_ROWS: usize = 256;

const EVENTS_TABLE: &str = "CREATE TABLE events (
    room_id VARCHAR(64) NOT NULL, seq BIGINT NOT NULL, ts BIGINT NOT NULL,
    kind VARCHAR(32) NOT NULL, sender VARCHAR(128), client_id CHAR(36), body TEXT,
    PRIMARY KEY (room_id, seq), UNIQUE (room_id, sender, client_id))";

/// The storage floor: rows of natter's event shape inserted straight into
/// a fresh database for `secs`, batched as well as a database allows:
/// `batch` rows per transaction, in multi-row INSERTs of [`FLOOR_ROWS`].
/// Rows per second.
async fn storage_floor(paths: &Paths, db: Db, batch: usize, secs: f64) -> Result<f64> {
    use sqlx::{Connection, Executor};
    let insert = format!(
        "INSERT INTO events (room_id, seq, ts, kind, sender, client_id, body) VALUES {}",
        vec!["(?, ?, ?, 'message', ?, ?, ?)"; FLOOR_ROWS].join(", ")
    );
    let stop = Instant::now() + Duration::from_secs_f64(secs);
    let t0 = Instant::now();
    let mut rows = 0u64;
    macro_rules! run {
        ($conn:expr, $query:path) => {{
            let conn = $conn;
            while Instant::now() < stop {
                let mut tx = conn.begin().await?;
                for _ in 0..batch.div_ceil(FLOOR_ROWS) {
                    let mut query = $query(sqlx::AssertSqlSafe(insert.as_str()));
                    for _ in 0..FLOOR_ROWS {
                        rows += 1;
                        query = query
                            .bind(format!("r{}", rows % 64))
                            .bind(rows as i64)
                            .bind(rows as i64)
                            .bind("floor")
                            .bind(client::client_id())
                            .bind(client::body(0));
                    }
                    query.execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
        }};
    }
    match db {
        Db::Sqlite => {
            let dir = paths.scratch.join(format!("floor_{}", client::client_id()));
            std::fs::create_dir_all(&dir)?;
            let url = format!("sqlite://{}?mode=rwc", dir.join("floor.db").display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await?;
            conn.execute("PRAGMA journal_mode = WAL").await?;
            conn.execute("PRAGMA synchronous = FULL").await?;
            conn.execute(EVENTS_TABLE).await?;
            run!(&mut conn, sqlx::query::<sqlx::Sqlite>);
            conn.close().await?;
            let _ = std::fs::remove_dir_all(dir);
        }
        Db::MariaDb => {
            let url = sys::fresh_mysql().await?;
            let mut conn = sqlx::MySqlConnection::connect(&url).await?;
            conn.execute(EVENTS_TABLE).await?;
            run!(&mut conn, sqlx::query::<sqlx::MySql>);
            conn.close().await?;
        }
    }
    Ok(rows as f64 / t0.elapsed().as_secs_f64())
}
