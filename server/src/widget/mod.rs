//! Serving the widget: the app (`/widget/…`, trunk's `dist/`), its
//! service worker (`/widget/sw.js`, see [`shell`]) and the host page's
//! loader (`/widget.js`).
//!
//! Every page of the app carries `Content-Security-Policy: frame-ancestors`
//! with the origins the site registered, so only the site's own pages can
//! frame the chat, and `X-Natter-Shell` with its build's version, so the
//! service worker keeps only pages of its own build. Files named by their
//! hash are cached for a year; the loader for a short while, then used
//! stale while the browser asks again, so the launcher appears on the host
//! page for weeks even while the chat server is down.

pub mod shell;

use crate::state::AppState;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, get_service};
use shell::Shell;
use std::sync::Arc;
use tower_http::services::{ServeDir, ServeFile};

/// What the widget's routes share.
#[derive(Clone)]
struct Widget {
    state: AppState,
    shell: Arc<Shell>,
}

/// The widget's routes: `/widget.js`, `/widget/sw.js` and `/widget/…`.
pub fn routes(state: AppState, shell: Arc<Shell>) -> Router {
    let config = state.config.clone();
    let dir = &config.widget_dir;
    let loader = HeaderValue::from_str(&format!(
        "public, max-age={}, stale-while-revalidate={}",
        config.loader_max_age_secs, config.loader_stale_secs
    ))
    .unwrap_or(HeaderValue::from_static("no-cache"));
    let widget = Widget { state, shell };
    Router::new()
        .route_service(
            "/widget.js",
            get_service(ServeFile::new(dir.join("widget.js"))).layer(
                axum::middleware::map_response(move |mut res: Response| {
                    let loader = loader.clone();
                    async move {
                        if res.status().is_success() {
                            res.headers_mut().insert(header::CACHE_CONTROL, loader);
                        }
                        res.headers_mut().insert(
                            header::X_CONTENT_TYPE_OPTIONS,
                            HeaderValue::from_static("nosniff"),
                        );
                        res
                    }
                }),
            ),
        )
        .route("/widget/sw.js", get(service_worker))
        .nest_service(
            "/widget",
            tower::Layer::layer(
                &axum::middleware::from_fn_with_state(widget.clone(), headers),
                ServeDir::new(dir).append_index_html_on_directories(true),
            ),
        )
        .with_state(widget)
}

