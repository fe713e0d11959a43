//! Natter's chat server.
//!
//! A guided tour, in the order a message travels:
//!
//! - [`config`]: every option, as flags and environment variables.
//! - [`ws`]: the WebSocket endpoint — origin check, token auth, then one
//!   task per connection running catch-up, sends and live delivery.
//! - [`auth`]: the JWTs a site's backend signs, and API keys.
//! - [`store`]: persistence over SQLite or MySQL/MariaDB; its
//!   [`store::writer`] assigns each room's seqs and commits many writes per
//!   transaction (group commit), then publishes them.
//! - [`hub`]: local fan-out; each event is serialised once, queued for
//!   every connection following the room, and a connection that falls
//!   behind is told to resync instead of slowing the room.
//! - [`broker`]: fan-out across nodes (`--broker nats://…`): committed
//!   events, new rooms and typing reach the other nodes' hubs; the
//!   database stays the record, so whatever the broker drops is filled
//!   from it.
//! - [`presence`]: who is online, for the people who share a room.
//! - [`reports`]: messages members report to the site's moderators.
//! - [`reads`]: read markers, noted at once and written in batches.
//! - [`maps`]: the hash maps looked up on every frame.
//! - [`api`]: the HTTP API for the site's backend; [`error`] maps failures
//!   to JSON errors.
//! - [`webhooks`]: telling the site's backend what happened, signed,
//!   from an outbox the writer fills in the events' own transaction.
//! - [`widget`]: serving the widget app, framed only by the site's origins.
//! - [`demo`]: the demo site and page of `natter --demo`.
//!
//! [`App::build`] connects everything; [`App::run`] serves on a listener
//! until a shutdown future resolves, so tests run it on port 0.

pub mod admin;
pub mod api;
pub mod auth;
pub mod broker;
pub mod config;
pub mod demo;
pub mod error;
pub mod files;
pub mod gate;
pub mod hub;
pub mod maps;
pub mod metrics;
pub mod moderation;
pub mod presence;
pub mod reads;
pub mod reports;
pub mod serve;
pub mod session;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod webhooks;
pub mod widget;
pub mod ws;

use crate::broker::{Broker, BrokerError, BrokerTask};
use crate::config::Config;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::state::AppState;
use crate::store::writer::Writer;
use crate::store::{Store, StoreError};
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use natter_shared::{ErrorCode, Event, SiteId};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_http::trace::TraceLayer;

