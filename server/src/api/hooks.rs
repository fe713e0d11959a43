//! A site's webhook endpoints, through the API: add, list, change,
//! delete, resume one that was paused, and read its delivery log.

use super::{ApiJson, ApiSite};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::StoreError;
use crate::webhooks::sign;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use natter_shared::api::ErrorBody;
use natter_shared::webhooks::{
    NewWebhook, Webhook, WebhookAttempts, WebhookChange, WebhookList, WebhookType,
};
use serde::Deserialize;

/// Most endpoints a site may have.
pub const MAX_WEBHOOKS: usize = 16;

/// Longest endpoint URL, in bytes.
const MAX_URL_BYTES: usize = 2048;

/// Most attempts one request of the log returns.
const MAX_ATTEMPTS_PAGE: u32 = 1000;

/// An endpoint URL: absolute http(s), with a host.
fn check_url(url: &str) -> Result<(), ApiError> {
    if url.len() > MAX_URL_BYTES {
        return Err(ApiError::invalid(format!(
            "url: at most {MAX_URL_BYTES} bytes"
        )));
    }
    let parsed = url::Url::parse(url).map_err(|e| ApiError::invalid(format!("url: {e}")))?;
    if !matches!(parsed.scheme(), "https" | "http") || parsed.host().is_none() {
        return Err(ApiError::invalid(
            "url: an absolute https:// (or http://) URL with a host",
        ));
    }
    Ok(())
}

/// The types' wire names, for the log.
fn names(types: &[WebhookType]) -> Vec<&'static str> {
    types.iter().map(|t| t.name()).collect()
}

/// At least one type, each once.
fn check_events(events: &[WebhookType]) -> Result<Vec<WebhookType>, ApiError> {
    let mut events = events.to_vec();
    events.sort_unstable();
    events.dedup();
    if events.is_empty() {
        let all: Vec<&str> = WebhookType::ALL.iter().map(|t| t.name()).collect();
        return Err(ApiError::invalid(format!(
            "events: at least one of {}",
            all.join(", ")
        )));
    }
    Ok(events)
}

/// `POST /api/v1/webhooks`: 201 with the endpoint and its secret.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks", request_body = NewWebhook, responses((status = 201, description = "The endpoint, with its signing secret", body = Webhook), (status = 400, description = "A bad URL or type, or too many endpoints", body = ErrorBody)))]
pub(super) async fn create(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    ApiJson(req): ApiJson<NewWebhook>,
) -> Result<(StatusCode, Json<Webhook>), ApiError> {
    check_url(&req.url)?;
    let events = check_events(&req.events)?;
    let webhook = state
        .store
        .create_webhook(
            &site.id,
            &req.url,
            &events,
            &sign::new_secret(),
            MAX_WEBHOOKS,
        )
        .await?;
    let detail = format!("{} {:?}", webhook.url, names(&webhook.events));
    super::audit::record(
        &state,
        &site.id,
        "webhook.create",
        &webhook.id,
        Some(&detail),
    )
    .await;
    tracing::info!(site = %site.id, webhook = %webhook.id, "webhook endpoint added");
    Ok((StatusCode::CREATED, Json(webhook)))
}

/// `GET /api/v1/webhooks`.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", responses((status = 200, description = "The site's endpoints", body = WebhookList)))]
pub(super) async fn list(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
) -> Result<Json<WebhookList>, ApiError> {
    let webhooks = state.store.webhooks(&site.id).await?;
    Ok(Json(WebhookList { webhooks }))
}

/// `GET /api/v1/webhooks/{id}`.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "Endpoint id")), responses((status = 200, description = "The endpoint", body = Webhook), (status = 404, description = "No such endpoint", body = ErrorBody)))]
pub(super) async fn get(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(id): Path<String>,
) -> Result<Json<Webhook>, ApiError> {
    let webhook = state.store.webhook(&site.id, &id).await?;
    webhook.map(Json).ok_or_else(|| StoreError::NotFound.into())
}

/// `PATCH /api/v1/webhooks/{id}`: a new URL and/or types.
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "Endpoint id")), request_body = WebhookChange, responses((status = 200, description = "The endpoint", body = Webhook), (status = 404, description = "No such endpoint", body = ErrorBody)))]
pub(super) async fn change(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<WebhookChange>,
) -> Result<Json<Webhook>, ApiError> {
    if let Some(url) = &req.url {
        check_url(url)?;
    }
    let events = req.events.as_deref().map(check_events).transpose()?;
    let webhook = state
        .store
        .update_webhook(&site.id, &id, req.url.as_deref(), events.as_deref())
        .await?;
    let detail = format!("{} {:?}", webhook.url, names(&webhook.events));
    super::audit::record(&state, &site.id, "webhook.change", &id, Some(&detail)).await;
    Ok(Json(webhook))
}

/// `DELETE /api/v1/webhooks/{id}`: with what waits for it.
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(("id" = String, Path, description = "Endpoint id")), responses((status = 204, description = "Deleted, with what waited for it"), (status = 404, description = "No such endpoint", body = ErrorBody)))]
pub(super) async fn remove(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.store.delete_webhook(&site.id, &id).await?;
    super::audit::record(&state, &site.id, "webhook.delete", &id, None).await;
    tracing::info!(site = %site.id, webhook = %id, "webhook endpoint deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/webhooks/{id}/resume`: delivers again, starting with
/// everything that waited while it was paused.
#[utoipa::path(post, path = "/webhooks/{id}/resume", tag = "webhooks", params(("id" = String, Path, description = "Endpoint id")), responses((status = 200, description = "The endpoint, active", body = Webhook), (status = 404, description = "No such endpoint", body = ErrorBody)))]
pub(super) async fn resume(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(id): Path<String>,
) -> Result<Json<Webhook>, ApiError> {
    let webhook =
        crate::moderation::resume_webhook(&state, &site.id, &id, super::audit::API_ACTOR).await?;
    tracing::info!(site = %site.id, webhook = %id, "webhook endpoint resumed");
    Ok(Json(webhook))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AttemptsQuery {
    limit: Option<u32>,
}

/// `GET /api/v1/webhooks/{id}/attempts?limit=N`: the latest attempts,
/// newest first (50 unless asked, at most 1000).
#[utoipa::path(get, path = "/webhooks/{id}/attempts", tag = "webhooks", params(("id" = String, Path, description = "Endpoint id"), ("limit" = Option<u32>, Query, description = "1 to 1000, 50 unless given")), responses((status = 200, description = "The latest attempts, newest first", body = WebhookAttempts), (status = 404, description = "No such endpoint", body = ErrorBody)))]
pub(super) async fn attempts(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(id): Path<String>,
    query: Result<Query<AttemptsQuery>, QueryRejection>,
) -> Result<Json<WebhookAttempts>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=MAX_ATTEMPTS_PAGE).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit: 1 to {MAX_ATTEMPTS_PAGE}"
        )));
    }
    let attempts = state.store.webhook_attempts(&site.id, &id, limit).await?;
    Ok(Json(WebhookAttempts { attempts }))
}
