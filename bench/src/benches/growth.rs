//! How cost grows, beside the table: memory and handshake CPU at more
//! idle connections (B1's measurement), CPU per delivery in rooms of other
//! sizes (B4's), one run each on fresh servers.

use super::{fanout, idle_connections, start};
use crate::log;
use crate::plan::Plan;
use crate::report::{Report, num, ratio, why_start};
use crate::sys::{Kind, Paths};

/// The growth table, natter beside node ws, into `report.growth`.
pub async fn run(plan: &Plan, paths: &Paths, report: &mut Report) {
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
            match idle_connections::once(paths, kind, n).await {
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
        let f = |r: &Option<idle_connections::Idle>, g: fn(&idle_connections::Idle) -> f64| {
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
                fanout::on_servers(&[&server], size, msgs, rate, 1).await
            }
            .await;
            match r {
                Ok(fanout::Spread {
                    per_cpu_s,
                    lost,
                    due,
                    ..
                }) => {
                    let lost = (lost > 0).then(|| format!("{lost} of {due} deliveries missing"));
                    report.why(&what, lost);
                    cells.push(1e6 / per_cpu_s);
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
