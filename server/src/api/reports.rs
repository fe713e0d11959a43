//! Messages members reported from the widget, for the site's moderators:
//! listed newest first, and dismissed once dealt with.

use super::ApiSite;
use crate::error::ApiError;
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use natter_shared::api::{ErrorBody, ReportList};
use serde::Deserialize;

/// Most reports one page holds.
const MAX_PAGE: u32 = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportsQuery {
    limit: Option<u32>,
    before: Option<String>,
}

#[utoipa::path(get, path = "/reports", tag = "moderation", params(("limit" = Option<u32>, Query, description = "1 to 500, 100 unless given"), ("before" = Option<String>, Query, description = "The report id the page starts before")), responses((status = 200, description = "Reports, newest first", body = ReportList), (status = 400, description = "A limit out of range", body = ErrorBody)))]
/// `GET /api/v1/reports?limit=&before=`: the site's reports, newest first.
pub(super) async fn list(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    query: Result<Query<ReportsQuery>, QueryRejection>,
) -> Result<Json<ReportList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!("limit: 1 to {MAX_PAGE}")));
    }
    let (reports, more) = state
        .store
        .reports(&site.id, query.before.as_deref(), limit)
        .await?;
    let next = more.then(|| reports.last().map(|r| r.id.clone())).flatten();
    Ok(Json(ReportList { reports, next }))
}

#[utoipa::path(delete, path = "/reports/{id}", tag = "moderation", params(("id" = String, Path, description = "Report id")), responses((status = 204, description = "Dismissed"), (status = 404, description = "No such report", body = ErrorBody)))]
/// `DELETE /api/v1/reports/{id}`: the moderators dealt with it.
pub(super) async fn dismiss(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    crate::moderation::dismiss_report(&state, &site.id, &id, super::audit::API_ACTOR).await?;
    tracing::info!(site = %site.id, report = %id, "report dismissed");
    Ok(StatusCode::NO_CONTENT)
}
