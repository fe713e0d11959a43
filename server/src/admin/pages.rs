//! The panel's page frame, its sign-in and error pages, its stylesheet and
//! script, and small pieces the other pages share. Text from users is
//! always escaped: maud escapes everything spliced in.

use super::session::Viewer;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

const CSS: &str = include_str!("assets/admin.css");
const JS: &str = include_str!("assets/admin.js");

fn asset(body: &'static str, mime: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

/// `GET /admin/assets/admin.css`.
pub async fn css() -> Response {
    asset(CSS, "text/css; charset=utf-8")
}

/// `GET /admin/assets/admin.js`.
pub async fn js() -> Response {
    asset(JS, "text/javascript; charset=utf-8")
}

/// A whole page: `title`, the signed-in admin's bar (when there is one),
/// `crumbs` (label, link) and `body`.
pub fn page(
    title: &str,
    viewer: Option<&Viewer>,
    crumbs: &[(&str, String)],
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Natter admin" }
                link rel="stylesheet" href="/admin/assets/admin.css";
                script src="/admin/assets/admin.js" defer {}
            }
            body {
                header.bar {
                    a.brand href="/admin/sites" { "Natter admin" }
                    @if let Some(viewer) = viewer {
                        span.who { (viewer.admin.email) }
                        form method="post" action="/admin/sign-out" {
                            (csrf(viewer))
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    @if !crumbs.is_empty() {
                        nav.crumbs {
                            @for (label, href) in crumbs {
                                a href=(href) { (label) } " › "
                            }
                            span { (title) }
                        }
                    }
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf); }
}

/// The sign-in page, with what went wrong last time.
pub fn sign_in(problem: Option<&str>) -> Markup {
    page(
        "Sign in",
        None,
        &[],
        html! {
            @if let Some(problem) = problem {
                p.problem role="alert" { (problem) }
            }
            form.stack method="post" action="/admin/sign-in" {
                label { "E-mail address" input type="email" name="email" required autocomplete="username"; }
                label { "Password" input type="password" name="password" required autocomplete="current-password"; }
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// An error page.
pub fn failure(status: StatusCode, message: &str) -> Markup {
    let title = status.canonical_reason().unwrap_or("Error");
    page(
        title,
        None,
        &[],
        html! {
            p.problem role="alert" { (message) }
            p { a href="/admin/sites" { "Back to the sites" } }
        },
    )
}

/// A notice of what a change did, from the `done` a redirect carries
/// (fixed texts only: a link cannot make the panel say something else).
pub fn notice(done: Option<&str>) -> Markup {
    let text = match done {
        Some("renamed") => "The site was renamed.",
        Some("origins") => "The allowed origins were saved.",
        Some("deleted") => "The message was deleted for everyone.",
        Some("banned") => "The user is banned: their connections were closed.",
        Some("unbanned") => "The ban is lifted.",
        Some("muted") => "The member is muted.",
        Some("unmuted") => "The mute is lifted.",
        Some("dismissed") => "The report was dismissed.",
        Some("resumed") => "The endpoint was resumed: what waited is being sent.",
        _ => return html! {},
    };
    html! { p.notice role="status" { (text) } }
}

/// A time (ms since the Unix epoch) for people, in UTC.
pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    )
}

/// The panel's page of a site.
pub fn site_base(site: &crate::store::Site) -> String {
    format!("/admin/sites/{}", seg(site.id.as_str()))
}

/// The crumbs of a page of a site: the sites, the site.
pub fn crumbs(site: &crate::store::Site) -> Vec<(&str, String)> {
    vec![
        ("Sites", "/admin/sites".to_string()),
        (site.name.as_str(), site_base(site)),
    ]
}

/// A path segment, percent-encoded.
pub fn seg(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_from_users_is_escaped() {
        let markup = failure(StatusCode::BAD_REQUEST, "<script>alert(1)</script>");
        let html = markup.into_string();
        assert!(!html.contains("<script>alert"));
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn times_read_in_utc() {
        assert_eq!(when(0), "1970-01-01 00:00:00 UTC");
    }
}
