//! The admin panel at `/admin`: server-rendered pages (no script needed
//! but for the live chart), built into the binary. Admins sign in with
//! the accounts `natter admin add` creates; one limited to some sites sees
//! and changes only those. Every change goes through
//! [`crate::moderation`] or the store, as the HTTP API's do, and is
//! recorded in the site's audit log as `admin:EMAIL`.

mod live;
mod moderate;
mod pages;
pub mod session;
mod sites;

use crate::state::AppState;
use crate::store::{Admin, Site, StoreError};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use natter_shared::SiteId;

pub use live::Live;

/// The panel's own state, shared through [`AppState`].
pub struct Panel {
    pub sign_ins: session::SignInLimits,
    pub live: Live,
}

impl Panel {
    pub fn new(config: &crate::config::AdminConfig) -> Panel {
        Panel {
            sign_ins: session::SignInLimits::new(config.admin_sign_in_per_minute),
            live: Live::default(),
        }
    }
}

/// What a panel request can come to.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No session, or an expired one: to the sign-in page.
    #[error("sign in first")]
    SignIn,
    #[error("{0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Invalid(String),
    #[error("too many sign-in attempts: wait a minute and try again")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        let status = match &self {
            AdminError::SignIn => return Redirect::to("/admin/sign-in").into_response(),
            AdminError::Forbidden(_) => StatusCode::FORBIDDEN,
            AdminError::NotFound | AdminError::Store(StoreError::NotFound) => StatusCode::NOT_FOUND,
            AdminError::Store(StoreError::RoomNotFound) => StatusCode::NOT_FOUND,
            AdminError::Invalid(_)
            | AdminError::Store(StoreError::Invalid(_) | StoreError::NotMember) => {
                StatusCode::BAD_REQUEST
            }
            AdminError::Store(StoreError::Conflict) => StatusCode::CONFLICT,
            AdminError::TooMany => StatusCode::TOO_MANY_REQUESTS,
            AdminError::Store(err) => {
                tracing::error!(error = %err, "admin panel: store error");
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let message = match (&self, status) {
            (_, StatusCode::INTERNAL_SERVER_ERROR) => {
                "Something went wrong on the server; it is logged.".to_string()
            }
            (AdminError::Store(StoreError::NotMember), _) => {
                "That user is not a member of the room.".to_string()
            }
            (AdminError::Store(StoreError::Conflict), _) => "That already exists.".to_string(),
            _ => self.to_string(),
        };
        let mut response = (status, pages::failure(status, &message)).into_response();
        if status == StatusCode::TOO_MANY_REQUESTS {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
        }
        response
    }
}

/// The site an admin asked for, if it exists and they manage it (the
/// same answer either way, so a limited admin learns nothing of others).
async fn managed_site(state: &AppState, admin: &Admin, id: &str) -> Result<Site, AdminError> {
    let id = SiteId::parse(id.to_string()).map_err(|_| AdminError::NotFound)?;
    if !admin.manages(&id) {
        return Err(AdminError::NotFound);
    }
    state.store.site(&id).await?.ok_or(AdminError::NotFound)
}

/// Headers every panel page carries: no framing, no inline script, no
/// caching of pages that show secrets.
async fn protect(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The panel's routes, under `/admin`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/sites") }))
        .route("/admin/", get(|| async { Redirect::to("/admin/sites") }))
        .route(
            "/admin/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/admin/sign-out", post(session::sign_out))
        .route("/admin/assets/admin.css", get(pages::css))
        .route("/admin/assets/admin.js", get(pages::js))
        .route("/admin/live", get(live::numbers))
        .route("/admin/sites", get(sites::list).post(sites::create))
        .route("/admin/sites/{site}", get(sites::show))
        .route("/admin/sites/{site}/rename", post(sites::rename))
        .route("/admin/sites/{site}/origins", post(sites::origins))
        .route(
            "/admin/sites/{site}/rotate-secret",
            post(sites::rotate_secret),
        )
        .route("/admin/sites/{site}/rotate-key", post(sites::rotate_key))
        .route(
            "/admin/sites/{site}/delete",
            get(sites::confirm_delete).post(sites::delete),
        )
        .route("/admin/sites/{site}/audit", get(sites::audit))
        .route("/admin/sites/{site}/rooms", get(moderate::rooms))
        .route("/admin/sites/{site}/rooms/{room}", get(moderate::room))
        .route(
            "/admin/sites/{site}/rooms/{room}/messages/{seq}/delete",
            post(moderate::delete_message),
        )
        .route(
            "/admin/sites/{site}/rooms/{room}/members/{user}/mute",
            post(moderate::mute),
        )
        .route("/admin/sites/{site}/users", get(moderate::users))
        .route("/admin/sites/{site}/users/{user}", get(moderate::user))
        .route("/admin/sites/{site}/users/{user}/ban", post(moderate::ban))
        .route(
            "/admin/sites/{site}/reports/{id}/dismiss",
            post(moderate::dismiss_report),
        )
        .route("/admin/sites/{site}/webhooks/{id}", get(moderate::webhook))
        .route(
            "/admin/sites/{site}/webhooks/{id}/resume",
            post(moderate::resume_webhook),
        )
        .layer(DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn(protect))
}
