//! The figures and how they are written: a table row per metric with
//! natter's figure beside each peer's, the notes saying why anything went
//! missing, and the section of BENCHMARKS.md a run replaces.

use crate::benches;
use crate::client;
use crate::log;
use crate::plan::{Plan, RUNS};
use crate::sys::Kind;
use anyhow::{Context, Result};
use std::path::Path;
use std::time::Instant;

/// The median of the runs of one field.
pub fn med<T>(runs: &[T], f: impl Fn(&T) -> f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(f).filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One line of the table: natter's figure and each peer's.
pub struct Row {
    pub id: &'static str,
    pub metric: String,
    pub target: &'static str,
    pub natter: f64,
    pub node: f64,
    pub nchan: f64,
    pub floor: f64,
}

impl Row {
    pub fn new(id: &'static str, metric: impl Into<String>, target: &'static str) -> Row {
        Row {
            id,
            metric: metric.into(),
            target,
            natter: f64::NAN,
            node: f64::NAN,
            nchan: f64::NAN,
            floor: f64::NAN,
        }
    }
}

/// Puts a figure in the column of the server it was measured on.
pub fn set(row: &mut Row, kind: Kind, v: f64) {
    match kind {
        Kind::Natter => row.natter = v,
        Kind::Node => row.node = v,
        Kind::Nchan => row.nchan = v,
    }
}

/// A figure as the table shows it: thousands separated, few decimals.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    if a >= 10_000.0 {
        let s = format!("{:.0}", v);
        let mut out = String::new();
        for (i, c) in s.chars().enumerate() {
            if i > 0 && (s.len() - i) % 3 == 0 && c.is_ascii_digit() {
                out.push(',');
            }
            out.push(c);
        }
        out
    } else if a >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// One figure over another, or a dash.
pub fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b != 0.0 {
        format!("{:.2}", a / b)
    } else {
        "—".into()
    }
}

/// What a run found: the table, the growth lines and the notes.
pub struct Report {
    pub rows: Vec<Row>,
    pub growth: Vec<String>,
    pub notes: Vec<String>,
    /// Seconds each step took, in order.
    pub laps: Vec<(&'static str, f64)>,
}

impl Report {
    /// A figure could not be measured; says why, with what the clients
    /// counted since [`why_start`].
    pub fn fail(&mut self, what: &str, err: anyhow::Error) {
        log(format!("{what} failed: {err:#}"));
        let why = client::take_why();
        let mut note = format!("{what}: not measured ({err:#})");
        if !why.is_empty() {
            note.push_str(&format!("; why: {}", why.line()));
        }
        self.notes.push(note);
    }

    /// Ends the count of one benchmark on one server: a note when
    /// something went missing (`lost`) or the clients counted a reason.
    pub fn why(&mut self, what: &str, lost: Option<String>) {
        let why = client::take_why();
        let note = match lost {
            Some(lost) => format!("{what}: {lost}; why: {}", why.line()),
            None if !why.is_empty() => format!("{what}: nothing lost; counted {}", why.line()),
            None => return,
        };
        log(&note);
        self.notes.push(note);
    }

    /// Records how long a step took since `t0`.
    pub fn lap(&mut self, name: &'static str, t0: Instant) {
        let secs = t0.elapsed().as_secs_f64();
        log(format!("{name} done in {secs:.0} s"));
        self.laps.push((name, secs));
    }
}

/// Starts counting why things go missing for one benchmark on one server.
pub fn why_start() {
    drop(client::take_why());
}

/// The variant's section of BENCHMARKS.md.
pub fn render(plan: &Plan, machine: &str, write_us: f64, took: f64, report: &Report) -> String {
    let mut s = String::new();
    s.push_str(&format!("### `{}` variant\n\n", plan.name));
    let laps: Vec<String> = report
        .laps
        .iter()
        .map(|(name, secs)| format!("{name} {secs:.0} s"))
        .collect();
    s.push_str(&format!(
        "Machine: {machine}. Took {took:.0} s (building natter and installing peers not counted; {}). Median of {RUNS} runs unless said otherwise.\n",
        laps.join(", ")
    ));
    s.push_str(&format!("Kernel floor measured in this run: {write_us:.2} µs CPU per 64-byte `write()` to loopback.\n"));
    s.push_str(&format!(
        "Receivers on natter and node ws (B2, B4, B5) act as a client would: told to `resync` (or seeing a live event skip a seq) they `sync` again from the last seq they hold; the catch-up's messages count as delivered, with their latency. What has not arrived {:.0} s (B2) or {:.0} s (B4) after the last send was due is lost. Notes say why anything went missing, as the clients counted it per benchmark and server: `resync` frames, `error` frames by code, refused handshakes, closes by the server (code), clients that timed out waiting (for what).\n\n",
        benches::relay::GRACE_B2,
        benches::fanout::GRACE_B4
    ));
    s.push_str("| # | metric | target | natter | node ws | nchan | floor | natter ÷ node | natter ÷ nchan | natter ÷ floor |\n");
    s.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in &report.rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.id,
            r.metric,
            r.target,
            num(r.natter),
            num(r.node),
            num(r.nchan),
            num(r.floor),
            ratio(r.natter, r.node),
            ratio(r.natter, r.nchan),
            ratio(r.natter, r.floor)
        ));
    }
    s.push_str("\nHow cost grows (one run each, fresh servers):\n\n");
    for l in &report.growth {
        s.push_str(l);
        s.push('\n');
    }
    if !report.notes.is_empty() {
        s.push_str("\nNotes from this run:\n\n");
        for n in &report.notes {
            s.push_str(&format!("- {n}\n"));
        }
    }
    s
}

/// Replaces this variant's section of the report (between its markers),
/// keeping the rest of the file.
pub fn write_section(path: &Path, name: &str, section: &str) -> Result<()> {
    let begin = format!("<!-- bench:{name}:begin -->");
    let end = format!("<!-- bench:{name}:end -->");
    let old = std::fs::read_to_string(path).unwrap_or_else(|_| "# Benchmarks\n".into());
    let block = format!("{begin}\n{section}{end}");
    let new = match (old.find(&begin), old.find(&end)) {
        (Some(a), Some(b)) if b > a => format!("{}{}{}", &old[..a], block, &old[b + end.len()..]),
        _ => format!("{}\n{block}\n", old.trim_end()),
    };
    std::fs::write(path, new).with_context(|| format!("writing {}", path.display()))
}
