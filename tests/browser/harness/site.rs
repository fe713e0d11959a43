//! The host site: an HTTP server whose pages embed the widget with its
//! script tag and a token signed for the visitor, as a site's backend
//! would; plain pages, hostile ones whose CSS restyles everything, and
//! pages that load the site's own copy of the loader (pinned with
//! Subresource Integrity, or with a wrong hash).

use natter_tests::{TestSite, token_named};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// The embedding site: its pages carry the widget's script tag with a token
/// signed for the visitor, as a site's backend would.
pub struct HostSite {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HostSite {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What a host page contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// A plain page with the widget.
    Plain,
    /// A page whose CSS restyles everything it can reach, with the widget.
    Hostile,
    /// The hostile page without the widget, to compare against.
    HostileBare,
    /// The loader from the site's own files, with its integrity hash.
    SelfHosted,
    /// The site's own loader with a hash that is not its own.
    SelfHostedWrongHash,
}

impl Page {
    /// The page's name in the host site's URLs.
    pub fn name(self) -> &'static str {
        match self {
            Page::Plain => "plain",
            Page::Hostile => "hostile",
            Page::HostileBare => "bare",
            Page::SelfHosted => "self-hosted",
            Page::SelfHostedWrongHash => "self-hosted-wrong-hash",
        }
    }
}

impl HostSite {
    /// Serves the site's pages on `listener`.
    pub async fn start(listener: TcpListener, site: TestSite) -> HostSite {
        use axum::extract::{Query, State};
        use axum::response::Html;
        #[derive(serde::Deserialize)]
        struct Visit {
            user: String,
            chat: String,
            #[serde(default)]
            page: Option<String>,
            /// A token to embed instead of the one the site signs.
            #[serde(default)]
            token: Option<String>,
        }
        let addr = listener.local_addr().expect("host address");
        let app = axum::Router::new()
            .route(
                "/",
                axum::routing::get(
                    |State(site): State<Arc<Signer>>, Query(v): Query<Visit>| async move {
                        let page = [
                            Page::Hostile,
                            Page::HostileBare,
                            Page::SelfHosted,
                            Page::SelfHostedWrongHash,
                        ]
                        .into_iter()
                        .find(|p| Some(p.name()) == v.page.as_deref())
                        .unwrap_or(Page::Plain);
                        let token = v.token.unwrap_or_else(|| site.token(&v.user));
                        Html(host_page(&site.site, &token, &v.chat, page))
                    },
                ),
            )
            .route(
                "/natter-widget.js",
                axum::routing::get(|| async {
                    (
                        [(axum::http::header::CONTENT_TYPE, "text/javascript")],
                        loader(),
                    )
                }),
            )
            .with_state(Arc::new(Signer {
                site,
                tokens: Mutex::default(),
            }));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HostSite { addr, task }
    }

    /// The site's origin, registered for it on the chat server.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The site's backend: it signs a token for each visitor once and hands
/// the same one on every page while it lasts, as the README asks (the
/// widget opens what the browser keeps offline for a token the server
/// took before).
struct Signer {
    site: TestSite,
    tokens: Mutex<HashMap<String, String>>,
}

impl Signer {
    fn token(&self, user: &str) -> String {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .entry(user.to_string())
            .or_insert_with(|| token_named(&self.site, user, &name_of(user), 3600))
            .clone()
    }
}

/// A display name for a test user: "alice" is "Alice".
pub fn name_of(user: &str) -> String {
    let mut chars = user.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

const HOSTILE_CSS: &str = "
*, *::before, *::after { font-family: 'Comic Sans MS', cursive !important;
  color: #f0f !important; letter-spacing: 3px !important; box-sizing: content-box !important; }
div, iframe, button { display: inline !important; position: static !important;
  width: 10px !important; height: 10px !important; background: lime !important;
  border: 9px dotted red !important; opacity: .5 !important; transform: rotate(10deg) !important; }
[data-natter] { visibility: hidden !important; }
body { font-size: 40px !important; }
";

/// The site's copy of the loader: the one of the widget build under test.
fn loader() -> Vec<u8> {
    std::fs::read(super::server::widget_dir().join("widget.js")).expect("the built widget.js")
}

/// `sha384-…` of these bytes, as `integrity=` takes it.
fn integrity(bytes: &[u8]) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha384::digest(bytes);
    format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

fn host_page(site: &TestSite, token: &str, chat: &str, page: Page) -> String {
    let css = match page {
        Page::Hostile | Page::HostileBare => HOSTILE_CSS,
        _ => "",
    };
    let widget = match page {
        Page::HostileBare => String::new(),
        Page::SelfHosted | Page::SelfHostedWrongHash => {
            let hash = if page == Page::SelfHosted {
                integrity(&loader())
            } else {
                integrity(b"another script")
            };
            // `loaderRefused` tells the test the browser refused it.
            format!(
                r#"<script src="/natter-widget.js" data-chat="{chat}" data-site="{}" data-token="{token}"
  integrity="{hash}" crossorigin="anonymous" async onerror="window.loaderRefused = true"></script>"#,
                site.id
            )
        }
        Page::Plain | Page::Hostile => format!(
            r#"<script src="{chat}/widget.js" data-site="{}" data-token="{token}" async></script>"#,
            site.id
        ),
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A shop</title>
<style>{css}</style></head>
<body>
<h1 id="title">A shop that embeds Natter</h1>
<p id="text">The host page's own content.</p>
<button id="counter" type="button">Clicked 0</button>
<script>
  var clicks = 0;
  document.getElementById("counter").addEventListener("click", function () {{
    clicks += 1; this.textContent = "Clicked " + clicks;
  }});
  window.unread = null;
  window.Natter = window.Natter || {{ q: [] }};
  Natter.q.push(["on", "unread", function (n) {{ window.unread = n; }}]);
</script>
{widget}
</body></html>"#
    )
}
