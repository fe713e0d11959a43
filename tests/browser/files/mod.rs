//! Files in messages, as a person sees them. Here: a message from the
//! site's backend with an image and a PDF shows the image's thumbnail and a
//! chip with the PDF's name (text, whatever it holds) and size, and both
//! work from the chat; and what the scenarios of files share (uploads,
//! attaching in the browser, reading what the server stored).
//! [`sending`]: attaching, uploading, cutting, cancelling, refusals.
//! [`receiving`]: files kept for offline use, and hostile files.

mod receiving;
mod sending;

pub use receiving::{files_shown_once_open_offline, hostile_files_never_run};
pub use sending::{
    an_upload_can_be_cancelled, an_upload_cut_halfway_continues,
    files_attached_offline_are_sent_after_a_reload, refused_files_say_why,
};

use crate::harness::{Person, World};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use natter_tests::Db;
use serde_json::{Value, json};

/// Uploads `bytes` for `user` with the site's API key (tus); the file id.
pub async fn upload(world: &World, user: &str, name: &str, bytes: &[u8]) -> String {
    let base = format!("http://{}", world.server.addr);
    let res = world
        .http
        .post(format!("{base}/files"))
        .bearer_auth(&world.site.api_key)
        .header("X-Natter-User", user)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Length", bytes.len().to_string())
        .header(
            "Upload-Metadata",
            format!("filename {}", STANDARD.encode(name)),
        )
        .send()
        .await
        .expect("create upload");
    assert_eq!(res.status(), 201, "creating the upload of {name}");
    let path = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let res = world
        .http
        .patch(format!("{base}{path}"))
        .bearer_auth(&world.site.api_key)
        .header("X-Natter-User", user)
        .header("Tus-Resumable", "1.0.0")
        .header("Upload-Offset", "0")
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("upload");
    assert_eq!(res.status(), 204, "uploading {name}");
    path.rsplit('/').next().expect("id").to_string()
}

pub fn png(w: u32, h: u32) -> Vec<u8> {
    let img =
        image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x / 4) as u8, (y / 2) as u8, 160]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("png");
    out.into_inner()
}

pub async fn files_show_in_the_conversation(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    let image = png(800, 400);
    let mut pdf = b"%PDF-1.4\n".to_vec();
    pdf.extend((0..40_000u32).map(|i| (i % 251) as u8));
    let hostile = "<img src=x onerror=document.title='owned'>.pdf";
    let image_id = upload(&world, "alice", "scan.png", &image).await;
    let pdf_id = upload(&world, "alice", hostile, &pdf).await;
    let res = world
        .api()
        .request(reqwest::Method::POST, &format!("/rooms/{room}/messages"))
        .json(&json!({"from": "alice", "body": "The scan and the results", "files": [image_id, pdf_id]}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201, "posting the message with files");

    // Bob sees the caption, the image (its thumbnail, loaded) and the chip.
    bob.wait(
        "the image's thumbnail to load",
        "var i = document.querySelector('.files .file-image img');
         return !!i && i.complete && i.naturalWidth === 320 && i.naturalHeight === 160;",
    )
    .await;
    bob.wait(
        "the PDF's chip, its name as text",
        &format!(
            "var n = document.querySelector('.files .file .file-name');
             return !!n && n.textContent === {} && !document.querySelector('.files img[src=\"x\"]');",
            json!(hostile)
        ),
    )
    .await;
    bob.wait(
        "the PDF kept on the device",
        "var a = document.querySelector('.files .file'); return !!a && a.href.startsWith('blob:');",
    )
    .await;
    let seen = bob
        .js(
            "var a = document.querySelector('.files .file');
             var i = document.querySelector('.files .file-image img');
             return [a.getAttribute('href'), a.getAttribute('download'),
                     document.querySelector('.files .file-size').textContent,
                     i.getAttribute('width'), i.getAttribute('height'), i.getAttribute('alt'),
                     document.title];",
            vec![],
        )
        .await;
    let kept = seen[0].as_str().expect("the chip links the file");
    assert_eq!(seen[1], json!(hostile), "downloaded under its own name");
    assert_eq!(seen[2], json!("40 KB"));
    assert_eq!(
        (seen[3].clone(), seen[4].clone()),
        (json!("240"), json!("120")),
        "laid out before loading"
    );
    assert_eq!(seen[5], json!("scan.png"));
    assert_ne!(seen[6], json!("owned"), "nothing in a name ran");

    // The kept copy holds the file.
    let fetch_len = "var done = arguments[arguments.length - 1];
         fetch(arguments[0]).then(function (r) { return r.arrayBuffer(); })
           .then(function (b) { done(b.byteLength); }, function (e) { done(String(e)); });";
    let got = bob.js_async(fetch_len, vec![json!(kept)]).await;
    assert_eq!(got, json!(pdf.len()), "the kept copy");
    // A signed link, as the chat asks for them, works from the chat with
    // no header: the same bytes.
    let href = signed_link(&world, &pdf_id, "bob").await;
    let href = href.as_str();
    assert!(
        href.starts_with(&format!("/files/{pdf_id}?exp=")) && href.contains("&sig="),
        "{href}"
    );
    let got: Value = bob
        .js_async(
            "var done = arguments[arguments.length - 1];
             fetch(arguments[0]).then(function (r) { return r.arrayBuffer(); })
               .then(function (b) { done(b.byteLength); }, function (e) { done(String(e)); });",
            vec![json!(href)],
        )
        .await;
    assert_eq!(got, json!(pdf.len()));
    // Alice sees her own message the same way.
    alice
        .wait(
            "her own message's image",
            "var i = document.querySelector('.files .file-image img'); return !!i && i.naturalWidth === 320;",
        )
        .await;
    world.finish(vec![alice, bob]).await;
}

/// A file a person attaches, made inside the browser: `bytes` as given,
/// or `size` bytes of a PDF (a header, then a pattern from `seed`).
fn spec(name: &str, mime: &str, size: usize, seed: u32) -> Value {
    json!({"name": name, "type": mime, "size": size, "seed": seed})
}

fn spec_of(name: &str, mime: &str, bytes: &[u8]) -> Value {
    json!({"name": name, "type": mime, "b64": STANDARD.encode(bytes)})
}

/// The bytes of [`spec`]'s PDF.
pub fn pdf_bytes(size: usize, seed: u32) -> Vec<u8> {
    let head = b"%PDF-1.4\n";
    (0..size)
        .map(|i| match head.get(i) {
            Some(b) => *b,
            None => ((i as u64 * 31 + u64::from(seed)) % 251) as u8,
        })
        .collect()
}

/// How a person hands files to the chat.
#[derive(Clone, Copy)]
pub enum Hand {
    /// The attach button's file picker.
    Pick,
    /// Dropped on the conversation.
    Drop,
    /// Pasted into the message input.
    Paste,
}

/// Attaches files through the composer's file picker.
pub async fn attach(person: &Person, files: &[Value]) {
    attach_by(person, Hand::Pick, files, files.len()).await;
}

/// Attaches files as `hand` says; `chips` are then in the composer.
pub async fn attach_by(person: &Person, hand: Hand, files: &[Value], chips: usize) {
    let how = match hand {
        Hand::Pick => "pick",
        Hand::Drop => "drop",
        Hand::Paste => "paste",
    };
    person
        .js(
            "function make(s) {
               var bytes;
               if (s.b64) {
                 var t = atob(s.b64); bytes = new Uint8Array(t.length);
                 for (var i = 0; i < t.length; i++) bytes[i] = t.charCodeAt(i);
               } else {
                 var head = '%PDF-1.4\\n'; bytes = new Uint8Array(s.size);
                 for (var i = 0; i < s.size; i++)
                   bytes[i] = i < head.length ? head.charCodeAt(i) : (i * 31 + s.seed) % 251;
               }
               return new File([bytes], s.name, {type: s.type});
             }
             var dt = new DataTransfer();
             for (var s of arguments[0]) dt.items.add(make(s));
             if (arguments[1] === 'pick') {
               var input = document.querySelector('form.composer input[type=file]');
               input.files = dt.files;
               input.dispatchEvent(new Event('change', {bubbles: true}));
             } else if (arguments[1] === 'drop') {
               var pane = document.querySelector('.pane');
               pane.dispatchEvent(new DragEvent('dragover', {bubbles: true, cancelable: true, dataTransfer: dt}));
               pane.dispatchEvent(new DragEvent('drop', {bubbles: true, cancelable: true, dataTransfer: dt}));
             } else {
               document.querySelector('form.composer input[name=body]')
                 .dispatchEvent(new ClipboardEvent('paste', {bubbles: true, cancelable: true, clipboardData: dt}));
             }",
            vec![json!(files), json!(how)],
        )
        .await;
    person
        .wait(
            "the attached files' chips in the composer",
            &format!("return document.querySelectorAll('.attached .chip').length === {chips};"),
        )
        .await;
}

