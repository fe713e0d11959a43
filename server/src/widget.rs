//! Serving the widget app (`/widget/…`, trunk's `dist/`): every response
//! carries `Content-Security-Policy: frame-ancestors` with the origins the
//! site registered, so only the site's own pages can frame the chat.

use crate::state::AppState;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use natter_shared::SiteId;

/// Adds `frame-ancestors` for `?site=SITE` (just `'self'` without a known
/// site), plus `nosniff` and `no-referrer`.
pub async fn frame_ancestors(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let site = req
        .uri()
        .query()
        .and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("site="))
                .map(str::to_string)
        })
        .and_then(|s| SiteId::parse(s).ok());
    let mut origins = vec!["'self'".to_string()];
    if let Some(site) = site {
        match state.store.site(&site).await {
            Ok(Some(site)) => {
                origins.extend(site.origins.into_iter().filter(|o| is_plain_origin(o)))
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "could not read the site's origins"),
        }
    }
    let mut res = next.run(req).await;
    let policy = format!("frame-ancestors {}", origins.join(" "));
    if let Ok(value) = HeaderValue::from_str(&policy) {
        res.headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, value);
    }
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// Only `scheme://host[:port]` may go into the policy: nothing that could
/// end the directive or add another.
fn is_plain_origin(origin: &str) -> bool {
    (origin.starts_with("https://") || origin.starts_with("http://"))
        && origin
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'/' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_origins_enter_the_policy() {
        assert!(is_plain_origin("https://example.com"));
        assert!(is_plain_origin("http://localhost:8080"));
        assert!(!is_plain_origin("https://a.com; script-src *"));
        assert!(!is_plain_origin("javascript:alert(1)"));
    }
}
