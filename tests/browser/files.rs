//! Files in messages, as a person sees them: a message from the site's
//! backend with an image and a PDF shows the image's thumbnail and a chip
//! with the PDF's name (text, whatever it holds) and size, and both links
//! work from the chat, signed, without the token in them.

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

/// Scenario 1: files attached offline (one dropped, one pasted) survive a
/// reload and are sent once the network returns, once, with the same
/// bytes.
pub async fn files_attached_offline_are_sent_after_a_reload(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    alice.wait_shell_kept().await;
    // The chat's server is out of reach (the host page is not: the page
    // reloads, the chat opens from its cache).
    alice.proxy.set(crate::harness::Link::Down);
    alice.wait_offline().await;

    let pdf = pdf_bytes(3 * 1024 * 1024, 7);
    let image = png(640, 480);
    // The PDF dropped on the conversation, the photo pasted.
    let dropped = [spec("certificate.pdf", "application/pdf", pdf.len(), 7)];
    attach_by(&alice, Hand::Drop, &dropped, 1).await;
    let pasted = [spec_of("photo.png", "image/png", &image)];
    attach_by(&alice, Hand::Paste, &pasted, 2).await;
    alice.type_and_send("The certificate and a photo").await;
    let shown = "var m = [...document.querySelectorAll('.msg.pending')];
         var last = m[m.length - 1];
         var img = last && last.querySelector('.uploading img.preview');
         return !!last && last.querySelectorAll('.uploading').length === 2
           && !!img && img.complete && img.naturalWidth === 640
           && last.querySelector('.uploading .file-name').textContent === 'certificate.pdf';";
    alice
        .wait("the message with its two files, the photo previewed", shown)
        .await;

    alice.reload().await;
    alice.open_chat().await;
    alice.choose("Bob").await;
    alice.wait("the same after the reload", shown).await;
    assert!(world.rows(&room).await.is_empty(), "nothing sent offline");

    alice.proxy.set(crate::harness::Link::Up);
    bob.wait(
        "the photo's thumbnail and the PDF's chip",
        "var i = document.querySelector('.files .file-image img');
         var c = document.querySelector('.files .file .file-name');
         return !!i && i.complete && i.naturalWidth > 0 && !!c && c.textContent === 'certificate.pdf';",
    )
    .await;
    alice.wait_pending(0, "her message sent").await;
    crate::offline::assert_delivered_once(
        &world,
        &room,
        &["The certificate and a photo".to_string()],
    )
    .await;
    let messages = stored(&world, &room).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let files = &messages[0].1;
    assert_eq!(files.len(), 2, "both files, once: {files:?}");
    assert_eq!(files[0]["name"], "certificate.pdf");
    assert_eq!(files[1]["name"], "photo.png");
    assert_eq!(
        (files[1]["width"].clone(), files[1]["height"].clone()),
        (json!(640), json!(480))
    );
    let got = download(&world, files[0]["id"].as_str().expect("id")).await;
    assert_eq!(
        digest(&got),
        digest(&pdf),
        "the PDF arrives with the same bytes"
    );
    world.finish(vec![alice, bob]).await;
}