/// The room's messages with their files, through the HTTP API.
async fn stored(world: &World, room: &str) -> Vec<(String, Vec<Value>)> {
    let page: Value = world
        .api()
        .request(reqwest::Method::GET, &format!("/rooms/{room}/messages"))
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("history json");
    let events = page["events"].as_array().cloned().unwrap_or_default();
    events
        .iter()
        .filter(|e| e["kind"] == "message")
        .map(|e| {
            (
                e["body"].as_str().unwrap_or_default().to_string(),
                e["files"].as_array().cloned().unwrap_or_default(),
            )
        })
        .collect()
}

/// A signed link to a file for `user`, asked for by the site's backend.
async fn signed_link(world: &World, id: &str, user: &str) -> String {
    let links: Value = world
        .http
        .post(format!("http://{}/files/{id}/links", world.server.addr))
        .bearer_auth(&world.site.api_key)
        .header("X-Natter-User", user)
        .send()
        .await
        .expect("links")
        .json()
        .await
        .expect("links json");
    links["url"].as_str().expect("a signed link").to_string()
}

/// A file's bytes, downloaded with the site's API key.
async fn download(world: &World, id: &str) -> Vec<u8> {
    let res = world
        .http
        .get(format!("http://{}/files/{id}", world.server.addr))
        .bearer_auth(&world.site.api_key)
        .send()
        .await
        .expect("download");
    assert_eq!(res.status(), 200, "downloading {id}");
    res.bytes().await.expect("file bytes").to_vec()
}

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// A counter from the server's metrics.
async fn received(world: &World, name: &str) -> u64 {
    let text = world
        .http
        .get(format!("http://{}/metrics", world.server.addr))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// The SHA-256 of what a local address in the chat holds, read there.
async fn digest_in_browser(person: &Person, url: &str) -> Value {
    person
        .js_async(
            "var done = arguments[arguments.length - 1];
             fetch(arguments[0]).then(function (r) { return r.arrayBuffer(); })
               .then(function (b) { return crypto.subtle.digest('SHA-256', b); })
               .then(function (d) {
                 done([...new Uint8Array(d)].map(function (x) { return x.toString(16).padStart(2, '0'); }).join(''));
               }, function (e) { done('failed: ' + e); });",
            vec![json!(url)],
        )
        .await
}
