//! The first frame: `auth` with a token the site signed. Accepted, the
//! user is recorded and greeted with `hello` (who they are, the limits);
//! refused, the client gets an error frame naming why, then a close.

use super::{
    BANNED, FrameSink, FrameStream, Gone, answer_close, close_for, close_with, pong, refuse,
    send_frame,
};
use crate::auth::{self, Identity};
use crate::gate::Held;
use crate::state::AppState;
use crate::store::{Site, Standing};
use axum::extract::ws::{Message, Utf8Bytes};
use futures_util::StreamExt;
use natter_shared::{ClientFrame, ErrorCode, Limits, PROTOCOL, ServerFrame, close};
use std::time::Duration;
use tokio::time::Instant;

/// Waits for the `auth` frame and verifies it; on refusal, says why and
/// closes. `None` when the connection is not to be served.
pub(super) async fn authenticate<S: FrameSink, R: FrameStream>(
    state: &AppState,
    site: &Site,
    sink: &mut S,
    stream: &mut R,
) -> Option<Admitted> {
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
                let (error, message) = (ErrorCode::Unauthenticated, "no auth frame in time");
                refuse(sink, error, message, close::AUTH_TIMEOUT, "auth_timeout").await;
                return None;
            }
            Ok(Some(Err(err))) => {
                close_for(sink, &err, &site.id, None).await;
                return None;
            }
            Ok(Some(Ok(Message::Close(_)))) => {
                answer_close(sink).await;
                return None;
            }
            Ok(None) => return None,
            Ok(Some(Ok(Message::Ping(payload)))) => match pong(sink, payload).await {
                Ok(()) => continue,
                Err(Gone) => return None,
            },
            Ok(Some(Ok(Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Binary(_)))) => Utf8Bytes::from_static(""),
        };
        let refusal = match ClientFrame::decode(&text) {
            Ok(ClientFrame::Auth { token }) => {
                let now = crate::store::now_ms() / 1000;
                match auth::verify_for(&token, site, now, state.config.guard.max_token_ttl_secs) {
                    Ok(identity) => return admit(state, site, sink, identity).await,
                    Err(err) => (err.code(), err.to_string()),
                }
            }
            Ok(_) | Err(_) => (
                ErrorCode::Unauthenticated,
                "the first frame must be auth".to_string(),
            ),
        };
        tracing::info!(site = %site.id, code = refusal.0.as_str(), reason = %refusal.1, "refused a connection");
        refuse(sink, refusal.0, refusal.1, close::AUTH, refusal.0.as_str()).await;
        return None;
    }
}

/// A verified user, counted against their cap of connections.
pub(super) struct Admitted {
    pub(super) identity: Identity,
    /// The user's key in the caps and rate limits.
    pub(super) key: u64,
    /// Counts the connection until it is dropped.
    pub(super) held: Held,
}

/// Counts the connection against the user's cap (refusing it at the cap),
/// then welcomes the user.
async fn admit<S: FrameSink>(
    state: &AppState,
    site: &Site,
    sink: &mut S,
    identity: Identity,
) -> Option<Admitted> {
    let key = state.gate.user_key(&identity.site, &identity.user);
    let Some(held) = state.gate.hold_user(key) else {
        let max = state.gate.max_per_user();
        tracing::info!(site = %site.id, user = %identity.user, max, "refused a connection over the per-user cap");
        crate::metrics::inc(&state.metrics.connections_refused);
        let code = ErrorCode::TooManyConnections;
        let message = format!("at most {max} connections per user");
        refuse(sink, code, message, close::TOO_MANY, code.as_str()).await;
        return None;
    };
    let identity = welcome(state, site, sink, identity).await?;
    Some(Admitted {
        identity,
        key,
        held,
    })
}

/// Records the verified user and says `hello`.
async fn welcome<S: FrameSink>(
    state: &AppState,
    site: &Site,
    sink: &mut S,
    identity: Identity,
) -> Option<Identity> {
    let name = identity.name.as_deref();
    match state
        .store
        .ensure_user(&site.id, &identity.user, name)
        .await
    {
        Ok(Standing::Welcome) => {}
        Ok(Standing::Banned) => {
            tracing::info!(site = %site.id, user = %identity.user, "refused a banned user");
            let code = ErrorCode::Banned;
            refuse(sink, code, BANNED, close::AUTH, code.as_str()).await;
            return None;
        }
        Err(err) => {
            tracing::error!(error = %err, "could not record the user");
            let code = ErrorCode::Internal;
            refuse(sink, code, "internal error", close::INTERNAL, "internal").await;
            return None;
        }
    }
    let hello = hello(state, site, &identity);
    send_frame(sink, &hello).await.ok().map(|_| identity)
}

/// `hello` for a verified user: who they are and the limits in force.
pub(super) fn hello(state: &AppState, site: &Site, identity: &Identity) -> ServerFrame {
    ServerFrame::Hello {
        protocol: PROTOCOL.to_string(),
        site: site.id.clone(),
        user: identity.user.clone(),
        name: identity.name.clone(),
        limits: Limits {
            max_frame_bytes: state.config.limits.max_frame_bytes,
            max_body_bytes: state.config.limits.max_body_bytes,
            page_size: state.config.limits.page_size,
            max_file_bytes: state.config.files.max_file_bytes,
            max_files_per_message: state.config.files.max_files_per_message,
            file_types: crate::files::site_types(state, site),
            members_listed: state.config.limits.members_listed,
            history_pages: state.config.limits.max_catch_up_pages.max(1),
        },
    }
}
