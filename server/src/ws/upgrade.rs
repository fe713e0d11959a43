//! `GET /ws?site=SITE`: the checks made before a connection is upgraded,
//! each refused with an HTTP status and a JSON error body.

use crate::error::ApiError;
use crate::gate::{Held, Rate};
use crate::metrics;
use crate::serve::Peer;
use crate::state::AppState;
use crate::store::Site;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use natter_shared::{ErrorCode, PROTOCOL, SiteId};
use serde::Deserialize;
use std::sync::atomic::Ordering;

/// Bytes a connection reads at a time: client frames are small, and an
/// idle connection keeps this buffer (4 KiB cost 3 KiB more per idle
/// connection in B1).
const READ_BUFFER: usize = 512;

/// `?site=` of `/ws`.
#[derive(Debug, Deserialize)]
pub struct WsQuery {
    site: Option<String>,
}

/// `GET /ws?site=SITE`: checks site, origin and subprotocol, then upgrades.
pub async fn handler(
    State(state): State<AppState>,
    Query(query): Query<WsQuery>,
    Peer(peer): Peer,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
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
    let held = match admit_address(&state, &headers, peer) {
        Ok(held) => held,
        Err(refusal) => {
            metrics::inc(&state.metrics.connections_refused);
            return refusal.into_response();
        }
    };
    let site = match accept(&state, query, &headers).await {
        Ok(site) => site,
        Err(err) => return err.into_response(),
    };
    let upgrade = match upgrade {
        Ok(u) => u,
        Err(rej) => {
            return ApiError::client(rej.status(), ErrorCode::InvalidInput, rej.body_text())
                .into_response();
        }
    };
    let limit = state.config.limits.max_frame_bytes;
    let tracker = state.connections.clone();
    // Boxed: the upgrade's task keeps what its callback captured.
    let start = Box::new((state, site, held));
    upgrade
        .protocols([PROTOCOL])
        .max_message_size(limit)
        .max_frame_size(limit)
        // A small read buffer keeps an idle connection cheap (tungstenite
        // reserves 128 KiB by default); larger frames still arrive, in more
        // reads. The write buffer grows only while frames are fed between
        // flushes.
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| {
            let (state, site, held) = *start;
            let (sink, stream) = socket.split();
            let sink = super::Deadline::new(sink, state.config.guard.write_timeout_secs);
            tracker.track_future(super::serve(sink, stream, state, site, held))
        })
}

/// The limits per client address: new connections per second (each one
/// a sign-in) and connections held at once.
fn admit_address(
    state: &AppState,
    headers: &HeaderMap,
    peer: Option<std::net::SocketAddr>,
) -> Result<Option<Held>, ApiError> {
    let gate = &state.gate;
    let Some(ip) = gate.client_ip(headers, peer) else {
        return Ok(None);
    };
    if let Err(wait) = gate.take(Rate::Connects, gate.key(&ip)) {
        return Err(ApiError::too_many(
            wait,
            "too many new connections from this address",
        ));
    }
    match gate.hold_ip(ip) {
        Some(held) => Ok(Some(held)),
        None => Err(ApiError::client(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::TooManyConnections,
            format!("at most {} connections from one address", gate.max_per_ip()),
        )),
    }
}

async fn accept(state: &AppState, query: WsQuery, headers: &HeaderMap) -> Result<Site, ApiError> {
    let site_id = query
        .site
        .ok_or_else(|| ApiError::invalid("add ?site=SITE_ID to the WebSocket URL"))?;
    let site_id = SiteId::parse(site_id).map_err(|e| ApiError::invalid(e.to_string()))?;
    let site = state.store.site_cached(&site_id).await?.ok_or_else(|| {
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
        let own = Own::new(state.config.public_url.as_deref(), host);
        if !origin_allowed(origin, own, &site.origins) {
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

/// The server's own origin: the configured public URL, or else whatever
/// `Host` the request named.
#[derive(Debug, Clone, Copy)]
pub enum Own<'a> {
    /// `scheme://host[:port]` from `--public-url`.
    Public(&'a str),
    /// The request's `Host` header, with either scheme.
    Host(&'a str),
}

impl<'a> Own<'a> {
    pub fn new(public_url: Option<&'a str>, host: &'a str) -> Own<'a> {
        public_url.map_or(Own::Host(host), Own::Public)
    }
}

/// An origin is allowed when the site registered it, or when it is the
/// chat server's own (the widget's iframe runs there).
pub fn origin_allowed(origin: &str, own: Own<'_>, registered: &[String]) -> bool {
    let origin = origin.trim_end_matches('/');
    if registered.iter().any(|o| o.trim_end_matches('/') == origin) {
        return true;
    }
    match own {
        Own::Public(public) => origin.eq_ignore_ascii_case(public),
        Own::Host(host) => {
            let own = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            matches!(own, Some(h) if !host.is_empty() && h.eq_ignore_ascii_case(host))
        }
    }
}
