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

    // The Lobby opens on Carol's welcome and her photo and slides, which
    // alice may download: a real PNG and a real PDF.
    let lobby = rooms
        .iter()
        .find(|r| r.title.as_deref() == Some("Lobby"))
        .expect("the Lobby");
    let (_, events) = alice.sync_collect(vec![]).await;
    let events: Vec<_> = events.into_iter().filter(|e| e.room == lobby.id).collect();
    assert_eq!(events.len(), 2, "Carol's welcome and her files");
    let files: Vec<natter_shared::Attachment> = events
        .iter()
        .flat_map(|e| match &e.kind {
            natter_shared::EventKind::Message { files, .. } => files.clone(),
            _ => Vec::new(),
        })
        .collect();
    let kinds: Vec<(&str, &str)> = files
        .iter()
        .map(|f| (f.name.as_str(), f.mime.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("whiteboard.png", "image/png"),
            ("week-1.pdf", "application/pdf")
        ]
    );
    assert_eq!(
        (files[0].width, files[0].height, files[0].thumb),
        (Some(960), Some(540), true)
    );
    for f in &files {
        let res = app
            .http
            .get(app.url(&format!("/files/{}", f.id)))
            .bearer_auth(token)
            .header("X-Natter-Site", "demo")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let bytes = res.bytes().await.unwrap();
        assert_eq!(bytes.len() as u64, f.size);
    }
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
