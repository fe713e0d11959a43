//! The WebSocket endpoint and the connection loop.
//!
//! Before the upgrade: the site must exist, the `Origin` must be one of
//! its registered origins (or the server's own), and the client must ask
//! for the `natter.v1` subprotocol. After it: the first frame must be
//! `auth` with a valid token; then one task per connection runs a
//! `select!` over the socket, the hub's queue, the commits of its sends,
//! a heartbeat and shutdown.
//!
//! Each connection remembers the last seq it delivered per room, so what
//! it sends is gap-free and in order: an event that is already delivered
//! is skipped, and one that arrives past a gap is preceded by the missing
//! events read from the store.

use crate::auth::{self, Identity};
use crate::error::{ApiError, store_error_parts};
use crate::hub::{Delivery, Published, Registration};
use crate::metrics::{self, Metrics};
use crate::state::AppState;
use crate::store::writer::{WriteOp, Written};
use crate::store::{Site, StoreError};
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{FuturesOrdered, SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use natter_shared::protocol::{DecodeError, check_body};
use natter_shared::{
    ClientFrame, ClientId, Cursor, ErrorCode, Event, Limits, PROTOCOL, RoomId, Seq, ServerFrame,
    SiteId,
};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::{Instant, MissedTickBehavior};

/// Close codes beyond the standard ones.
pub mod close {
    /// Heartbeat timeout: nothing heard for two intervals.
    pub const HEARTBEAT: u16 = 4000;
    /// Authentication refused; the reason is the error code.
    pub const AUTH: u16 = 4001;
    /// No `auth` frame in time.
    pub const AUTH_TIMEOUT: u16 = 4002;
    /// Message too big (standard).
    pub const TOO_BIG: u16 = 1009;
    /// Server going away (standard).
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error (standard).
    pub const PROTOCOL: u16 = 1002;
}

/// Bytes a connection reads at a time.
const READ_BUFFER: usize = 4 * 1024;

/// `?site=` of `/ws`.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    site: Option<String>,
}

/// `GET /ws?site=SITE`: checks site, origin and subprotocol, then upgrades.
pub async fn handler(
    State(state): State<AppState>,
    Query(query): Query<WsQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let open = state.metrics.connections_open.load(Ordering::Relaxed);
    if open >= state.config.limits.max_connections as u64 {
        metrics::inc(&state.metrics.connections_refused);
        return ApiError::client(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyRequests,
            "the server is at its connection limit; retry later",
        )
        .into_response();
    }
    match accept(&state, query, &headers).await {
        Ok(site) => {
            let upgrade = match upgrade {
                Ok(u) => u,
                Err(rej) => {
                    return ApiError::client(
                        rej.status(),
                        ErrorCode::InvalidInput,
                        rej.body_text(),
                    )
                    .into_response();
                }
            };
            let limit = state.config.limits.max_frame_bytes;
            let tracker = state.connections.clone();
            upgrade
                .protocols([PROTOCOL])
                .max_message_size(limit)
                .max_frame_size(limit)
                // A small read buffer keeps an idle connection cheap
                // (tungstenite reserves 128 KiB by default); larger frames
                // still arrive, in more reads. The write buffer grows only
                // while frames are fed between flushes.
                .read_buffer_size(READ_BUFFER)
                .on_upgrade(move |socket| tracker.track_future(run(socket, state, site)))
        }
        Err(err) => err.into_response(),
    }
}

async fn accept(state: &AppState, query: WsQuery, headers: &HeaderMap) -> Result<Site, ApiError> {
    let site_id = query
        .site
        .ok_or_else(|| ApiError::invalid("add ?site=SITE_ID to the WebSocket URL"))?;
    let site_id = SiteId::parse(site_id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let site = state.store.site(&site_id).await?.ok_or_else(|| {
        ApiError::client(
            StatusCode::NOT_FOUND,
            ErrorCode::UnknownSite,
            "no such site",
        )
    })?;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or_default();
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        if !origin_allowed(origin, host, &site.origins) {
            tracing::info!(site = %site.id, origin, "refused WebSocket from a foreign origin");
            return Err(ApiError::client(
                StatusCode::FORBIDDEN,
                ErrorCode::Unauthorized,
                format!("origin {origin} is not registered for this site"),
            ));
        }
    }
    let asks_v1 = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == PROTOCOL);
    if !asks_v1 {
        return Err(ApiError::invalid(format!(
            "ask for the WebSocket subprotocol {PROTOCOL}"
        )));
    }
    Ok(site)
}

