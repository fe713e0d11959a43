//! `GET /session`: whether the server takes a user token now. The widget
//! asks before it shows what the browser keeps for the token's user when
//! it has not seen that token accepted before (the token's user is only
//! read, not verified, in the browser).

use crate::error::ApiError;
use crate::files::Caller;
use crate::gate::Rate;
use crate::serve::Peer;
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Json;
use natter_shared::ErrorCode;
use natter_shared::api::SessionInfo;

/// Answers 200 with the token's user, 401 for a token the site's secret
/// does not verify (or an expired one), 403 `banned` for a user the site
/// banned. Counts as a sign-in against the address's connect rate.
pub async fn check(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
) -> Result<Json<SessionInfo>, ApiError> {
    let gate = &state.gate;
    if let Some(ip) = gate.client_ip(&headers, peer)
        && let Err(wait) = gate.take(Rate::Connects, gate.key(&ip))
    {
        return Err(ApiError::too_many(
            wait,
            "too many sign-ins from this address",
        ));
    }
    let (site, user) = match Caller::from_headers(&state, &headers).await? {
        Caller::User { site, user } => (site, user),
        Caller::Backend { .. } => {
            return Err(ApiError::invalid(
                "send a user's token: an API key has no session",
            ));
        }
    };
    if state.store.is_banned(&site.id, &user).await? {
        return Err(ApiError::client(
            StatusCode::FORBIDDEN,
            ErrorCode::Banned,
            crate::ws::BANNED,
        ));
    }
    Ok(Json(SessionInfo { user }))
}
