//! Operational counters, served at `GET /metrics` in the Prometheus text
//! format. Only aggregates: no site, room or user appears here.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters and gauges; shared through `Arc` in the state.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open WebSocket connections (upgraded, authenticated or not).
    pub connections_open: AtomicU64,
    /// WebSocket upgrades accepted since start.
    pub connections_total: AtomicU64,
    /// Connections refused at a cap: `--max-connections`, per address,
    /// per user, or new connections per second from one address.
    pub connections_refused: AtomicU64,
    /// Requests held back for being over a rate (sends, syncs, history,
    /// API calls).
    pub throttled: AtomicU64,
    /// Authentications refused (bad token, timeout, wrong first frame).
    pub auth_failures: AtomicU64,
    /// Events committed (messages, joins, leaves).
    pub events_committed: AtomicU64,
    /// Retried sends answered with the stored message.
    pub duplicates: AtomicU64,
    /// Group-commit transactions.
    pub commits: AtomicU64,
    /// Connections told to resync after falling behind.
    pub resyncs: AtomicU64,
    /// Times this node had all its connections resync because of the
    /// broker (its link came back, it fell behind, another node asked).
    pub broker_resyncs: AtomicU64,
    /// Messages for other nodes dropped: the queue to the broker was full.
    pub broker_dropped: AtomicU64,
    /// Rooms the sweep filled from the store: events the broker never brought.
    pub sweep_fills: AtomicU64,
    pub sweep_announcements: AtomicU64,
    /// Uploads announced (`POST /files`).
    pub uploads_started: AtomicU64,
    /// Upload bytes received (parts of uploads, before any check).
    pub upload_bytes_received: AtomicU64,
    /// Uploads refused once complete (type not allowed, unreadable image).
    pub uploads_refused: AtomicU64,
    /// Unfinished uploads deleted by the sweep.
    pub uploads_abandoned: AtomicU64,
    /// Files stored.
    pub files_stored: AtomicU64,
    /// Bytes of the files stored.
    pub file_bytes_stored: AtomicU64,
}

/// Bumps a counter by one.
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Lowers a gauge by one.
pub fn dec(gauge: &AtomicU64) {
    gauge.fetch_sub(1, Ordering::Relaxed);
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 19] = [
            (
                "natter_connections_open",
                "gauge",
                "Open WebSocket connections.",
                &self.connections_open,
            ),
            (
                "natter_connections_total",
                "counter",
                "WebSocket upgrades accepted.",
                &self.connections_total,
            ),
            (
                "natter_connections_refused_total",
                "counter",
                "Connections refused at a connection cap or rate.",
                &self.connections_refused,
            ),
            (
                "natter_throttled_total",
                "counter",
                "Requests held back or refused for being over a rate.",
                &self.throttled,
            ),
            (
                "natter_auth_failures_total",
                "counter",
                "Refused authentications.",
                &self.auth_failures,
            ),
            (
                "natter_events_committed_total",
                "counter",
                "Events committed.",
                &self.events_committed,
            ),
            (
                "natter_duplicate_sends_total",
                "counter",
                "Retried sends answered with the stored message.",
                &self.duplicates,
            ),
            (
                "natter_commits_total",
                "counter",
                "Group-commit transactions.",
                &self.commits,
            ),
            (
                "natter_resyncs_total",
                "counter",
                "Connections told to resync.",
                &self.resyncs,
            ),
            (
                "natter_broker_resyncs_total",
                "counter",
                "Times every connection was told to resync because of the broker.",
                &self.broker_resyncs,
            ),
            (
                "natter_broker_dropped_total",
                "counter",
                "Messages for other nodes dropped with the queue to the broker full.",
                &self.broker_dropped,
            ),
            (
                "natter_sweep_fills_total",
                "counter",
                "Rooms filled from the store by the sweep.",
                &self.sweep_fills,
            ),
            (
                "natter_sweep_announcements_total",
                "counter",
                "Rooms announced to a member by the sweep (the broker lost it).",
                &self.sweep_announcements,
            ),
            (
                "natter_uploads_started_total",
                "counter",
                "Uploads announced.",
                &self.uploads_started,
            ),
            (
                "natter_upload_bytes_received_total",
                "counter",
                "Bytes of uploads received.",
                &self.upload_bytes_received,
            ),
            (
                "natter_uploads_refused_total",
                "counter",
                "Complete uploads refused (type not allowed, unreadable image).",
                &self.uploads_refused,
            ),
            (
                "natter_uploads_abandoned_total",
                "counter",
                "Unfinished uploads deleted after their expiry.",
                &self.uploads_abandoned,
            ),
            (
                "natter_files_stored_total",
                "counter",
                "Files stored.",
                &self.files_stored,
            ),
            (
                "natter_file_bytes_stored_total",
                "counter",
                "Bytes of files stored.",
                &self.file_bytes_stored,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
        out
    }
}