/// The service worker of the build on disk now; never cached, so the
/// browser sees a new build on its next load.
async fn service_worker(State(widget): State<Widget>) -> Response {
    match widget.shell.build().await.script.clone() {
        Some(script) => (
            [
                (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            script,
        )
            .into_response(),
        None => crate::error::ApiError::client(
            StatusCode::NOT_FOUND,
            natter_shared::ErrorCode::NotFound,
            "no widget build on this server",
        )
        .into_response(),
    }
}

/// The widget's headers on everything under `/widget/`: the framing
/// policy (the whole page policy on the app's page), `nosniff`,
/// `no-referrer`, and on what was found, its caching and the page's build.
async fn headers(State(widget): State<Widget>, req: Request, next: Next) -> Response {
    let path = req.uri().path().trim_start_matches('/').to_string();
    let page = path.is_empty() || path == "index.html";
    let ancestors = match frame_ancestors(&widget.state, req.uri().query()).await {
        Ok(ancestors) => ancestors,
        Err(refusal) => return refusal,
    };
    let mut res = next.run(req).await;
    let found = res.status().is_success() || res.status() == StatusCode::NOT_MODIFIED;
    let build = match page && found {
        true => Some(widget.shell.build().await),
        false => None,
    };
    let policy = match &build {
        Some(build) => {
            let public = widget.state.config.public_url.as_deref();
            let own = public.and_then(websocket_origin);
            page_policy(&ancestors, &build.inline_scripts, own.as_deref())
        }
        None => ancestors,
    };
    let headers = res.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&policy) {
        headers.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !found {
        return res;
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(shell::cache_control(&path)),
    );
    if let Some(version) = build.as_ref().and_then(|b| b.version.as_deref())
        && let Ok(value) = HeaderValue::from_str(version)
    {
        headers.insert("x-natter-shell", value);
    }
    res
}

/// `frame-ancestors` for `?site=SITE` (just `'self'` without a known
/// site); a 400 to answer instead for a query that names the site twice
/// or is not valid percent-encoding.
async fn frame_ancestors(state: &AppState, query: Option<&str>) -> Result<String, Response> {
    // Read as the app reads it; a site named twice is refused, so that no
    // spelling of the URL gets one site's origins and runs as another.
    let site = match natter_shared::query::site(query.unwrap_or("")) {
        Ok(site) => site,
        Err(natter_shared::query::QueryError::BadSite(_)) => None,
        Err(err) => return Err(crate::error::ApiError::invalid(err.to_string()).into_response()),
    };
    let mut origins = vec!["'self'".to_string()];
    if let Some(site) = site {
        match state.store.site_cached(&site).await {
            Ok(Some(site)) => {
                origins.extend(site.origins.into_iter().filter(|o| is_plain_origin(o)))
            }
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "could not read the site's origins"),
        }
    }
    Ok(format!("frame-ancestors {}", origins.join(" ")))
}

/// The whole policy of the app's page: its own files only, trunk's
/// bootstrap by its hash, WebAssembly compiled, pictures and media also
/// from the `blob:` URLs of files on the device, no plugins, no `<base>`,
/// no forms; framed as `ancestors` says.
fn page_policy(ancestors: &str, inline_scripts: &[String], websocket: Option<&str>) -> String {
    let mut scripts = String::from("'self' 'wasm-unsafe-eval'");
    for hash in inline_scripts {
        scripts.push(' ');
        scripts.push_str(hash);
    }
    let connect = match websocket {
        Some(ws) => format!("'self' blob: {ws}"),
        None => "'self' blob:".to_string(),
    };
    format!(
        "default-src 'self'; script-src {scripts}; style-src 'self' 'unsafe-inline'; \
         img-src 'self' blob: data:; media-src 'self' blob:; connect-src {connect}; \
         object-src 'none'; base-uri 'none'; form-action 'none'; {ancestors}"
    )
}

/// `wss://host` for `https://host` (`ws://` for `http://`).
fn websocket_origin(public_url: &str) -> Option<String> {
    let url = url::Url::parse(public_url).ok()?;
    let scheme = match url.scheme() {
        "https" => "wss",
        "http" => "ws",
        _ => return None,
    };
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    })
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
    fn the_page_policy_allows_its_bootstrap_and_the_public_websocket() {
        let hashes = ["'sha256-AAAA'".to_string()];
        let policy = page_policy(
            "frame-ancestors 'self' https://shop.example",
            &hashes,
            websocket_origin("https://chat.example.com/").as_deref(),
        );
        for part in [
            "default-src 'self'",
            "script-src 'self' 'wasm-unsafe-eval' 'sha256-AAAA';",
            "object-src 'none'",
            "base-uri 'none'",
            "connect-src 'self' blob: wss://chat.example.com;",
            "frame-ancestors 'self' https://shop.example",
        ] {
            assert!(policy.contains(part), "{part} missing from {policy}");
        }
        assert_eq!(
            websocket_origin("http://127.0.0.1:8080").as_deref(),
            Some("ws://127.0.0.1:8080")
        );
        assert_eq!(websocket_origin("ftp://x"), None);
    }

    #[test]
    fn only_plain_origins_enter_the_policy() {
        assert!(is_plain_origin("https://example.com"));
        assert!(is_plain_origin("http://localhost:8080"));
        assert!(!is_plain_origin("https://a.com; script-src *"));
        assert!(!is_plain_origin("javascript:alert(1)"));
    }
}
