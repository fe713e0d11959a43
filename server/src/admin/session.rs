//! Signing admins in and out: argon2 password hashes, a session cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` over https) whose SHA-256 the
//! database keeps, a CSRF token derived from it on every form, and
//! sign-in attempts rate-limited per address and per e-mail address.

use super::{AdminError, pages};
use crate::auth::{hash_api_key, random_secret};
use crate::serve::Peer;
use crate::state::AppState;
use crate::store::Admin;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::header::{COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroU32;
use std::sync::OnceLock;

/// The session cookie's name.
const COOKIE_NAME: &str = "natter_admin";

/// The shortest password `natter admin` takes.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Why a password cannot be set.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the password is too short: at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("hashing the password failed: {0}")]
    Hash(String),
}

/// An argon2id hash (PHC string) of `password`, with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    // A fresh random salt each time (the OS's random numbers).
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// Whether `password` matches the PHC string `hash`. An unreadable hash
/// matches nothing.
fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// A hash no password is checked against in earnest: verifying against it
/// when the e-mail address is unknown makes both answers take as long.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password(&random_secret()).unwrap_or_default())
}

/// Sign-in attempts, per client address and per e-mail address.
pub struct SignInLimits {
    limiter: Option<DefaultKeyedRateLimiter<u64>>,
    keys: RandomState,
}

impl SignInLimits {
    pub fn new(per_minute: u32) -> SignInLimits {
        SignInLimits {
            limiter: NonZeroU32::new(per_minute)
                .map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_minute(n))),
            keys: RandomState::new(),
        }
    }

    /// Takes one attempt for each key; false when one is over its rate.
    fn take(&self, keys: &[&str]) -> bool {
        let Some(limiter) = &self.limiter else {
            return true;
        };
        keys.iter()
            .all(|key| limiter.check_key(&self.keys.hash_one(key)).is_ok())
    }

    /// Forgets the keys back to a full allowance.
    pub fn prune(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// The session token in the request's cookie, if any.
fn session_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.to_string())
        .filter(|v| !v.is_empty())
}

/// The CSRF token of a session: every form carries it, and a change is
/// made only when it matches the cookie's.
fn csrf_of(token: &str) -> String {
    hash_api_key(&format!("natter admin csrf {token}"))
}

/// Whether the cookie should be `Secure`: the server's public URL is
/// https, or the proxy in front says the request came over https.
fn secure(state: &AppState, headers: &HeaderMap) -> bool {
    let public = state
        .config
        .public_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"));
    let forwarded = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"));
    public || forwarded
}

fn cookie(value: &str, max_age: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    let text = format!(
        "{COOKIE_NAME}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// A signed-in admin, for the pages that only read; with the CSRF token
/// their forms carry.
pub struct Viewer {
    pub admin: Admin,
    pub csrf: String,
}

async fn viewer(parts: &Parts, state: &AppState) -> Result<Viewer, AdminError> {
    let token = session_token(&parts.headers).ok_or(AdminError::SignIn)?;
    let admin = state
        .store
        .admin_session(&hash_api_key(&token))
        .await?
        .ok_or(AdminError::SignIn)?;
    Ok(Viewer {
        admin,
        csrf: csrf_of(&token),
    })
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = AdminError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AdminError> {
        viewer(parts, state).await
    }
}

/// A change an admin asked for with a form: their session, the form's
/// CSRF token matching it, and the request not sent from another site.
/// Holds the form's fields.
pub struct Change {
    pub admin: Admin,
    csrf: String,
    fields: HashMap<String, String>,
}

impl Change {
    /// The admin as the page answering the change shows them.
    pub fn viewer(&self) -> Viewer {
        Viewer {
            admin: self.admin.clone(),
            csrf: self.csrf.clone(),
        }
    }

    /// The actor the audit log records.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.admin.email)
    }

    /// A field of the form, trimmed; empty when absent.
    pub fn field(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", |v| v.trim())
    }
}

/// Whether the browser says the request came from another site. The
/// session cookie is `SameSite=Strict`, so such a request carries none;
/// this refuses it even when a browser sends one anyway. The request's
/// own origin is its `Host` (or, behind a proxy, `X-Forwarded-Host`) or
/// `--public-url`.
fn cross_site(headers: &HeaderMap, public_url: Option<&str>) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "cross-site" || v == "same-site");
    let Some(origin) = headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .filter(|o| *o != "null")
    else {
        return fetch_site;
    };
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let named = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|host| host.eq_ignore_ascii_case(authority))
    };
    let public =
        public_url.is_some_and(|url| url.trim_end_matches('/').eq_ignore_ascii_case(origin));
    fetch_site || !(named("host") || named("x-forwarded-host") || public)
}

