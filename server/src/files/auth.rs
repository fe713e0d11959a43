//! Who asks for a file: a user, with a token their site signed (the site
//! named in `X-Natter-Site`: tokens never travel in URLs), or the site's
//! backend with its API key (`nk_…`), both as `Authorization: Bearer`.

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::Site;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use natter_shared::{ErrorCode, SiteId, UserId};

/// The header naming the site a user token was signed for.
pub const SITE_HEADER: &str = "x-natter-site";
/// The header a backend names the uploading user with.
pub const USER_HEADER: &str = "x-natter-user";

/// An authenticated caller of the file routes.
pub enum Caller {
    User { site: Site, user: UserId },
    Backend { site: Site },
}

impl Caller {
    pub fn site(&self) -> &Site {
        match self {
            Caller::User { site, .. } | Caller::Backend { site } => site,
        }
    }

    /// The user the request acts for: the token's, or the one a backend
    /// names in `X-Natter-User`.
    pub fn acting_user(&self, headers: &HeaderMap) -> Result<UserId, ApiError> {
        match self {
            Caller::User { user, .. } => Ok(user.clone()),
            Caller::Backend { .. } => headers
                .get(USER_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| UserId::parse(v.trim()).ok())
                .ok_or_else(|| {
                    ApiError::invalid("with an API key, name the user in X-Natter-User")
                }),
        }
    }

    /// Reads the caller from the request's headers.
    pub async fn from_headers(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let unauthorized =
            |code, msg: &str| ApiError::client(StatusCode::UNAUTHORIZED, code, msg.to_string());
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                unauthorized(
                    ErrorCode::Unauthorized,
                    "send a user token (with X-Natter-Site) or the site's API key as Authorization: Bearer",
                )
            })?;
        if bearer.starts_with("nk_") {
            return match state.store.site_by_api_key(bearer).await? {
                Some(site) => Ok(Caller::Backend { site }),
                None => Err(unauthorized(ErrorCode::Unauthorized, "unknown API key")),
            };
        }
        let site_id = headers
            .get(SITE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| SiteId::parse(v.trim()).ok())
            .ok_or_else(|| {
                unauthorized(
                    ErrorCode::UnknownSite,
                    "name the token's site in the X-Natter-Site header",
                )
            })?;
        let Some(site) = state.store.site(&site_id).await? else {
            return Err(unauthorized(ErrorCode::UnknownSite, "no such site"));
        };
        let now = crate::store::now_ms() / 1000;
        match auth::verify_for(bearer, &site, now, state.config.guard.max_token_ttl_secs) {
            Ok(identity) => Ok(Caller::User {
                site,
                user: identity.user,
            }),
            Err(err) => Err(unauthorized(err.code(), &err.to_string())),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Caller::from_headers(state, &parts.headers).await
    }
}
