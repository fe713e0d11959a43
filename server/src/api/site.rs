//! The site itself, through the API: its name and allowed origins, and
//! replacing its token secret (with a grace period) and its API key, as
//! the admin panel and `natter site` do.

use super::audit::API_ACTOR;
use super::{ApiJson, ApiSite};
use crate::error::ApiError;
use crate::moderation;
use crate::state::AppState;
use crate::store::Site;
use axum::Json;
use axum::extract::State;
use natter_shared::api::{
    ErrorBody, NewApiKey, NewTokenSecret, RotateSecret, SiteChange, SiteInfo,
};

fn info(site: &Site) -> SiteInfo {
    let now = crate::store::now_ms() / 1000;
    SiteInfo {
        id: site.id.clone(),
        name: site.name.clone(),
        origins: site.origins.clone(),
        previous_secret_until: site
            .previous_secret
            .as_ref()
            .map(|(_, until)| *until)
            .filter(|until| *until > now),
    }
}

#[utoipa::path(get, path = "/site", tag = "site", responses((status = 200, description = "The site", body = SiteInfo)))]
/// `GET /api/v1/site`.
pub(super) async fn get(ApiSite(site): ApiSite) -> Json<SiteInfo> {
    Json(info(&site))
}

#[utoipa::path(patch, path = "/site", tag = "site", request_body = SiteChange, responses((status = 200, description = "The site as changed", body = SiteInfo), (status = 400, description = "A name or origin that cannot be", body = ErrorBody)))]
/// `PATCH /api/v1/site`: renames it and/or replaces its origins.
pub(super) async fn change(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    ApiJson(req): ApiJson<SiteChange>,
) -> Result<Json<SiteInfo>, ApiError> {
    let origins = req.origins.as_ref().map(|o| o.iter().map(String::as_str));
    moderation::change_site(&state, &site.id, req.name.as_deref(), origins, API_ACTOR).await?;
    let site = state
        .store
        .site(&site.id)
        .await?
        .ok_or(crate::store::StoreError::NotFound)?;
    Ok(Json(info(&site)))
}

#[utoipa::path(post, path = "/site/rotate-secret", tag = "site", request_body = RotateSecret, responses((status = 200, description = "The new token secret, shown only now", body = NewTokenSecret), (status = 400, description = "A grace out of range", body = ErrorBody)))]
/// `POST /api/v1/site/rotate-secret`: a new token secret; tokens signed
/// with the old one work for `grace_secs` more.
pub(super) async fn rotate_secret(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    ApiJson(req): ApiJson<RotateSecret>,
) -> Result<Json<NewTokenSecret>, ApiError> {
    let (secret, until) =
        moderation::rotate_secret(&state.store, &site.id, req.grace_secs, API_ACTOR).await?;
    Ok(Json(NewTokenSecret {
        token_secret: secret.expose().to_string(),
        previous_secret_until: until,
    }))
}

#[utoipa::path(post, path = "/site/rotate-key", tag = "site", responses((status = 200, description = "The new API key, shown only now; the one this call used stops working", body = NewApiKey)))]
/// `POST /api/v1/site/rotate-key`: a new API key at once.
pub(super) async fn rotate_key(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
) -> Result<Json<NewApiKey>, ApiError> {
    let key = moderation::rotate_key(&state.store, &site.id, API_ACTOR).await?;
    Ok(Json(NewApiKey {
        api_key: key.expose().to_string(),
    }))
}