impl FromRequest<AppState> for Change {
    type Rejection = AdminError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, AdminError> {
        let (parts, body) = req.into_parts();
        if cross_site(&parts.headers, state.config.public_url.as_deref()) {
            return Err(AdminError::Forbidden(
                "this change was sent from another site".into(),
            ));
        }
        let Viewer { admin, csrf } = viewer(&parts, state).await?;
        let req = Request::from_parts(parts, body);
        let axum::Form(fields) = axum::Form::<HashMap<String, String>>::from_request(req, state)
            .await
            .map_err(|e| AdminError::Invalid(e.body_text()))?;
        let sent = fields.get("csrf").map_or("", String::as_str);
        if !constant_time_eq(sent.as_bytes(), csrf.as_bytes()) {
            return Err(AdminError::Forbidden(
                "the form is stale or from elsewhere: reload the page and try again".into(),
            ));
        }
        Ok(Change {
            admin,
            csrf,
            fields,
        })
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /admin/sign-in`.
pub async fn sign_in_page() -> Response {
    pages::sign_in(None).into_response()
}

/// `POST /admin/sign-in`: checks the password (at most
/// `--admin-sign-in-per-minute` tries per address and per e-mail), starts
/// a session and sets its cookie.
pub async fn sign_in(
    State(state): State<AppState>,
    Peer(peer): Peer,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    if cross_site(&headers, state.config.public_url.as_deref()) {
        return Err(AdminError::Forbidden(
            "sign in from this server's own page".into(),
        ));
    }
    let email = form.get("email").map_or("", |v| v.trim()).to_lowercase();
    let password = form.get("password").cloned().unwrap_or_default();
    let ip = state
        .gate
        .client_ip(&headers, peer)
        .map(|ip| ip.to_string())
        .unwrap_or_default();
    let (by_ip, by_email) = (format!("ip {ip}"), format!("email {email}"));
    if !state.admin.sign_ins.take(&[&by_ip, &by_email]) {
        tracing::warn!(%ip, "admin sign-in attempts over the limit");
        return Err(AdminError::TooMany);
    }
    let found = state.store.admin_for_sign_in(&email).await?;
    let hash = found.as_ref().map(|(_, hash)| hash.clone());
    // Hashing is slow on purpose: off the async threads, the decoy too.
    let matches = tokio::task::spawn_blocking(move || {
        verify_password(&password, hash.as_deref().unwrap_or_else(|| decoy_hash()))
    })
    .await
    .unwrap_or(false);
    let admin = match found {
        Some((admin, _)) if matches => admin,
        _ => {
            tracing::info!(%ip, "admin sign-in refused");
            return Ok((
                axum::http::StatusCode::UNAUTHORIZED,
                pages::sign_in(Some("Wrong e-mail address or password.")),
            )
                .into_response());
        }
    };
    let token = random_secret();
    let secs = state.config.admin.admin_session_secs;
    let lifetime = i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000);
    let expires = crate::store::now_ms().saturating_add(lifetime);
    state
        .store
        .start_admin_session(&hash_api_key(&token), admin.id, expires)
        .await?;
    tracing::info!(admin = %admin.email, "admin signed in");
    let mut response = Redirect::to("/admin/sites").into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, cookie(&token, secs, secure(&state, &headers)));
    Ok(response)
}

/// `POST /admin/sign-out`: ends the session and clears the cookie.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    change: Change,
) -> Result<Response, AdminError> {
    if let Some(token) = session_token(&headers) {
        state.store.end_admin_session(&hash_api_key(&token)).await?;
    }
    tracing::info!(admin = %change.admin.email, "admin signed out");
    let mut response = Redirect::to("/admin/sign-in").into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, cookie("", 0, secure(&state, &headers)));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_against_their_hash_only() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        let again = hash_password("correct horse battery").expect("hash");
        assert_ne!(hash, again, "each hash has its own salt");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("anything", "not a hash"));
        assert!(matches!(
            hash_password("short"),
            Err(PasswordError::TooShort)
        ));
    }

    #[test]
    fn the_session_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=1; natter_admin=tok; b=2"),
        );
        assert_eq!(session_token(&headers).as_deref(), Some("tok"));
        headers.insert(COOKIE, HeaderValue::from_static("natter_admin="));
        assert_eq!(session_token(&headers), None);
    }

    #[test]
    fn requests_from_other_sites_are_told_apart() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("chat.example.com"));
        assert!(!cross_site(&headers, None));
        headers.insert(
            "origin",
            HeaderValue::from_static("https://chat.example.com"),
        );
        assert!(!cross_site(&headers, None));
        headers.insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(cross_site(&headers, None));
        // Behind a proxy that rewrites Host: the forwarded host, or the
        // public URL, is the panel's own origin.
        headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert(
            "origin",
            HeaderValue::from_static("https://chat.example.com"),
        );
        assert!(cross_site(&headers, None));
        assert!(!cross_site(&headers, Some("https://chat.example.com")));
        headers.insert(
            "x-forwarded-host",
            HeaderValue::from_static("chat.example.com"),
        );
        assert!(!cross_site(&headers, None));
        headers.remove("origin");
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(cross_site(&headers, None));
    }

    #[test]
    fn the_csrf_token_is_the_sessions_own() {
        assert_eq!(csrf_of("a"), csrf_of("a"));
        assert_ne!(csrf_of("a"), csrf_of("b"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
