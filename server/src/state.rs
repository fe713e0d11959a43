//! The state every handler and connection shares; cheap to clone.

use crate::broker::Broker;
use crate::config::Config;
use crate::files::Files;
use crate::gate::Gate;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::reads::ReadMarkers;
use crate::store::Store;
use crate::store::writer::Writer;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Shared state, passed to the router with `with_state`: one pointer,
/// so that each connection keeps 8 bytes of it, not every handle.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] points to.
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Store,
    pub hub: Hub,
    /// Fan-out of committed events, new rooms and typing: to this node's
    /// hub, and to the other nodes when a broker is configured.
    pub broker: Broker,
    pub writer: Writer,
    /// Read markers on their way to the database.
    pub reads: ReadMarkers,
    /// Fires when the server shuts down; connections close on it.
    pub shutdown: CancellationToken,
    /// Tracks WebSocket connection tasks so shutdown can wait for them.
    pub connections: TaskTracker,
    /// Operational counters (`/metrics`).
    pub metrics: Arc<Metrics>,
    /// Where the bytes of uploaded files live.
    pub files: Files,
    /// Connection caps and rate limits.
    pub gate: Arc<Gate>,
    /// Wakes the webhook dispatcher when something was queued.
    pub webhooks: crate::webhooks::Wake,
    /// The admin panel's sign-in limits and live numbers.
    pub admin: Arc<crate::admin::Panel>,
}
