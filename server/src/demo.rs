//! Demo mode (`natter --demo`): a demo site with four users, a dialog and
//! a group room, a page to pick who you are, and a route that mints tokens
//! for the demo users. None of it exists without `--demo`.

use crate::auth::{self, Claims};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{Store, StoreError, now_ms};
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Html;
use natter_shared::{ErrorCode, Member, SiteId, UserId};
use serde::{Deserialize, Serialize};

/// The demo site's id.
pub const SITE: &str = "demo";

/// The demo users: id and display name.
pub const USERS: [(&str, &str); 4] = [
    ("alice", "Alice"),
    ("bob", "Bob"),
    ("carol", "Carol"),
    ("dave", "Dave"),
];

fn member(id: &str, name: &str) -> Result<Member, StoreError> {
    Ok(Member {
        id: UserId::parse(id).map_err(|e| StoreError::Invalid(e.to_string()))?,
        name: Some(name.to_string()),
    })
}

/// Creates the demo site, users and rooms when missing, and makes the
/// server's own address an allowed origin. Logs a fresh API key so the
/// HTTP API can be tried.
pub async fn setup(store: &Store, bind: std::net::SocketAddr) -> Result<(), StoreError> {
    let site = SiteId::parse(SITE).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let origins = vec![
        format!("http://{bind}"),
        format!("http://localhost:{}", bind.port()),
        format!("http://127.0.0.1:{}", bind.port()),
    ];
    if store.site(&site).await?.is_none() {
        store
            .create_site(Some(site.clone()), "Natter demo", &[])
            .await?;
        let members = USERS
            .iter()
            .map(|(id, name)| member(id, name))
            .collect::<Result<Vec<_>, _>>()?;
        store.create_group(&site, "Lobby", &members).await?;
        store.open_dialog(&site, &members[0], &members[1]).await?;
    }
    for origin in &origins {
        store.add_origin(&site, origin).await?;
    }
    let key = store.rotate_api_key(&site).await?;
    tracing::info!(
        site = SITE,
        api_key = key.expose(),
        "demo site ready (API key for trying the HTTP API)"
    );
    Ok(())
}

/// `GET /demo`: the page.
pub async fn page() -> Html<&'static str> {
    Html(include_str!("demo.html"))
}

/// `?user=` of `/demo/token`.
#[derive(Debug, Deserialize)]
pub struct TokenQuery {
    user: String,
}

/// A minted demo token.
#[derive(Debug, Serialize)]
pub struct DemoToken {
    site: &'static str,
    user: String,
    token: String,
}

/// `GET /demo/token?user=alice`: a 12-hour token for a demo user.
pub async fn token(
    State(state): State<AppState>,
    Query(q): Query<TokenQuery>,
) -> Result<Json<DemoToken>, ApiError> {
    let Some((id, name)) = USERS.iter().find(|(id, _)| *id == q.user) else {
        return Err(ApiError::client(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "demo tokens exist only for alice, bob, carol and dave",
        ));
    };
    let site_id = SiteId::parse(SITE).map_err(|e| ApiError::invalid(e.to_string()))?;
    let site = state
        .store
        .site(&site_id)
        .await?
        .ok_or(StoreError::NotFound)?;
    let now = now_ms() / 1000;
    let claims = Claims {
        sub: (*id).to_string(),
        site: SITE.to_string(),
        exp: now + 12 * 3600,
        nbf: None,
        iat: Some(now),
        name: Some((*name).to_string()),
    };
    Ok(Json(DemoToken {
        site: SITE,
        user: (*id).to_string(),
        token: auth::sign(&claims, &site.token_secret),
    }))
}
