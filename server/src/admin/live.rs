//! Live numbers for the panel: this node's open connections and messages
//! per minute, sampled every [`EVERY`] for the last [`KEPT`] samples; and
//! every node's latest, which each node writes to the database as it
//! samples.

use super::AdminError;
use super::session::Viewer;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::NodeStats;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the numbers are sampled.
pub const EVERY: Duration = Duration::from_secs(10);

/// Samples kept: an hour.
const KEPT: usize = 360;

#[derive(Debug, Clone, Copy)]
struct Sample {
    at: i64,
    connections: u64,
    events: u64,
}

/// One point of the chart.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    pub connections: u64,
    /// Events committed per minute over the sample before.
    pub per_minute: f64,
}

/// What `GET /admin/live` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Numbers {
    /// This node's.
    pub connections: u64,
    pub per_minute: f64,
    pub points: Vec<Point>,
    /// Every node heard of in the last [`NODE_FRESH_MS`], this one
    /// included.
    pub nodes: Vec<NodeStats>,
}

/// A node not heard of for this long (ms) is not shown.
const NODE_FRESH_MS: i64 = 3 * 10_000;

/// The samples of this node.
#[derive(Default)]
pub struct Live {
    samples: Mutex<VecDeque<Sample>>,
}

impl Live {
    fn sample(&self, metrics: &Metrics) {
        let sample = Sample {
            at: crate::store::now_ms(),
            connections: metrics.connections_open.load(Ordering::Relaxed),
            events: metrics.events_committed.load(Ordering::Relaxed),
        };
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if samples.len() == KEPT {
            samples.pop_front();
        }
        samples.push_back(sample);
    }

    /// Events a minute between the last two samples (0 before there are
    /// two): what each tick writes, without the whole chart.
    fn latest_rate(&self) -> f64 {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let mut last = samples.iter().rev();
        match (last.next(), last.next()) {
            (Some(now), Some(before)) => rate(before, now),
            _ => 0.0,
        }
    }

    fn numbers(&self, metrics: &Metrics) -> Numbers {
        let samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        let points: Vec<Point> = samples
            .iter()
            .zip(samples.iter().skip(1))
            .map(|(before, now)| Point {
                at: now.at,
                connections: now.connections,
                per_minute: rate(before, now),
            })
            .collect();
        Numbers {
            connections: metrics.connections_open.load(Ordering::Relaxed),
            per_minute: points.last().map_or(0.0, |p| p.per_minute),
            points,
            nodes: Vec::new(),
        }
    }

    /// Samples every [`EVERY`] until `stop` fires, and writes this node's
    /// latest numbers (as `label`) for the other nodes' panels.
    pub async fn run(state: AppState, label: String, stop: CancellationToken) {
        let id = format!("n_{}", uuid::Uuid::new_v4().simple());
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    state.admin.live.sample(&state.metrics);
                    state.admin.sign_ins.prune();
                    let stats = NodeStats {
                        label: label.clone(),
                        connections: state.metrics.connections_open.load(Ordering::Relaxed),
                        per_minute: state.admin.live.latest_rate().round() as u64,
                        seen_at: crate::store::now_ms(),
                    };
                    if let Err(err) = state.store.put_node_stats(&id, &stats).await {
                        tracing::warn!(error = %err, "could not record this node's live numbers");
                    }
                }
            }
        }
    }
}

/// Events a minute between two samples.
fn rate(before: &Sample, now: &Sample) -> f64 {
    let ms = (now.at - before.at).max(1) as f64;
    now.events.saturating_sub(before.events) as f64 * 60_000.0 / ms
}

/// `GET /admin/live`: the numbers as JSON, for the chart (admins of every
/// site only: the numbers are the server's, not one site's).
pub async fn numbers(
    State(state): State<AppState>,
    viewer: Viewer,
) -> Result<Json<Numbers>, AdminError> {
    if viewer.admin.sites.is_some() {
        return Err(AdminError::NotFound);
    }
    let mut numbers = state.admin.live.numbers(&state.metrics);
    numbers.nodes = state
        .store
        .node_stats(crate::store::now_ms() - NODE_FRESH_MS)
        .await?;
    Ok(Json(numbers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_per_minute_between_samples() {
        let live = Live::default();
        let metrics = Metrics::default();
        live.sample(&metrics);
        metrics.events_committed.store(30, Ordering::Relaxed);
        metrics.connections_open.store(4, Ordering::Relaxed);
        {
            let mut samples = live.samples.lock().unwrap_or_else(PoisonError::into_inner);
            let first = samples[0];
            samples.push_back(Sample {
                at: first.at + 30_000,
                connections: 4,
                events: 30,
            });
        }
        let numbers = live.numbers(&metrics);
        assert_eq!(numbers.connections, 4);
        assert_eq!(numbers.points.len(), 1);
        assert!((numbers.per_minute - 60.0).abs() < 1e-9);
        assert!((live.latest_rate() - numbers.per_minute).abs() < 1e-9);
    }
}
