//! The audit log through the API: every moderation and configuration
//! change made on the site's behalf, newest first. [`record`] is what the
//! handlers call once a change is made.

use super::ApiSite;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use natter_shared::SiteId;
use natter_shared::api::{AuditLog, ErrorBody};
use serde::Deserialize;

/// The actor of changes made with the site's API key.
pub const API_ACTOR: &str = "api";

/// Most entries one page holds.
const MAX_PAGE: u32 = 500;

/// Records a change the API made. The change itself stands whatever
/// happens here: a failure to record it is logged, not answered.
pub(super) async fn record(
    state: &AppState,
    site: &SiteId,
    action: &str,
    subject: &str,
    detail: Option<&str>,
) {
    crate::moderation::record(&state.store, site, API_ACTOR, action, subject, detail).await;
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    limit: Option<u32>,
    before: Option<u64>,
}

#[utoipa::path(get, path = "/audit", tag = "moderation", params(("limit" = Option<u32>, Query, description = "1 to 500, 100 unless given"), ("before" = Option<u64>, Query, description = "The entry id the page starts before")), responses((status = 200, description = "The log, newest first", body = AuditLog), (status = 400, description = "A limit out of range", body = ErrorBody)))]
/// `GET /api/v1/audit?limit=&before=`.
pub(super) async fn list(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditLog>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!("limit: 1 to {MAX_PAGE}")));
    }
    let (entries, more) = state.store.audit_log(&site.id, query.before, limit).await?;
    let next = more.then(|| entries.last().map(|e| e.id)).flatten();
    Ok(Json(AuditLog { entries, next }))
}
