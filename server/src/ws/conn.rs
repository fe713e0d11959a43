//! One authenticated connection: its state, and the loop that serves it.
//!
//! The loop selects over shutdown, the hub's lag signal, the commits of
//! the client's sends (answered in order), the hub's queue, the socket
//! (read only while fewer than `max_inflight_sends` sends are waiting for
//! their commit) and a heartbeat. Either side ending ends both.

use super::{
    FrameSink, FrameStream, Gone, answer_close, close_for, close_with, pong, refuse, send_frame,
};
use crate::auth::Identity;
use crate::error::store_error_parts;
use crate::gate::Held;
use crate::hub::Registration;
use crate::maps::FastMap;
use crate::metrics::{self, Metrics};
use crate::presence::Key;
use crate::state::AppState;
use crate::store::writer::Written;
use crate::store::{Store, StoreError};
use axum::extract::ws::{Message, Utf8Bytes};
use futures_util::stream::FuturesOrdered;
use futures_util::{SinkExt, StreamExt};
use natter_shared::api::Settings;
use natter_shared::{
    ClientFrame, ClientId, ErrorCode, RoomId, RoomKind, Seq, ServerFrame, SiteId, close,
};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};

/// A send's commit, decided: who asked, where, and the outcome.
pub(super) type Committed = (ClientId, RoomId, Result<Written, StoreError>);

/// A send waiting for its commit.
pub(super) type Commit = Pin<Box<dyn Future<Output = Committed> + Send>>;

/// Sends awaiting their commit, answered in order. The set is made on a
/// send and dropped once every send is answered: an idle connection keeps
/// none (B1 in BENCHMARKS.md).
#[derive(Default)]
pub(super) struct Commits(Option<FuturesOrdered<Commit>>);

impl Commits {
    pub(super) fn push(&mut self, commit: Commit) {
        self.0
            .get_or_insert_with(FuturesOrdered::new)
            .push_back(commit);
    }

    pub(super) fn len(&self) -> usize {
        self.0.as_ref().map_or(0, FuturesOrdered::len)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the set is held (it is not while no send waits).
    #[cfg(test)]
    pub(super) fn holds_a_set(&self) -> bool {
        self.0.is_some()
    }

    /// The next send's outcome, in order; `None` when none waits.
    pub(super) async fn next(&mut self) -> Option<Committed> {
        let next = self.0.as_mut()?.next().await;
        if self.0.as_ref().is_some_and(FuturesOrdered::is_empty) {
            self.0 = None;
        }
        next
    }
}

/// Counts a connection open for as long as it lives.
pub(super) struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    pub(super) fn new(metrics: Arc<Metrics>) -> Self {
        metrics::inc(&metrics.connections_open);
        metrics::inc(&metrics.connections_total);
        OpenConnection(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::dec(&self.0.connections_open);
    }
}

/// One authenticated connection.
pub(super) struct Conn<S> {
    pub(super) state: AppState,
    pub(super) identity: Identity,
    pub(super) reg: Registration,
    pub(super) sink: S,
    /// Last seq delivered per room the connection follows.
    pub(super) sent: FastMap<RoomId, Seq>,
    /// Sends awaiting their commit, answered in order.
    pub(super) commits: Commits,
    /// What the site shows its people of each other.
    pub(super) settings: Settings,
    /// Per room the connection follows: its kind, and the user's read
    /// marker as this connection last knew it.
    pub(super) marks: FastMap<RoomId, (RoomKind, Seq)>,
    /// Set once the first sync made the user present; dropped with the
    /// connection.
    pub(super) here: Option<Here>,
    /// The user's key in the rate limits.
    pub(super) key: u64,
    /// A request over its rate, answered when the deadline passes; the
    /// socket is not read until then.
    pub(super) held: Option<Box<(ClientFrame, Instant)>>,
    /// When the client was told its token expired (Unix seconds).
    pub(super) told_expired: Option<i64>,
    /// Counts the connection open, and against its address's and its
    /// user's caps, until it is dropped.
    _counted: Counted,
}

/// What counts a connection while it lives.
pub(super) struct Counted {
    pub(super) _open: OpenConnection,
    pub(super) _address: Option<Held>,
    pub(super) _user: Held,
}

/// True when the site no longer exists: removed from the panel, the
/// command line or another node, it is seen at the connection's first
/// heartbeat after the site cache's TTL. A store that cannot answer keeps
/// the connection.
async fn site_removed(store: &Store, site: &SiteId) -> bool {
    matches!(store.site_exists_cached(site).await, Ok(false))
}

/// Where a connection's token stands, checked at each heartbeat.
enum TokenCheck {
    Valid,
    /// Expired just now: tell the client.
    Expired,
    /// Expired, told, and the grace period is over.
    Over,
}

/// A synced connection counted in its user's presence; its end is told
/// when it is dropped, however the connection ended.
pub(super) struct Here {
    state: AppState,
    key: Key,
}

impl Here {
    pub(super) fn new(state: AppState, key: Key, rooms: &[RoomId]) -> Here {
        state.broker.arrive(&key, rooms);
        Here { state, key }
    }
}

impl Drop for Here {
    fn drop(&mut self) {
        self.state.broker.depart(self.key.clone());
    }
}

impl<S: FrameSink> Conn<S> {
    pub(super) fn new(
        state: AppState,
        identity: Identity,
        settings: Settings,
        sink: S,
        key: u64,
        counted: Counted,
    ) -> Self {
        let reg = state.hub.register(
            identity.site.clone(),
            identity.user.clone(),
            state.config.limits.conn_queue,
        );
        Conn {
            state,
            identity,
            reg,
            sink,
            sent: FastMap::default(),
            commits: Commits::default(),
            settings,
            marks: FastMap::default(),
            here: None,
            key,
            held: None,
            told_expired: None,
            _counted: counted,
        }
    }