/// An origin is allowed when the site registered it, or when it is the
/// chat server's own (the widget's iframe runs there).
pub fn origin_allowed(origin: &str, host: &str, registered: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    if registered.iter().any(|o| o.trim_end_matches('/') == origin) {
        return true;
    }
    let own = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    matches!(own, Some(h) if !host.is_empty() && h.eq_ignore_ascii_case(host))
}

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;
type Commit = Pin<Box<dyn Future<Output = (ClientId, RoomId, Result<Written, StoreError>)> + Send>>;

/// The connection ended (socket closed or failed); nothing more to send.
#[derive(Debug)]
struct Gone;

/// Counts a connection open for as long as it lives.
struct OpenConnection(Arc<Metrics>);

impl OpenConnection {
    fn new(metrics: Arc<Metrics>) -> Self {
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

async fn run(socket: WebSocket, state: AppState, site: Site) {
    let _open = OpenConnection::new(state.metrics.clone());
    let (mut sink, mut stream) = socket.split();
    let identity = match authenticate(&state, &site, &mut sink, &mut stream).await {
        Some(identity) => identity,
        None => {
            metrics::inc(&state.metrics.auth_failures);
            return;
        }
    };
    let conn = Conn::new(state, identity, sink);
    let span = tracing::info_span!("conn", conn = conn.reg.id, site = %conn.identity.site, user = %conn.identity.user);
    tracing::Instrument::instrument(conn.serve(stream), span).await;
}

/// Waits for the `auth` frame and verifies it; on refusal, says why and closes.
async fn authenticate(
    state: &AppState,
    site: &Site,
    sink: &mut Sink,
    stream: &mut Stream,
) -> Option<Identity> {
    let timeout = Duration::from_secs(state.config.limits.auth_timeout_secs);
    let deadline = Instant::now() + timeout;
    loop {
        let msg = tokio::select! {
            msg = tokio::time::timeout_at(deadline, stream.next()) => msg,
            _ = state.shutdown.cancelled() => {
                close_with(sink, close::GOING_AWAY, "server shutting down").await;
                return None;
            }
        };
        let text = match msg {
            Err(_) => {
                let frame = ServerFrame::error(ErrorCode::Unauthenticated, "no auth frame in time");
                let _ = send(sink, &frame).await; // closing anyway
                close_with(sink, close::AUTH_TIMEOUT, "auth_timeout").await;
                return None;
            }
            Ok(Some(Err(err))) => {
                if is_too_big(&err) {
                    close_with(sink, close::TOO_BIG, "message too big").await;
                }
                return None;
            }
            Ok(None) | Ok(Some(Ok(Message::Close(_)))) => return None,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Binary(_)))) => Utf8Bytes::from_static(""),
        };
        let refusal = match ClientFrame::decode(&text) {
            Ok(ClientFrame::Auth { token }) => {
                let now = crate::store::now_ms() / 1000;
                match auth::verify(&token, &site.id, &site.token_secret, now) {
                    Ok(identity) => {
                        let name = identity.name.as_deref();
                        if let Err(err) = state
                            .store
                            .ensure_user(&site.id, &identity.user, name)
                            .await
                        {
                            tracing::error!(error = %err, "could not record the user");
                            let frame = ServerFrame::error(ErrorCode::Internal, "internal error");
                            let _ = send(sink, &frame).await; // closing anyway
                            close_with(sink, 1011, "internal").await;
                            return None;
                        }
                        let hello = ServerFrame::Hello {
                            protocol: PROTOCOL.to_string(),
                            site: site.id.clone(),
                            user: identity.user.clone(),
                            name: identity.name.clone(),
                            limits: Limits {
                                max_frame_bytes: state.config.limits.max_frame_bytes,
                                max_body_bytes: state.config.limits.max_body_bytes,
                                page_size: state.config.limits.page_size,
                            },
                        };
                        return send(sink, &hello).await.ok().map(|_| identity);
                    }
                    Err(err) => (err.code(), err.to_string()),
                }
            }
            Ok(_) | Err(_) => (
                ErrorCode::Unauthenticated,
                "the first frame must be auth".to_string(),
            ),
        };
        tracing::info!(site = %site.id, code = refusal.0.as_str(), reason = %refusal.1, "refused a connection");
        let _ = send(sink, &ServerFrame::error(refusal.0, refusal.1)).await; // closing anyway
        close_with(sink, close::AUTH, refusal.0.as_str()).await;
        return None;
    }
}

