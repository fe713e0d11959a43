//! Receiving files: what was shown opens offline, and uploaded pages and
//! drawings never run.

use super::*;
use crate::harness::World;
use natter_tests::Db;
use serde_json::{Value, json};

/// Scenario 3: what Bob was shown opens again with the server out of
/// reach, after a reload.
pub async fn files_shown_once_open_offline(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    bob.wait_shell_kept().await;
    let image = png(600, 300);
    let pdf = pdf_bytes(1_500_000, 11);
    let image_id = upload(&world, "alice", "x-ray.png", &image).await;
    let pdf_id = upload(&world, "alice", "report.pdf", &pdf).await;
    let res = world
        .api()
        .request(reqwest::Method::POST, &format!("/rooms/{room}/messages"))
        .json(&json!({"from": "alice", "body": "Your results", "files": [image_id, pdf_id]}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    let kept = "var i = document.querySelector('.files .file-image img');
         var a = document.querySelector('.files .file-image');
         var c = document.querySelector('.files .file');
         return !!i && i.complete && i.naturalWidth > 0 && i.src.startsWith('blob:')
           && a.href.startsWith('blob:') && !!c && c.href.startsWith('blob:');";
    bob.wait("the image and the PDF kept on the device", kept)
        .await;

    bob.proxy.set(crate::harness::Link::Down);
    bob.reload().await;
    bob.open_chat().await;
    bob.choose("Alice").await;
    bob.wait("the image and the PDF, from the device", kept)
        .await;
    let hrefs = bob
        .js(
            "return [document.querySelector('.files .file').href,
                     document.querySelector('.files .file-image').href];",
            vec![],
        )
        .await;
    assert_eq!(
        digest_in_browser(&bob, hrefs[0].as_str().expect("href")).await,
        json!(digest(&pdf)),
        "the PDF opens offline, whole"
    );
    let full = digest_in_browser(&bob, hrefs[1].as_str().expect("href")).await;
    assert!(
        full.as_str().is_some_and(|d| d.len() == 64),
        "the full image opens offline: {full}"
    );
    bob.proxy.set(crate::harness::Link::Up);
    world.finish(vec![alice, bob]).await;
}

/// Scenario 5: an uploaded HTML page and SVG with script never run when
/// opened from the chat (through their signed links or their kept
/// copies), and file names from the XSS corpus show as text.
pub async fn hostile_files_never_run(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    let res = world
        .api()
        .request(reqwest::Method::PUT, "/file-types")
        .json(&json!({"types": "*"}))
        .send()
        .await
        .expect("file types");
    assert_eq!(res.status(), 200, "the site takes any type");
    let html =
        "<!DOCTYPE html><html><body><script>parent.postMessage('ran','*')</script></body></html>";
    let svg = "<svg xmlns='http://www.w3.org/2000/svg' onload=\"parent.postMessage('ran','*')\">\
               <script>parent.postMessage('ran','*')</script></svg>";
    let mut ids = vec![
        upload(&world, "alice", "page.html", html.as_bytes()).await,
        upload(&world, "alice", "drawing.svg", svg.as_bytes()).await,
    ];
    for name in crate::safety::XSS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(8)
    {
        ids.push(upload(&world, "alice", name, b"plain words\n").await);
    }
    let res = world
        .api()
        .request(reqwest::Method::POST, &format!("/rooms/{room}/messages"))
        .json(&json!({"from": "alice", "body": "Have a look", "files": ids}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    let names: Vec<Value> = stored(&world, &room).await[0]
        .1
        .iter()
        .map(|f| f["name"].clone())
        .collect();
    bob.wait(
        "every file as a chip, kept",
        &format!(
            "var c = document.querySelectorAll('.files .file');
             return c.length === {} && [...c].every(function (a) {{ return a.href.startsWith('blob:'); }});",
            ids.len()
        ),
    )
    .await;
    let shown = bob
        .js(
            "return [...document.querySelectorAll('.files .file .file-name')].map(function (n) { return n.textContent; });",
            vec![],
        )
        .await;
    assert_eq!(shown, json!(names), "names show exactly as stored, as text");
    let injected = bob
        .js(
            "return document.querySelectorAll('.messages script, .messages iframe, .messages img[src=\"x\"], .messages svg').length;",
            vec![],
        )
        .await;
    assert_eq!(
        injected,
        json!(0),
        "no markup from a name became an element"
    );

    // Open the page and the drawing every way the chat offers: their
    // signed links and their kept copies, each in a frame that would
    // report a script run; a plain local HTML page shows that it would.
    let mut urls = Vec::new();
    for id in &ids[..2] {
        urls.push(json!(signed_link(&world, id, "bob").await));
    }
    let kept = bob
        .js(
            "return [...document.querySelectorAll('.files .file')].slice(0, 2).map(function (a) { return a.href; });",
            vec![],
        )
        .await;
    urls.extend(kept.as_array().cloned().unwrap_or_default());
    let open = "window.__ran = 0; window.__refused = 0;
        window.addEventListener('message', function (e) { if (e.data === 'ran') window.__ran++; });
        document.addEventListener('securitypolicyviolation', function () { window.__refused++; });
        for (var u of arguments[0]) {
          var f = document.createElement('iframe'); f.src = u; document.body.appendChild(f);
        }";
    bob.js(
        open,
        vec![json!([urls.clone(), vec![json!("CONTROL")]].concat())],
    )
    .await;
    bob.js(
        "var f = document.querySelector('iframe[src=\"CONTROL\"]');
         f.src = URL.createObjectURL(new Blob([arguments[0]], {type: 'text/html'}));",
        vec![json!(html)],
    )
    .await;
    // The chat's own page policy refuses to frame a local page at all
    // (nor the kept copies, `blob:` too): the control shows it acts.
    bob.wait(
        "the page's policy to refuse the control page",
        "return window.__refused >= 1;",
    )
    .await;
    // An absence is no condition to wait for: the frames get a moment.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let ran = bob.js("return window.__ran;", vec![]).await;
    assert_eq!(ran, json!(0), "nothing ran; opened: {urls:?}");
    world.finish(vec![alice, bob]).await;
}