    /// Serves the connection until the client leaves, the socket fails,
    /// the heartbeat times out or the server shuts down.
    ///
    /// Not an `async fn`: one of those keeps a second copy of its
    /// arguments, and this future lives as long as the connection (B1).
    #[expect(
        clippy::manual_async_fn,
        reason = "an async fn would keep its arguments twice"
    )]
    pub(super) fn serve<R: FrameStream>(
        mut self,
        mut stream: R,
    ) -> impl Future<Output = ()> + Send {
        async move { self.run_loop(&mut stream).await }
    }

    async fn run_loop<R: FrameStream>(&mut self, stream: &mut R) {
        let heartbeat = Duration::from_secs(self.state.config.limits.heartbeat_secs.max(1));
        // The first beat between one and two intervals in, at random: the
        // connections made in one burst (a restart, a storm) then ping
        // spread over the interval, not all at once every interval.
        let first = heartbeat.mul_f64(1.0 + rand::random_range(0.0..1.0));
        let mut tick = tokio::time::interval_at(Instant::now() + first, heartbeat);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let max_inflight = self.state.config.limits.max_inflight_sends.max(1);
        let mailbox = self.reg.mailbox.clone();
        let shutdown = self.state.shutdown.clone();
        let result: Result<(), Gone> = loop {
            let step = tokio::select! {
                _ = shutdown.cancelled() => {
                    Box::pin(self.finish_commits()).await;
                    Box::pin(close_with(&mut self.sink, close::GOING_AWAY, "server shutting down")).await;
                    break Ok(());
                }
                _ = mailbox.signalled() => {
                    if mailbox.is_banned() {
                        tracing::info!(site = %self.identity.site, user = %self.identity.user, "the user was banned; closing");
                        let code = ErrorCode::Banned;
                        Box::pin(refuse(&mut self.sink, code, super::BANNED, close::AUTH, code.as_str())).await;
                        break Ok(());
                    }
                    let reason = format!(
                        "more than {} live frames were waiting for this connection",
                        self.state.config.limits.conn_queue
                    );
                    Box::pin(self.resync(reason)).await
                }
                Some(committed) = self.commits.next(), if !self.commits.is_empty() => {
                    Box::pin(self.answer_ready_commits(committed)).await
                }
                delivery = mailbox.recv() => Box::pin(self.deliver_queued(delivery)).await,
                _ = tokio::time::sleep_until(self.held.as_ref().map_or(last_heard, |h| h.1)), if self.held.is_some() => {
                    match self.held.take() {
                        Some(held) => Box::pin(self.on_frame(held.0)).await,
                        None => Ok(()),
                    }
                }
                msg = stream.next(), if self.commits.len() < max_inflight && self.held.is_none() => {
                    last_heard = Instant::now();
                    match msg {
                        None => break Ok(()),
                        Some(Ok(Message::Close(_))) => {
                            Box::pin(answer_close(&mut self.sink)).await;
                            break Ok(());
                        }
                        Some(Err(err)) => {
                            Box::pin(close_for(&mut self.sink, &err, &self.identity.site, Some(&self.identity.user))).await;
                            break Ok(());
                        }
                        Some(Ok(Message::Text(text))) => Box::pin(self.on_text(&text)).await,
                        Some(Ok(Message::Binary(_))) => {
                            Box::pin(self.send_error(ErrorCode::BadFrame, "binary frames are not part of the protocol; send JSON text")).await
                        }
                        Some(Ok(Message::Ping(payload))) => Box::pin(pong(&mut self.sink, payload)).await,
                        Some(Ok(Message::Pong(_))) => Ok(()),
                    }
                }
                _ = tick.tick() => {
                    if last_heard.elapsed() > heartbeat * 2 {
                        tracing::info!(site = %self.identity.site, user = %self.identity.user, "no traffic for two heartbeats; dropping the connection");
                        Box::pin(close_with(&mut self.sink, close::HEARTBEAT, "heartbeat timeout")).await;
                        break Ok(());
                    }
                    match self.token_check() {
                        TokenCheck::Valid => {}
                        TokenCheck::Expired => {
                            let told = Box::pin(self.send_error(ErrorCode::TokenExpired, format!(
                                "the token expired; send auth with a fresh one within {} s",
                                self.state.config.guard.token_grace_secs
                            ))).await;
                            if let Err(gone) = told {
                                break Err(gone);
                            }
                        }
                        TokenCheck::Over => {
                            tracing::info!(site = %self.identity.site, user = %self.identity.user, "token expired and not renewed; closing");
                            let reason = ErrorCode::TokenExpired.as_str();
                            Box::pin(close_with(&mut self.sink, close::AUTH, reason)).await;
                            break Ok(());
                        }
                    }
                    // Boxed, as every future an event sets off: an idle
                    // connection keeps only the loop's own state (B1).
                    if Box::pin(site_removed(&self.state.store, &self.identity.site)).await {
                        tracing::info!(site = %self.identity.site, user = %self.identity.user, "the site was removed; closing");
                        let code = ErrorCode::UnknownSite;
                        Box::pin(refuse(&mut self.sink, code, "the site was removed", close::AUTH, code.as_str())).await;
                        break Ok(());
                    }
                    self.sink.send(Message::Ping(Default::default())).await.map_err(|_| Gone)
                }
            };
            if let Err(gone) = step {
                break Err(gone);
            }
        };
        tracing::debug!(ended_by_peer = result.is_err(), "connection closed");
    }

    /// Whether the token still holds: it expires at its `exp` (with the
    /// usual leeway); the client then has `--token-grace-secs` to renew it.
    fn token_check(&mut self) -> TokenCheck {
        let now = crate::store::now_ms() / 1000;
        if now <= self.identity.exp + crate::auth::LEEWAY_SECS {
            return TokenCheck::Valid;
        }
        let grace = i64::try_from(self.state.config.guard.token_grace_secs).unwrap_or(i64::MAX);
        match self.told_expired {
            None => {
                self.told_expired = Some(now);
                TokenCheck::Expired
            }
            Some(told) if now.saturating_sub(told) >= grace => TokenCheck::Over,
            Some(_) => TokenCheck::Valid,
        }
    }

    /// Sends one frame now.
    pub(super) async fn send(&mut self, frame: &ServerFrame) -> Result<(), Gone> {
        send_frame(&mut self.sink, frame).await
    }

    /// Queues a ready frame without flushing: see [`Conn::deliver_queued`].
    pub(super) async fn feed_raw(&mut self, frame: Utf8Bytes) -> Result<(), Gone> {
        self.sink.feed(Message::Text(frame)).await.map_err(|_| Gone)
    }

    pub(super) async fn send_error(
        &mut self,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Result<(), Gone> {
        self.send(&ServerFrame::error(code, message)).await
    }

    /// An error about one room.
    pub(super) async fn room_error(
        &mut self,
        code: ErrorCode,
        message: &str,
        room: RoomId,
    ) -> Result<(), Gone> {
        self.send(&ServerFrame::Error {
            code,
            message: message.to_string(),
            client_id: None,
            room: Some(room),
            retry_after_ms: None,
        })
        .await
    }

    /// `not_member` about a room the request named.
    pub(super) async fn not_member(&mut self, room: RoomId) -> Result<(), Gone> {
        self.room_error(
            ErrorCode::NotMember,
            "you are not a member of this room",
            room,
        )
        .await
    }

    /// A store failure on a request: tell the client, without details.
    pub(super) async fn store_failed(&mut self, err: StoreError) -> Result<(), Gone> {
        let (_, code, message) = store_error_parts(&err);
        self.send_error(code, message).await
    }

    /// The connection cannot go on gap-free (its queue overflowed, or a
    /// gap could not be read): drop what is queued, stop following rooms,
    /// and ask the client to sync again from its cursors.
    pub(super) async fn resync(&mut self, reason: String) -> Result<(), Gone> {
        metrics::inc(&self.state.metrics.resyncs);
        self.reg.mailbox.clear();
        self.state.hub.unsubscribe_all(self.reg.id);
        self.sent.clear();
        tracing::info!(site = %self.identity.site, user = %self.identity.user, %reason, "told to resync");
        self.send(&ServerFrame::Resync { reason }).await
    }
}
