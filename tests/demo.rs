//! Demo mode mints tokens for demo users only, and only in demo mode.

use natter_tests::*;

#[tokio::test]
async fn demo_mode_serves_the_page_and_tokens_that_work() {
    let app = spawn_app_with(Db::Sqlite, |c| c.demo = true).await;
    let page = app.http.get(app.url("/demo")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("widget.js"));
    let res = app
        .http
        .get(app.url("/demo/token?user=mallory"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res: serde_json::Value = app
        .http
        .get(app.url("/demo/token?user=alice"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = res["token"].as_str().unwrap();
    let site = natter_shared::SiteId::parse("demo").unwrap();
    let own = format!("http://{}", app.addr);
    let mut alice = Client::connect(&app, &site, Some(&own)).await;
    alice.auth(token).await;
    let rooms = alice.sync(vec![]).await;
    assert_eq!(
        rooms.len(),
        2,
        "alice is in the Lobby and her dialog with Bob"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_demo_mode_there_is_no_demo_page_nor_token() {
    let app = spawn_app(Db::Sqlite).await;
    for path in ["/demo", "/demo/token?user=alice"] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_widget_may_be_framed_only_by_the_sites_origins() {
    let dir = std::env::temp_dir().join(unique("natter-widget"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><title>w</title>").unwrap();
    std::fs::write(dir.join("widget.js"), "/* loader */").unwrap();
    let widget_dir = dir.clone();
    let app = spawn_app_with(Db::Sqlite, move |c| c.widget_dir = widget_dir).await;
    let res = app
        .http
        .get(app.url(&format!("/widget/?site={}", app.site.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(csp, format!("frame-ancestors 'self' {ORIGIN}"));
    assert!(!csp.contains("other.example"));
    let res = app.http.get(app.url("/widget/")).send().await.unwrap();
    assert_eq!(
        res.headers()["content-security-policy"],
        "frame-ancestors 'self'"
    );
    let res = app.http.get(app.url("/widget.js")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "/* loader */");
    app.stop().await;
    std::fs::remove_dir_all(&dir).ok();
}
