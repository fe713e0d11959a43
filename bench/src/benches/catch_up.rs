//! B7: history catch-up: one client syncs a room of many messages from
//! its start; messages per second, beside the read floor (the same rows
//! read straight from natter's database in natter's pages).

use super::{cpu_us, group, log_phases, post_bulk};
use crate::client;
use crate::log;
use crate::plan::{Plan, RUNS};
use crate::report::{Report, Row, med, set, why_start};
use crate::sys::{Endpoint, Kind, Server};
use anyhow::{Result, bail};
use std::time::Instant;

/// B7 on natter (SQLite) and node ws.
pub async fn run(plan: &Plan, natter: &Server, node: &Server, report: &mut Report) {
    let mut row = Row::new(
        "B7",
        format!(
            "history catch-up of {} msgs, SQLite: msgs/s",
            plan.history_msgs
        ),
        "≥0.8× floor",
    );
    for server in [natter, node] {
        let what = format!("B7 {}", server.ep.kind.label());
        log(&what);
        why_start();
        let result = async {
            let t0 = Instant::now();
            let setup = history_setup(&server.ep, plan.history_msgs).await?;
            let t1 = Instant::now();
            let mut runs = Vec::new();
            for _ in 0..RUNS {
                runs.push(catch_up(server, &setup).await?.0);
            }
            let mut floor = Vec::new();
            if let Some(url) = &server.database_url {
                for _ in 0..RUNS {
                    floor.push(read_floor(url, &setup).await?);
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

/// B7 on a natter serving MariaDB (started by B3).
pub async fn run_mariadb(plan: &Plan, natter: &Server, report: &mut Report) {
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
        let setup = history_setup(&natter.ep, plan.history_msgs_mariadb).await?;
        let (mut runs, mut floor) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            runs.push(catch_up(natter, &setup).await?.0);
            floor.push(
                read_floor(natter.database_url.as_deref().unwrap_or_default(), &setup).await?,
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

/// B7's room: `count` messages for one reader to catch up on.
struct History {
    room: String,
    base: u64,
    count: usize,
}

async fn history_setup(ep: &Endpoint, count: usize) -> Result<History> {
    let (room, base) = group(ep, "hist", &["reader".to_string(), "poster".to_string()]).await?;
    post_bulk(ep, "poster", std::slice::from_ref(&room), count, 8).await?;
    Ok(History { room, base, count })
}

/// B7: one client syncs from the start of the room and, on natter, reads
/// back what the sync left to `history`; events per second.
async fn catch_up(server: &Server, setup: &History) -> Result<(f64, f64)> {
    let (mut ws, hello) = client::login_hello(&server.ep, "reader").await?;
    let cpu0 = server.cpu();
    let t0 = Instant::now();
    let mut seqs = client::sync(&mut ws, &[(&setup.room, setup.base)]).await?;
    if server.ep.kind == Kind::Natter {
        // natter pages at most `max_catch_up_pages` in a sync; a client
        // further behind gets the latest page and reads the rest through
        // `history`, as far back as one request reaches.
        if let Some(&oldest) = seqs.iter().min() {
            let reach = client::history_reach(&hello)?;
            seqs.extend(client::history(&mut ws, &setup.room, oldest, reach).await?);
        }
        seqs.retain(|&s| s > setup.base);
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_us(server, cpu0);
    seqs.sort_unstable();
    seqs.dedup();
    if seqs.len() != setup.count {
        bail!("caught up {} events of {}", seqs.len(), setup.count);
    }
    Ok((seqs.len() as f64 / secs, cpu / seqs.len() as f64))
}

/// B7's floor: the same rows read straight from natter's database in pages
/// of 200 with natter's catch-up query, each value looked at but none
/// copied: SQLite through rusqlite (no worker thread, no channel per row),
/// MariaDB through sqlx. Rows per second.
async fn read_floor(database_url: &str, setup: &History) -> Result<f64> {
    use sqlx::Connection;
    let t0 = Instant::now();
    let rows = if let Some(path) = database_url.strip_prefix("sqlite://") {
        let path = path.split('?').next().unwrap_or(path).to_string();
        let (room, base) = (setup.room.clone(), setup.base as i64);
        tokio::task::spawn_blocking(move || read_floor_sqlite(&path, &room, base)).await??
    } else {
        let query = "SELECT room_id, seq, ts, kind, sender, client_id, body, subject FROM events WHERE room_id = ? AND seq > ? ORDER BY seq LIMIT 200";
        let mut conn = sqlx::MySqlConnection::connect(database_url).await?;
        let mut rows = 0usize;
        let mut after = setup.base as i64;
        loop {
            let page = sqlx::query(query)
                .bind(&setup.room)
                .bind(after)
                .fetch_all(&mut conn)
                .await?;
            let Some(last) = page.last() else { break };
            after = sqlx::Row::try_get::<i64, _>(last, 1)?;
            rows += page.len();
        }
        rows
    };
    if rows != setup.count {
        bail!("read {rows} rows of {}", setup.count);
    }
    Ok(rows as f64 / t0.elapsed().as_secs_f64())
}

fn read_floor_sqlite(path: &str, room: &str, base: i64) -> Result<usize> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.execute_batch("PRAGMA mmap_size = 268435456; PRAGMA cache_size = -16384;")?;
    let mut stmt = conn.prepare("SELECT room_id, seq, ts, kind, sender, client_id, body, subject FROM events WHERE room_id = ?1 AND seq > ?2 ORDER BY seq LIMIT 200")?;
    let (mut total, mut after) = (0usize, base);
    loop {
        let mut rows = stmt.query(rusqlite::params![room, after])?;
        let mut n = 0usize;
        let mut bytes = 0usize;
        while let Some(row) = rows.next()? {
            for i in 0..8 {
                if let Ok(rusqlite::types::ValueRef::Text(t)) = row.get_ref(i) {
                    bytes += t.len();
                }
            }
            after = row.get(1)?;
            n += 1;
        }
        std::hint::black_box(bytes);
        if n == 0 {
            return Ok(total);
        }
        total += n;
    }
}
