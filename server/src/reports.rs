//! `POST /reports`: a member reports someone else's message to the site's
//! moderators, from the widget (their token, with `X-Natter-Site`) or
//! through the site's backend (its API key, naming them in
//! `X-Natter-User`). The site reads reports at `GET /api/v1/reports`
//! and hears of each through its `message.reported` webhooks.

use crate::api::ApiJson;
use crate::error::ApiError;
use crate::files::auth::Caller;
use crate::gate::Rate;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use natter_shared::api::{NewReport, Report};
use natter_shared::text::clean_label;

/// The longest note a report may carry, in bytes.
pub const MAX_NOTE_BYTES: usize = 1000;

/// 201 with the report; 200 with the first one when this member reported
/// this message before.
pub async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    ApiJson(req): ApiJson<NewReport>,
) -> Result<(StatusCode, Json<Report>), ApiError> {
    let site = caller.site().clone();
    let reporter = caller.acting_user(&headers)?;
    // Reports count as a user's requests (like `history`).
    if let Err(wait) = state
        .gate
        .take(Rate::Requests, state.gate.user_key(&site.id, &reporter))
    {
        crate::metrics::inc(&state.metrics.throttled);
        return Err(ApiError::too_many(wait, "too many requests from this user"));
    }
    let note = match req.note.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
        None => None,
        Some(note) => Some(
            clean_label("note", note, MAX_NOTE_BYTES)
                .map_err(|e| ApiError::invalid(e.to_string()))?,
        ),
    };
    let (report, new) = state
        .store
        .report(&site.id, &req.room, req.seq, &reporter, note.as_deref())
        .await?;
    if !new {
        return Ok((StatusCode::OK, Json(report)));
    }
    state.webhooks.wake();
    tracing::info!(site = %site.id, room = %report.room, seq = report.seq, report = %report.id, "message reported");
    Ok((StatusCode::CREATED, Json(report)))
}