async fn send(sink: &mut Sink, frame: &ServerFrame) -> Result<(), Gone> {
    let json = serde_json::to_string(frame).map_err(|_| Gone)?;
    sink.send(Message::Text(json.into()))
        .await
        .map_err(|_| Gone)
}

async fn close_with(sink: &mut Sink, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    // The peer may already be gone; there is nobody left to tell.
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}

/// True when a read error is a message over the size limit.
fn is_too_big(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// One authenticated connection.
struct Conn {
    state: AppState,
    identity: Identity,
    reg: Registration,
    sink: Sink,
    /// Last seq delivered per room the connection follows.
    sent: HashMap<RoomId, Seq>,
    /// Sends awaiting their commit, answered in order.
    commits: FuturesOrdered<Commit>,
}

impl Conn {
    fn new(state: AppState, identity: Identity, sink: Sink) -> Self {
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
            sent: HashMap::new(),
            commits: FuturesOrdered::new(),
        }
    }

    async fn serve(mut self, mut stream: Stream) {
        let heartbeat = Duration::from_secs(self.state.config.limits.heartbeat_secs.max(1));
        let mut tick = tokio::time::interval_at(Instant::now() + heartbeat, heartbeat);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let max_inflight = self.state.config.limits.max_inflight_sends.max(1);
        let signal = self.reg.signal.clone();
        let shutdown = self.state.shutdown.clone();
        let result: Result<(), Gone> = loop {
            let step = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.finish_commits().await;
                    close_with(&mut self.sink, close::GOING_AWAY, "server shutting down").await;
                    break Ok(());
                }
                _ = signal.wait() => self.resync().await,
                Some((client_id, room, result)) = self.commits.next(), if !self.commits.is_empty() => {
                    self.answer_commit(client_id, room, result).await
                }
                Some(delivery) = self.reg.rx.recv() => self.deliver_queued(delivery).await,
                msg = stream.next(), if self.commits.len() < max_inflight => {
                    last_heard = Instant::now();
                    match msg {
                        None | Some(Ok(Message::Close(_))) => break Ok(()),
                        Some(Err(err)) => {
                            if is_too_big(&err) {
                                tracing::info!("frame over the size limit; closing with 1009");
                                close_with(&mut self.sink, close::TOO_BIG, "message too big").await;
                            } else {
                                tracing::debug!(error = %err, "socket error");
                            }
                            break Ok(());
                        }
                        Some(Ok(Message::Text(text))) => self.on_text(&text).await,
                        Some(Ok(Message::Binary(_))) => {
                            self.send_error(ErrorCode::BadFrame, "binary frames are not part of the protocol; send JSON text").await
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    }
                }
                _ = tick.tick() => {
                    if last_heard.elapsed() > heartbeat * 2 {
                        tracing::info!("no traffic for two heartbeats; dropping the connection");
                        close_with(&mut self.sink, close::HEARTBEAT, "heartbeat timeout").await;
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

    async fn send(&mut self, frame: &ServerFrame) -> Result<(), Gone> {
        send(&mut self.sink, frame).await
    }

    /// Queues a ready frame without flushing: see [`Conn::deliver_queued`].
    async fn feed_raw(&mut self, frame: Utf8Bytes) -> Result<(), Gone> {
        self.sink.feed(Message::Text(frame)).await.map_err(|_| Gone)
    }

    /// Delivers what the hub queued: this delivery and whatever else is
    /// already waiting (up to a bound), written together and flushed once,
    /// so a busy room costs one `write()` for several frames.
    async fn deliver_queued(&mut self, first: Delivery) -> Result<(), Gone> {
        const BURST: usize = 64;
        self.deliver(first).await?;
        for _ in 1..BURST {
            match self.reg.rx.try_recv() {
                Ok(next) => self.deliver(next).await?,
                Err(_) => break,
            }
        }
        self.sink.flush().await.map_err(|_| Gone)
    }

    async fn send_error(
        &mut self,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Result<(), Gone> {
        self.send(&ServerFrame::error(code, message)).await
    }

    async fn on_text(&mut self, text: &str) -> Result<(), Gone> {
        let frame = match ClientFrame::decode(text) {
            Ok(frame) => frame,
            Err(err @ (DecodeError::UnknownType(_) | DecodeError::Malformed(_))) => {
                return self.send_error(err.code(), err.to_string()).await;
            }
        };
        match frame {
            ClientFrame::Auth { .. } => {
                self.send_error(ErrorCode::InvalidInput, "already authenticated")
                    .await
            }
            ClientFrame::Sync { cursors } => self.sync(cursors).await,
            ClientFrame::Send {
                client_id,
                room,
                body,
            } => self.submit(client_id, room, body).await,
            ClientFrame::History {
                room,
                before,
                limit,
            } => self.history(room, before, limit).await,
            ClientFrame::Typing { room } => {
                if self.sent.contains_key(&room) {
                    self.state.hub.typing(&room, &self.identity.user);
                    Ok(())
                } else {
                    self.room_error(
                        ErrorCode::NotMember,
                        "you are not a member of this room",
                        room,
                    )
                    .await
                }
            }
            ClientFrame::Ping { nonce } => self.send(&ServerFrame::Pong { nonce }).await,
        }
    }

    async fn room_error(
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
        })
        .await
    }

    /// A store failure on a request: tell the client, without details.
    async fn store_failed(&mut self, err: StoreError) -> Result<(), Gone> {
        let (_, code, message) = store_error_parts(&err);
        self.send_error(code, message).await
    }

    /// Catch-up: announce rooms, page what each gained since its cursor,
    /// then `synced`. Live events are subscribed to first, so none is
    /// missed; those already paged are skipped when they arrive.
    async fn sync(&mut self, cursors: Vec<Cursor>) -> Result<(), Gone> {
        if cursors.len() > natter_shared::limits::MAX_CURSORS {
            return self
                .send_error(
                    ErrorCode::InvalidInput,
                    format!(
                        "at most {} cursors per sync",
                        natter_shared::limits::MAX_CURSORS
                    ),
                )
                .await;
        }
        // Go live first (so a join or a new room during the sync reaches
        // this connection), then read the rooms and follow them, then read
        // the memberships again: a room left in between is dropped.
        self.sent.clear();
        self.state.hub.begin_sync(self.reg.id);
        let store = &self.state.store;
        let (site, user) = (&self.identity.site, &self.identity.user);
        let rooms = match store.rooms_for_user(site, user).await {
            Ok(rooms) => rooms,
            Err(err) => return self.store_failed(err).await,
        };
        self.state
            .hub
            .follow(self.reg.id, rooms.iter().map(|r| r.id.clone()));
        let still = match store.room_ids_for_user(site, user).await {
            Ok(ids) => ids,
            Err(err) => return self.store_failed(err).await,
        };
        let (rooms, gone): (Vec<_>, Vec<_>) =
            rooms.into_iter().partition(|r| still.contains(&r.id));
        for room in gone {
            self.state.hub.unfollow(self.reg.id, &room.id);
        }
        // Room -> its last seq when read: a cursor beyond it (a client that
        // kept a cache the server no longer has) is taken back to it, so
        // live events are not mistaken for ones already held.
        let member_of: HashMap<RoomId, Seq> =
            rooms.iter().map(|r| (r.id.clone(), r.last_seq)).collect();
        let room_ids: Vec<RoomId> = rooms.iter().map(|r| r.id.clone()).collect();
        self.send(&ServerFrame::Rooms { rooms }).await?;

        let mut known = HashSet::new();
        for cursor in cursors {
            let Some(&last_seq) = member_of.get(&cursor.room) else {
                self.room_error(
                    ErrorCode::NotMember,
                    "you are not a member of this room (or it does not exist)",
                    cursor.room,
                )
                .await?;
                continue;
            };
            if known.insert(cursor.room.clone()) {
                self.page_after(cursor.room, cursor.seq.min(last_seq))
                    .await?;
            }
        }
        let page = self.state.config.limits.page_size.max(1);
        for room in room_ids {
            if known.contains(&room) {
                continue;
            }
            let events = match self.state.store.events_before(&room, Seq::MAX, page).await {
                Ok(events) => events,
                Err(err) => return self.store_failed(err).await,
            };
            let last = events.last().map_or(0, |e| e.seq);
            self.sent.insert(room.clone(), last);
            self.send(&ServerFrame::Page {
                room,
                events,
                more: false,
            })
            .await?;
        }
        self.send(&ServerFrame::Synced {}).await
    }

    /// Sends every event after `cursor` in pages, and records the last.
    async fn page_after(&mut self, room: RoomId, cursor: Seq) -> Result<(), Gone> {
        let page = self.state.config.limits.page_size.max(1);
        let mut last = cursor;
        loop {
            // One extra row tells whether another page follows.
            let mut events = match self
                .state
                .store
                .events_after(&room, last, page.saturating_add(1))
                .await
            {
                Ok(events) => events,
                Err(err) => return self.store_failed(err).await,
            };
            let more = events.len() > page as usize;
            events.truncate(page as usize);
            if let Some(e) = events.last() {
                last = e.seq;
            }
            self.sent.insert(room.clone(), last);
            self.send(&ServerFrame::Page {
                room: room.clone(),
                events,
                more,
            })
            .await?;
            if !more {
                return Ok(());
            }
        }
    }

    async fn submit(
        &mut self,
        client_id: ClientId,
        room: RoomId,
        body: String,
    ) -> Result<(), Gone> {
        if let Err(err) = check_body(&body, self.state.config.limits.max_body_bytes) {
            return self
                .send(&ServerFrame::Error {
                    code: ErrorCode::BodyInvalid,
                    message: err.to_string(),
                    client_id: Some(client_id),
                    room: Some(room),
                })
                .await;
        }
        let op = WriteOp::Message {
            site: self.identity.site.clone(),
            room: room.clone(),
            sender: Some(self.identity.user.clone()),
            client_id: Some(client_id),
            body,
        };
        match self.state.writer.submit(op).await {
            Ok(rx) => {
                self.commits.push_back(Box::pin(
                    rx.map(move |r| (client_id, room, r.unwrap_or(Err(StoreError::Closed)))),
                ));
                Ok(())
            }
            Err(err) => self.answer_commit(client_id, room, Err(err)).await,
        }
    }

    async fn answer_commit(
        &mut self,
        client_id: ClientId,
        room: RoomId,
        result: Result<Written, StoreError>,
    ) -> Result<(), Gone> {
        let frame = match result {
            Ok(written) => ServerFrame::Ack {
                client_id,
                room,
                seq: written.event.seq,
                ts: written.event.ts,
            },
            Err(err) => {
                let (code, message) = match err {
                    // Another site's room and a missing room get the same
                    // answer as a room one is not in: nothing leaks.
                    StoreError::NotMember | StoreError::RoomNotFound => (
                        ErrorCode::NotMember,
                        "you are not a member of this room".to_string(),
                    ),
                    other => {
                        let (_, code, message) = store_error_parts(&other);
                        (code, message)
                    }
                };
                ServerFrame::Error {
                    code,
                    message,
                    client_id: Some(client_id),
                    room: Some(room),
                }
            }
        };
        self.send(&frame).await
    }

    /// On shutdown: answer the sends already submitted (the writer commits
    /// them before it stops), within a bound.
    async fn finish_commits(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(Some((client_id, room, result))) =
            tokio::time::timeout_at(deadline, self.commits.next()).await
        {
            if self.answer_commit(client_id, room, result).await.is_err() {
                return;
            }
        }
    }

    async fn history(&mut self, room: RoomId, before: Seq, limit: Option<u32>) -> Result<(), Gone> {
        let member = self
            .state
            .store
            .is_member(&self.identity.site, &room, &self.identity.user)
            .await;
        match member {
            Ok(true) => {}
            Ok(false) => {
                return self
                    .room_error(
                        ErrorCode::NotMember,
                        "you are not a member of this room",
                        room,
                    )
                    .await;
            }
            Err(err) => return self.store_failed(err).await,
        }
        let page = self.state.config.limits.page_size.max(1);
        let limit = limit.unwrap_or(page).clamp(1, page);
        let mut events = match self
            .state
            .store
            .events_before(&room, before, limit.saturating_add(1))
            .await
        {
            Ok(events) => events,
            Err(err) => return self.store_failed(err).await,
        };
        let more = events.len() > limit as usize;
        if more {
            events.remove(0);
        }
        self.send(&ServerFrame::History { room, events, more })
            .await
    }

    async fn deliver(&mut self, delivery: Delivery) -> Result<(), Gone> {
        match delivery {
            Delivery::Typing(frame) => self.feed_raw(frame).await,
            Delivery::NewRoom(room) => {
                if self.sent.contains_key(&room) {
                    return Ok(());
                }
                self.announce(&room).await?;
                self.sent.insert(room.clone(), 0);
                self.fill_gap(&room, Seq::MAX).await
            }
            Delivery::Event(published) => self.deliver_event(&published).await,
        }
    }

    async fn deliver_event(&mut self, p: &Published) -> Result<(), Gone> {
        let last = match self.sent.get(&p.room) {
            Some(&last) => last,
            None => {
                // A room this connection has not seen: it was just joined.
                self.announce(&p.room).await?;
                let last = p.seq.saturating_sub(1);
                self.sent.insert(p.room.clone(), last);
                last
            }
        };
        if p.seq <= last {
            return Ok(());
        }
        if p.seq > last.saturating_add(1) {
            self.fill_gap(&p.room, p.seq).await?;
        }
        self.feed_raw(p.frame.clone()).await?;
        self.sent.insert(p.room.clone(), p.seq);
        if let Some((user, false)) = &p.member
            && user == &self.identity.user
        {
            self.sent.remove(&p.room);
        }
        Ok(())
    }

    /// Sends a `rooms` frame for one room.
    async fn announce(&mut self, room: &RoomId) -> Result<(), Gone> {
        match self.state.store.room(&self.identity.site, room).await {
            Ok(Some(info)) => self.send(&ServerFrame::Rooms { rooms: vec![info] }).await,
            Ok(None) => Ok(()),
            Err(err) => self.store_failed(err).await,
        }
    }

    /// Sends the stored events between the last delivered one and `until`
    /// (exclusive), as live events.
    async fn fill_gap(&mut self, room: &RoomId, until: Seq) -> Result<(), Gone> {
        let page = self.state.config.limits.page_size.max(1);
        loop {
            let last = self.sent.get(room).copied().unwrap_or(0);
            if last.saturating_add(1) >= until {
                return Ok(());
            }
            let events: Vec<Event> = match self.state.store.events_after(room, last, page).await {
                Ok(events) => events.into_iter().filter(|e| e.seq < until).collect(),
                Err(err) => return self.store_failed(err).await,
            };
            let Some(newest) = events.last().map(|e| e.seq) else {
                return Ok(());
            };
            for event in events {
                self.send(&ServerFrame::Event { event }).await?;
            }
            self.sent.insert(room.clone(), newest);
        }
    }

    /// The queue overflowed: drop what is queued, stop following rooms,
    /// and ask the client to sync again from its cursors.
    async fn resync(&mut self) -> Result<(), Gone> {
        metrics::inc(&self.state.metrics.resyncs);
        while self.reg.rx.try_recv().is_ok() {}
        self.state.hub.unsubscribe_all(self.reg.id);
        self.sent.clear();
        tracing::info!("connection fell behind; told to resync");
        self.send(&ServerFrame::Resync {
            reason: format!(
                "more than {} live frames were waiting for this connection",
                self.state.config.limits.conn_queue
            ),
        })
        .await
    }
}
