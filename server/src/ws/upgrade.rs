//! `GET /ws?site=SITE`: the checks made before a connection is upgraded,
//! each refused with an HTTP status and a JSON error body.

use crate::error::ApiError;
use crate::gate::{Held, Rate};
use crate::metrics;
use crate::serve::Peer;
use crate::state::AppState;
use crate::store::Site;
use axum::body::Body;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use hyper::upgrade::OnUpgrade;
use natter_shared::{ErrorCode, PROTOCOL, SiteId};
use serde::Deserialize;
use sha1::{Digest, Sha1};
use std::sync::atomic::Ordering;

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
    upgrade: Result<Upgrade, ApiError>,
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
        Err(err) => return err.into_response(),
    };
    let tracker = state.connections.clone();
    // Boxed: the connection's task keeps what it starts from until the
    // upgrade is done.
    let start = Box::new((state, site, held));
    let Upgrade { on_upgrade, key } = upgrade;
    tokio::spawn(tracker.track_future(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(err) => {
                tracing::debug!(error = %err, "the WebSocket upgrade failed");
                return;
            }
        };
        let (state, site, held) = *start;
        let limit = state.config.limits.max_frame_bytes;
        let Some((stream, sink)) = super::wire::split(upgraded, limit) else {
            tracing::error!("an upgraded connection that is not a TCP socket; dropped");
            return;
        };
        let sink = super::Deadline::new(
            sink,
            state.config.guard.write_timeout_secs,
            state.shutdown.clone(),
        );
        super::serve(sink, stream, state, site, held).await;
    }));
    switching_protocols(&key)
}

/// The answer that upgrades the connection, with the subprotocol.
fn switching_protocols(key: &HeaderValue) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(PROTOCOL),
    );
    if let Ok(accept) = HeaderValue::try_from(accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key` (RFC 6455
/// section 4.2.2).
fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// A request to upgrade to a WebSocket (HTTP/1.1): hyper's handle on the
/// connection, and the client's key.
pub struct Upgrade {
    on_upgrade: OnUpgrade,
    key: HeaderValue,
}

impl<S: Send + Sync> FromRequestParts<S> for Upgrade {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        if parts.method != Method::GET {
            return Err(ApiError::client(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::InvalidInput,
                "a WebSocket upgrade is a GET",
            ));
        }
        let headers = &parts.headers;
        if !has_token(headers, header::CONNECTION, "upgrade") {
            return Err(ApiError::invalid("the Connection header must say upgrade"));
        }
        if !has_token(headers, header::UPGRADE, "websocket") {
            return Err(ApiError::invalid("the Upgrade header must say websocket"));
        }
        if !has_token(headers, header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(ApiError::invalid("Sec-WebSocket-Version must be 13"));
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return Err(ApiError::invalid("the Sec-WebSocket-Key header is missing"));
        };
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err(ApiError::client(
                StatusCode::UPGRADE_REQUIRED,
                ErrorCode::InvalidInput,
                "this connection cannot be upgraded",
            ));
        };
        Ok(Upgrade { on_upgrade, key })
    }
}

/// The comma-separated values of a header, over all its lines, trimmed.
fn tokens(headers: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

/// True when a header's values hold `token` (in any case).
fn has_token(headers: &HeaderMap, name: HeaderName, token: &str) -> bool {
    tokens(headers, name).any(|v| v.eq_ignore_ascii_case(token))
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
    // Subprotocols are matched exactly (RFC 6455 section 4.1).
    if !tokens(headers, header::SEC_WEBSOCKET_PROTOCOL).any(|p| p == PROTOCOL) {
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_accept_key_is_the_rfcs() {
        // RFC 6455 section 1.3.
        assert_eq!(
            super::accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
