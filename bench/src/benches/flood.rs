//! B12: one user floods `send` frames from several connections while
//! everyone else chats as in B5; the others' p99 latency with the flood
//! beside the same fleet's without it. The flooder's sends are held to
//! its rate (`too_many_requests`), never let through to crowd the others.

use super::chat_latency::{chat, chatters};
use super::{dialogs, log_phases};
use crate::client::{self, Next};
use crate::log;
use crate::plan::{Plan, RUNS};
use crate::report::{Report, Row, med, set, why_start};
use crate::sys::{self, Db, Kind, Paths, Server};
use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// The flooder's connections (the server takes 16 per user).
const FLOOD_CONNS: usize = 8;

/// The rates B12's natter keeps: its defaults (the other benchmarks turn
/// them off).
const RATES: [&str; 4] = ["--send-rate", "10", "--request-rate", "5"];

/// B12 on a natter of its own, with its default rates on (the peers have
/// no rate limits to compare).
pub async fn run(plan: &Plan, paths: &Paths, report: &mut Report) {
    let label = |when: &str| format!("{} conns × 1 msg/s, others' p99 ms {when}", plan.chat_conns);
    let mut quiet = Row::new("B12", label("without a flood"), "—");
    let mut flood = Row::new(
        "B12",
        label(&format!(
            "while one user floods sends on {FLOOD_CONNS} conns"
        )),
        "≤2× without",
    );
    why_start();
    let measured = match sys::start_natter_with(paths, Db::Sqlite, &RATES).await {
        Ok(natter) => on_server(plan, &natter).await,
        Err(e) => Err(e),
    };
    match measured {
        Ok(m) => {
            set(&mut quiet, Kind::Natter, m.quiet_p99);
            set(&mut flood, Kind::Natter, m.flood_p99);
            report.notes.push(format!(
                "B12 natter: others' p99 {:.2}× without the flood; the flooder wrote {} sends, \
                 {} were acknowledged and {} answered too_many_requests; {} of its connections \
                 were closed",
                m.flood_p99 / m.quiet_p99,
                m.written,
                m.acked,
                m.throttled,
                m.closed
            ));
            report.why("B12 natter", None);
        }
        Err(e) => report.fail("B12 natter", e),
    }
    report.rows.extend([quiet, flood]);
}

/// What B12 measured: medians of the runs, and the flood's counts.
struct Measured {
    quiet_p99: f64,
    flood_p99: f64,
    written: u64,
    acked: u64,
    throttled: u64,
    closed: u64,
}

async fn on_server(plan: &Plan, server: &Server) -> Result<Measured> {
    let what = "B12 natter";
    log(what);
    let t0 = Instant::now();
    let mut fleet = chatters(&server.ep, plan.chat_conns, "fl").await?;
    let (room, seq) = dialogs(&server.ep, "flood", 1)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no room for the flood"))?;
    let t1 = Instant::now();
    let mut quiet = Vec::new();
    for _ in 0..RUNS {
        quiet.push(chat(server, &mut fleet, plan.chat_secs).await?);
    }
    let counts = Arc::new(Counts::default());
    let mut floods = Vec::new();
    for _ in 0..FLOOD_CONNS {
        let mut ws = client::login(&server.ep, "flood0a").await?;
        client::sync(&mut ws, &[(&room, seq)]).await?;
        floods.push(tokio::spawn(flood(ws, room.clone(), counts.clone())));
    }
    // The flood is on before the first run starts.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut flooded = Vec::new();
    for _ in 0..RUNS {
        flooded.push(chat(server, &mut fleet, plan.chat_secs).await?);
    }
    counts.stop.store(true, Ordering::Relaxed);
    for f in floods {
        if tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .is_err()
        {
            log("B12: a flooding connection did not end within 10 s");
        }
    }
    log_phases(what, t0, t1);
    Ok(Measured {
        quiet_p99: med(&quiet, |r| r.p99_ms),
        flood_p99: med(&flooded, |r| r.p99_ms),
        written: counts.written.load(Ordering::Relaxed),
        acked: counts.acked.load(Ordering::Relaxed),
        throttled: counts.throttled.load(Ordering::Relaxed),
        closed: counts.closed.load(Ordering::Relaxed),
    })
}

#[derive(Default)]
struct Counts {
    stop: AtomicBool,
    written: AtomicU64,
    acked: AtomicU64,
    throttled: AtomicU64,
    closed: AtomicU64,
}

/// Writes `send` frames as fast as the connection takes them, reading
/// what comes back, until told to stop.
async fn flood(ws: client::Ws, room: String, counts: Arc<Counts>) {
    let (mut sink, mut stream) = ws.split();
    let writer = {
        let counts = counts.clone();
        async move {
            let mut tag = 0u64;
            while !counts.stop.load(Ordering::Relaxed) {
                let frame = client::send_frame(&room, u64::MAX - tag);
                let sent = tokio::time::timeout(
                    Duration::from_millis(200),
                    sink.send(Message::text(frame)),
                )
                .await;
                match sent {
                    Ok(Ok(())) => {
                        counts.written.fetch_add(1, Ordering::Relaxed);
                        tag += 1;
                    }
                    // The server reads on once the hold is over.
                    Err(_) => {}
                    Ok(Err(_)) => break,
                }
            }
            // The server may be holding the connection (not reading it):
            // closing waits only so long, then the socket is dropped.
            let _ = tokio::time::timeout(Duration::from_secs(2), sink.close()).await;
        }
    };
    let reader = async {
        // Once told to stop, what the server still answers to the backlog
        // is not read: the connection is dropped.
        while !counts.stop.load(Ordering::Relaxed) {
            let deadline = Instant::now() + Duration::from_millis(500);
            match client::next_text(&mut stream, deadline).await {
                Next::Text(t) => match client::frame_type(&t) {
                    "ack" => {
                        counts.acked.fetch_add(1, Ordering::Relaxed);
                    }
                    "error" if t.contains("too_many_requests") => {
                        counts.throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                },
                Next::TimedOut => {}
                Next::Ended(_) => {
                    if !counts.stop.load(Ordering::Relaxed) {
                        counts.closed.fetch_add(1, Ordering::Relaxed);
                    }
                    return;
                }
            }
        }
    };
    tokio::join!(writer, reader);
}
