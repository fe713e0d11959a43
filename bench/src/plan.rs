//! What a run measures and how much: the sizes and durations of each
//! benchmark, in a quick variant (a smoke test of the whole run) and a
//! full one (the figures of BENCHMARKS.md).

/// How many times each figure is measured; the report shows the median.
pub const RUNS: usize = 3;

/// Counts and durations of one variant.
pub struct Plan {
    pub name: &'static str,
    pub write_floor_n: usize,
    pub idle_n: usize,
    pub idle_growth: &'static [usize],
    pub relay_pairs: usize,
    pub relay_rate: f64,
    pub relay_secs: f64,
    pub durable_conns: usize,
    pub durable_window: usize,
    pub durable_secs: f64,
    pub fan_members: usize,
    pub fan_msgs: usize,
    pub fan_rate: f64,
    pub fan_growth: &'static [usize],
    pub fan_growth_deliveries: usize,
    pub chat_conns: usize,
    pub chat_secs: u64,
    pub storm_clients: usize,
    pub storm_parallel: usize,
    pub history_msgs: usize,
    pub history_msgs_mariadb: usize,
    /// B9: idle connections spread over three nodes.
    pub cluster_idle_n: usize,
    /// B11: connections, half of them sending `typing`, then `read`
    /// frames (each to the other half).
    pub read_conns: usize,
    /// B11: frames each sending connection sends per run.
    pub read_frames: usize,
    /// B11: pairs of runs (one typing, one read) measured.
    pub read_pairs: usize,
    /// B11: frames per sender of a first pair that is not counted (0:
    /// none).
    pub read_warm_up_frames: usize,
    /// B11: frames per second offered, all connections together: at most
    /// `read_conns / 2 / 2.5` so that each sender types less often than
    /// the server's typing interval (2 s) and no typing is dropped.
    pub read_rate: f64,
}

pub const QUICK: Plan = Plan {
    name: "quick",
    write_floor_n: 200_000,
    idle_n: 500,
    idle_growth: &[2000],
    relay_pairs: 50,
    relay_rate: 2000.0,
    relay_secs: 0.7,
    durable_conns: 32,
    durable_window: 16,
    durable_secs: 0.7,
    fan_members: 500,
    fan_msgs: 40,
    fan_rate: 40.0,
    fan_growth: &[10, 100],
    fan_growth_deliveries: 5_000,
    chat_conns: 1000,
    chat_secs: 1,
    storm_clients: 500,
    storm_parallel: 1000,
    history_msgs: 10_000,
    history_msgs_mariadb: 2000,
    cluster_idle_n: 1500,
    read_conns: 500,
    read_frames: 1,
    read_pairs: 1,
    read_warm_up_frames: 0,
    read_rate: 100.0,
};

/// About 10–11 minutes of measuring on the 2-core machine of BENCHMARKS.md
/// (the run of 2026-11-28, with longer windows, took 894 s). Estimated per
/// step from that run and the quick run's per-step times: floor 3 s, B1
/// 70 s, B2 35 s, B3 + B7 MariaDB 45 s, B4 60 s, B5 75 s, B6 300 s (of
/// which natter's set-up, 5,000 rooms and 250,000 posts, ~90 s), B7 10 s,
/// growth 55 s: ~650 s. The stderr log and the section's "Took" line give
/// the measured time of each step.
pub const FULL: Plan = Plan {
    name: "full",
    write_floor_n: 300_000,
    idle_n: 5000,
    idle_growth: &[1000, 10_000],
    relay_pairs: 200,
    relay_rate: 5000.0,
    relay_secs: 2.0,
    durable_conns: 64,
    durable_window: 16,
    durable_secs: 2.0,
    fan_members: 1000,
    fan_msgs: 150,
    fan_rate: 50.0,
    fan_growth: &[10, 100],
    fan_growth_deliveries: 50_000,
    chat_conns: 5000,
    chat_secs: 4,
    storm_clients: 10_000,
    storm_parallel: 1000,
    history_msgs: 50_000,
    history_msgs_mariadb: 10_000,
    cluster_idle_n: 45_000,
    read_conns: 5000,
    read_frames: 3,
    // Even: each server takes the read in half of them, so neither
    // decides the median.
    read_pairs: 12,
    read_warm_up_frames: 1,
    read_rate: 1000.0,
};
