//! Serving the widget: framed only by the site's origins, its files cached
//! by build, its service worker generated for the build on disk, and the
//! loader kept usable by browsers while the server is away.

use natter_tests::*;
use std::path::{Path, PathBuf};

const HASHED_JS: &str = "natter-client-0123456789abcdef.js";

/// A page with an inline bootstrap, as trunk writes it.
const INDEX: &str = "<!doctype html><title>w</title><script type=\"module\">boot()</script>";

/// `'sha256-…'` of `boot()`: `printf 'boot()' | openssl dgst -sha256 -binary | base64`.
const BOOT_HASH: &str = "'sha256-MeZS89WlF0u+o0hCvHTBt4q1WHU+U+sJKgbdRUc36mY='";

/// A widget build as trunk lays it out: a page, files named by their
/// hash, and the host page's loader.
fn fake_build() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("natter-widget"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), INDEX).unwrap();
    std::fs::write(dir.join(HASHED_JS), "export default 1;").unwrap();
    std::fs::write(dir.join("widget.js"), "/* loader */").unwrap();
    dir
}

async fn spawn_with_build(dir: &Path) -> TestApp {
    let widget_dir = dir.to_path_buf();
    spawn_app_with(Db::Sqlite, move |c| c.widget_dir = widget_dir).await
}

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("{} has no {name}", res.url()))
        .to_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn the_widget_may_be_framed_only_by_the_sites_origins() {
    let dir = fake_build();
    let app = spawn_with_build(&dir).await;
    let res = app
        .http
        .get(app.url(&format!("/widget/?site={}", app.site.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csp = header(&res, "content-security-policy");
    assert!(
        csp.ends_with(&format!("; frame-ancestors 'self' {ORIGIN}")),
        "{csp}"
    );
    assert!(!csp.contains("other.example"));
    // The page runs only its own files and its bootstrap, by hash.
    for part in [
        "default-src 'self';",
        &format!("script-src 'self' 'wasm-unsafe-eval' {BOOT_HASH};"),
        "object-src 'none';",
        "base-uri 'none';",
        "connect-src 'self' blob:;",
    ] {
        assert!(csp.contains(part), "{part} missing from {csp}");
    }
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    let res = app.http.get(app.url("/widget/")).send().await.unwrap();
    assert!(header(&res, "content-security-policy").ends_with("; frame-ancestors 'self'"));
    let res = app.http.get(app.url("/widget.js")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(header(&res, "x-content-type-options"), "nosniff");
    assert_eq!(res.text().await.unwrap(), "/* loader */");

    // The site is read as the app reads it: encoded names count, and a
    // second site (another site's, spelled differently) is refused.
    let res = app
        .http
        .get(app.url(&format!("/widget/?%73ite={}", app.site.id)))
        .send()
        .await
        .unwrap();
    assert!(
        header(&res, "content-security-policy")
            .ends_with(&format!("; frame-ancestors 'self' {ORIGIN}"))
    );
    for query in [
        format!("%73ite={}&site={}", app.site.id, app.other.id),
        format!("site={}&site={}", app.other.id, app.site.id),
        "site=%zz".to_string(),
    ] {
        let res = app
            .http
            .get(app.url(&format!("/widget/?{query}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{query}");
        assert!(res.headers().get("content-security-policy").is_none());
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_input", "{query}");
    }
    app.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn files_are_cached_by_build_and_the_loader_is_used_stale() {
    let dir = fake_build();
    let app = spawn_with_build(&dir).await;

    let loader = app.http.get(app.url("/widget.js")).send().await.unwrap();
    assert_eq!(
        header(&loader, "cache-control"),
        "public, max-age=300, stale-while-revalidate=2592000",
        "the launcher must appear from the browser's copy while the server is down"
    );
    let hashed = app
        .http
        .get(app.url(&format!("/widget/{HASHED_JS}")))
        .send()
        .await
        .unwrap();
    assert_eq!(hashed.status(), 200);
    assert_eq!(
        header(&hashed, "cache-control"),
        "public, max-age=31536000, immutable"
    );
    let page = app
        .http
        .get(app.url(&format!("/widget/?site={}", app.site.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&page, "cache-control"), "no-cache");
    let version = header(&page, "x-natter-shell");
    assert_eq!(version.len(), 16, "the build's version: {version:?}");

    let worker = app.http.get(app.url("/widget/sw.js")).send().await.unwrap();
    assert_eq!(worker.status(), 200);
    assert_eq!(header(&worker, "cache-control"), "no-cache");
    assert!(header(&worker, "content-type").starts_with("text/javascript"));
    let script = worker.text().await.unwrap();
    assert!(script.contains(&format!("const VERSION = \"{version}\";")));
    assert!(
        script.contains(&format!("const FILES = [\"/widget/{HASHED_JS}\"];")),
        "the build's files, without the page or the loader: {script}"
    );

    // A new build deployed into the directory is a new version, at once.
    std::fs::write(dir.join("index.html"), "<!doctype html><title>w2</title>").unwrap();
    let page = app.http.get(app.url("/widget/")).send().await.unwrap();
    let next = header(&page, "x-natter-shell");
    assert_ne!(next, version, "a changed page is a new build");
    let script = app
        .http
        .get(app.url("/widget/sw.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(script.contains(&format!("const VERSION = \"{next}\";")));

    // Missing files are plain 404s, never cached for a year.
    let res = app
        .http
        .get(app.url("/widget/natter-client-fedcba9876543210.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.headers().get("cache-control").is_none());
    app.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

#[tokio::test]
async fn without_a_widget_build_there_is_no_service_worker() {
    let dir = std::env::temp_dir().join(unique("natter-no-widget"));
    let app = spawn_with_build(&dir).await;
    let res = app.http.get(app.url("/widget/sw.js")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn the_loader_takes_its_cache_lifetimes_from_the_configuration() {
    let dir = fake_build();
    let widget_dir = dir.clone();
    let app = spawn_app_with(Db::Sqlite, move |c| {
        c.widget_dir = widget_dir;
        c.loader_max_age_secs = 1;
        c.loader_stale_secs = 86_400;
    })
    .await;
    let res = app.http.get(app.url("/widget.js")).send().await.unwrap();
    assert_eq!(
        header(&res, "cache-control"),
        "public, max-age=1, stale-while-revalidate=86400"
    );
    app.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_readme_pins_this_loader_by_its_hash() {
    use base64::Engine as _;
    use sha2::Digest as _;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let loader = std::fs::read(root.join("widget.js")).unwrap();
    let hash = format!(
        "sha384-{}",
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(&loader))
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let pinned: Vec<&str> = readme
        .split("integrity=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(
        pinned,
        [hash.as_str()],
        "the README's self-hosting example must pin this widget.js (update its integrity)"
    );
}