/// How long shutdown waits for the WebSocket connections to close.
const CLOSE_WAIT: Duration = Duration::from_secs(8);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not open the database {url}: {source}")]
    Store { url: String, source: StoreError },
    #[error("could not set up demo mode: {0}")]
    Demo(StoreError),
    #[error("could not write the demo conversation: {0}")]
    DemoSeed(String),
    #[error("could not set up the broker {url}: {source}")]
    Broker { url: String, source: BrokerError },
    #[error("could not open the file store: {0}")]
    Files(#[from] files::FilesError),
    #[error(transparent)]
    Webhooks(#[from] webhooks::WebhookError),
}

/// A built server: state plus the writer task and the broker link.
pub struct App {
    state: AppState,
    writer: JoinHandle<()>,
    writer_stop: CancellationToken,
    reads: JoinHandle<()>,
    reads_stop: CancellationToken,
    broker: Option<BrokerTask>,
    webhooks: JoinHandle<()>,
    webhooks_stop: CancellationToken,
    shell: Arc<widget::shell::Shell>,
}

/// How the admin panel names this node: its host's name and the address
/// it listens on.
fn node_label(addr: Option<std::net::SocketAddr>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".to_string());
    match addr {
        Some(addr) => format!("{host} {addr}"),
        None => host,
    }
}

impl App {
    /// Opens the store (running migrations), starts the writer, and sets
    /// up demo mode when asked.
    pub async fn build(config: Config) -> Result<App, StartError> {
        // The writers' connections come on top of the pool's readers.
        let pool = config.limits.db_pool + config.limits.writers;
        let store = Store::connect(&config.database_url, pool)
            .await
            .map_err(|source| StartError::Store {
                url: store::redact_url(&config.database_url),
                source,
            })?
            .with_members_listed(config.limits.members_listed)
            .with_sqlite_reads(config.limits.sqlite_reads);
        let new_lobby = if config.demo {
            demo::setup(&store, config.bind)
                .await
                .map_err(StartError::Demo)?
        } else {
            None
        };
        let hub = Hub::default();
        hub.set_typing_interval(Duration::from_millis(config.limits.typing_interval_ms));
        let metrics = Arc::new(metrics::Metrics::default());
        let grace = Duration::from_secs(config.people.presence_grace_secs);
        let (broker, broker_task) = match &config.broker {
            None => (Broker::local(hub.clone(), store.clone(), grace), None),
            Some(url) => {
                let sweep_every = Duration::from_secs(config.broker_sweep_secs.max(1));
                let prefix = &config.broker_subject_prefix;
                let (broker, task) = Broker::connect(
                    url,
                    prefix,
                    hub.clone(),
                    store.clone(),
                    grace,
                    sweep_every,
                    metrics.clone(),
                )
                .await
                .map_err(|source| StartError::Broker {
                    url: store::redact_url(url),
                    source,
                })?;
                (broker, Some(task))
            }
        };
        let webhooks_stop = CancellationToken::new();
        let (wake, webhooks_task) = webhooks::spawn(
            store.clone(),
            config.webhooks.clone(),
            webhooks_stop.clone(),
        )?;
        let writer_stop = CancellationToken::new();
        let publish = {
            let broker = broker.clone();
            let wake = wake.clone();
            move |site: &SiteId, event: &Event| {
                broker.event(site, event);
                wake.wake();
            }
        };
        let (writer, writer_task) = Writer::spawn(
            store.clone(),
            publish,
            metrics.clone(),
            config.limits.batch_max,
            config.limits.writers as usize,
            writer_stop.clone(),
        );
        let reads = reads::ReadMarkers::new(store.clone());
        let reads_stop = CancellationToken::new();
        let reads_task = reads.spawn(
            Duration::from_millis(config.people.read_flush_ms),
            reads_stop.clone(),
        );
        let files = match &config.files.files_url {
            Some(url) => files::Files::at_url(url)?,
            None => files::Files::in_dir(&config.files.files_dir)?,
        };
        let config_admin = config.admin.clone();
        let state = AppState::new(state::Shared {
            files,
            gate: gate::Gate::new(&config.guard),
            config: Arc::new(config),
            store,
            hub,
            broker,
            writer,
            reads,
            shutdown: CancellationToken::new(),
            connections: TaskTracker::new(),
            metrics,
            webhooks: wake,
            admin: Arc::new(admin::Panel::new(&config_admin)),
        });
        if let Some(lobby) = new_lobby {
            demo::seed(&state, lobby)
                .await
                .map_err(|e| StartError::DemoSeed(e.to_string()))?;
        }
        let shell = Arc::new(widget::shell::Shell::new(
            state.config.widget_dir.clone(),
            state.config.offline_after_ms,
        ));
        Ok(App {
            shell,
            state,
            writer: writer_task,
            writer_stop,
            reads: reads_task,
            reads_stop,
            broker: broker_task,
            webhooks: webhooks_task,
            webhooks_stop,
        })
    }

    /// The shared state (for tests and tools).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// All routes.
    pub fn router(&self) -> Router {
        let config = &self.state.config;
        // A request and its body within `--request-timeout-secs` (file
        // uploads, long by nature, and the socket are not bounded so).
        let deadline = || axum::middleware::from_fn_with_state(self.state.clone(), api::deadline);
        // What clients and sites' backends call: every refusal is JSON.
        let chat = Router::new()
            .route("/ws", get(ws::handler))
            .route("/session", get(session::check))
            .route(
                "/reports",
                axum::routing::post(reports::create)
                    .layer(DefaultBodyLimit::max(config.limits.max_request_bytes))
                    .layer(deadline()),
            )
            .merge(files::routes())
            .nest(
                "/api/v1",
                api::router()
                    .layer(DefaultBodyLimit::max(config.limits.max_request_bytes))
                    .layer(deadline()),
            )
            .layer(axum::middleware::from_fn(error::json_errors));
        let mut router = Router::new()
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics_text))
            .merge(chat)
            .merge(admin::router().layer(deadline()));
        if config.demo {
            router = router
                .route("/demo", get(demo::page))
                .route("/demo/token", get(demo::token));
        }
        router
            .with_state(self.state.clone())
            .merge(widget::routes(self.state.clone(), self.shell.clone()))
            .fallback(|| async {
                ApiError::client(StatusCode::NOT_FOUND, ErrorCode::NotFound, "not found")
            })
            .layer(TraceLayer::new_for_http())
    }

    /// Serves until `shutdown` resolves; then closes every WebSocket with
    /// 1001, lets the writes in flight commit, and closes the store.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = self.router();
        let sweep = files::spawn_sweep(self.state.clone());
        let stop = self.state.shutdown.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop.cancel();
        });
        let prune = tokio::spawn(
            self.state
                .gate
                .clone()
                .prune_every(Duration::from_secs(60), self.state.shutdown.clone()),
        );
        let label = node_label(listener.local_addr().ok());
        let live = tokio::spawn(admin::Live::run(
            self.state.clone(),
            label,
            self.state.shutdown.clone(),
        ));
        let header_timeout = Duration::from_secs(self.state.config.guard.header_timeout_secs);
        let served = serve::serve(
            listener,
            router,
            header_timeout,
            self.state.shutdown.clone(),
        )
        .await;
        let _ = prune.await; // it only ever returns
        let _ = live.await;
        // No new connections now; wait for the WebSocket tasks to close
        // (each answers the sends it took, for up to 5 s), but not for a
        // connection stuck writing to a client that stopped reading.
        self.state.shutdown.cancel();
        self.state.connections.close();
        if tokio::time::timeout(CLOSE_WAIT, self.state.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still writing to clients at shutdown were cut off");
        }
        if let Err(err) = sweep.await {
            tracing::error!(error = %err, "upload sweep failed");
        }
        // Write the read markers noted, then commit whatever writes are
        // still queued, and stop.
        self.reads_stop.cancel();
        if let Err(err) = self.reads.await {
            tracing::error!(error = %err, "read marker task failed");
        }
        self.writer_stop.cancel();
        if let Err(err) = self.writer.await {
            tracing::error!(error = %err, "writer task failed");
        }
        // Webhooks in flight are answered and recorded; the rest wait in
        // the outbox for the next start (or another node).
        self.webhooks_stop.cancel();
        if let Err(err) = self.webhooks.await {
            tracing::error!(error = %err, "webhook task failed");
        }
        // The last commits are published; hand them to the other nodes.
        if let Some(broker) = self.broker {
            broker.shutdown().await;
        }
        self.state.store.close().await;
        tracing::info!("stopped");
        served
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// 200 while the database answers, 503 when it does not (within the
/// store's ping timeout). A broker that is down does not make the node
/// unhealthy (it keeps serving its own connections and persisting), but
/// shows as `"broker": "down"`.
async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let (status, text) = if state.store.ping().await {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let mut body = serde_json::json!({ "status": text });
    if let Some(up) = state.broker.connected() {
        body["broker"] = serde_json::json!(if up { "up" } else { "down" });
    }
    (status, Json(body))
}