/// Scenario 2: a 20 MiB upload cut at about half, then the page reloaded,
/// continues from where the server stands once the link returns.
pub async fn an_upload_cut_halfway_continues(db: Db) {
    const SIZE: usize = 20 * 1024 * 1024;
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    alice.wait_shell_kept().await;
    let metric = "natter_upload_bytes_received_total";
    let before = received(&world, metric).await;
    alice.proxy.cut_after(SIZE as u64 / 2);
    attach(&alice, &[spec("slides.pdf", "application/pdf", SIZE, 3)]).await;
    alice.type_and_send("The slides").await;
    let deadline = std::time::Instant::now() + crate::harness::PATIENCE;
    while !alice.proxy.is_down() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never got halfway"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The bar shows what went up, and the message is not sent.
    alice
        .wait(
            "the progress bar part way",
            "var p = document.querySelector('.msg.pending .uploading progress');
             return !!p && p.value > 0 && p.value < p.max;",
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let at_cut = received(&world, metric).await - before;
    assert!(
        world.rows(&room).await.is_empty(),
        "nothing sent before the file is up"
    );
    // The page is reloaded before the link returns: the upload continues
    // from what the store kept of it.
    alice.reload().await;
    alice.open_chat().await;
    alice.choose("Bob").await;
    alice
        .wait(
            "the message still uploading after the reload",
            "return document.querySelectorAll('.msg.pending .uploading').length === 1;",
        )
        .await;
    alice.proxy.set(crate::harness::Link::Up);

    bob.wait_message("The slides", crate::harness::PATIENCE)
        .await;
    bob.wait(
        "the slides' chip",
        "var c = document.querySelector('.files .file .file-name'); return !!c && c.textContent === 'slides.pdf';",
    )
    .await;
    let total = received(&world, metric).await - before;
    assert!(
        at_cut > 0 && at_cut < SIZE as u64,
        "the server held part of the file at the cut: {at_cut}"
    );
    assert!(
        (total as f64) < 1.5 * SIZE as f64,
        "the upload continued rather than starting over: {total} bytes received for {SIZE}"
    );
    let messages = stored(&world, &room).await;
    let id = messages[0].1[0]["id"].as_str().expect("id").to_string();
    assert_eq!(
        digest(&download(&world, &id).await),
        digest(&pdf_bytes(SIZE, 3))
    );
    world.finish(vec![alice, bob]).await;
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
    let open = "window.__ran = 0;
        window.addEventListener('message', function (e) { if (e.data === 'ran') window.__ran++; });
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
    bob.wait(
        "the control page's script to run",
        "return window.__ran >= 1;",
    )
    .await;
    // An absence is no condition to wait for: the frames get a moment.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let ran = bob.js("return window.__ran;", vec![]).await;
    assert_eq!(ran, json!(1), "only the control ran; opened: {urls:?}");
    world.finish(vec![alice, bob]).await;
}

/// Scenario 6, as the person sees it: a file over the size limit is
/// refused in the composer before anything is kept; one whose bytes are
/// of a type the site does not take (whatever it claims) is refused by the
/// server, and the message says so; nothing reaches the room.
pub async fn refused_files_say_why(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    let max = natter_shared::limits::MAX_FILE_BYTES as usize;
    attach(&alice, &[spec("huge.pdf", "application/pdf", max + 1, 1)]).await;
    alice.press_send().await;
    alice
        .wait(
            "the composer to say the file is too large",
            "var e = document.querySelector('form.composer .error');
             return !!e && e.textContent.includes('huge.pdf') && e.textContent.includes('too large');",
        )
        .await;
    alice
        .js(
            "document.querySelector('.attached .chip .remove').click();",
            vec![],
        )
        .await;
    // An executable that declares no type: only its bytes tell.
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.extend([0u8; 4096]);
    attach(&alice, &[spec_of("tool", "", &elf)]).await;
    alice.type_and_send("try this").await;
    alice
        .wait(
            "the message marked not sent, with the reason",
            "var m = document.querySelector('.msg.failed');
             return !!m && m.textContent.includes('file_type_refused') && !!m.querySelector('.retry');",
        )
        .await;
    assert!(
        world.rows(&room).await.is_empty(),
        "nothing reached the room"
    );
    assert_eq!(bob.bodies().await, Vec::<String>::new());
    world.finish(vec![alice, bob]).await;
}

/// A message whose file is uploading can be cancelled: it leaves the
/// conversation, its upload stops, and nothing reaches the room.
pub async fn an_upload_can_be_cancelled(db: Db) {
    const SIZE: usize = 20 * 1024 * 1024;
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    let metric = "natter_upload_bytes_received_total";
    alice.proxy.cut_after(SIZE as u64 / 4);
    attach(&alice, &[spec("draft.pdf", "application/pdf", SIZE, 5)]).await;
    alice.type_and_send("not this one").await;
    let deadline = std::time::Instant::now() + crate::harness::PATIENCE;
    while !alice.proxy.is_down() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    alice
        .js(
            "document.querySelector('.msg.pending .cancel').click();",
            vec![],
        )
        .await;
    alice.wait_pending(0, "the cancelled message gone").await;
    alice.proxy.set(crate::harness::Link::Up);
    let at_cancel = received(&world, metric).await;
    // An absence is no condition to wait for: the upload gets a moment to
    // (wrongly) go on.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        received(&world, metric).await,
        at_cancel,
        "nothing more went up"
    );
    assert!(
        world.rows(&room).await.is_empty(),
        "nothing reached the room"
    );
    assert!(!alice.bodies().await.contains(&"not this one".to_string()));
    assert!(bob.bodies().await.is_empty());
    world.finish(vec![alice, bob]).await;
}
