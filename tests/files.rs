//! Files: resumable uploads (tus), messages that carry them, downloads for
//! members only, what is refused and what is left behind. Each test runs
//! on SQLite and on MariaDB.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use natter_shared::{Attachment, ClientFrame, ErrorCode, EventKind, FileId, RoomId, ServerFrame};
use natter_tests::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// Who calls the file routes: a user of a site, or a site's backend.
enum As<'a> {
    User(&'a TestSite, &'a str),
    Backend(&'a TestSite, &'a str),
    Nobody,
}

fn authed(req: reqwest::RequestBuilder, who: &As<'_>) -> reqwest::RequestBuilder {
    match who {
        As::User(site, user) => req
            .bearer_auth(token_for(site, user, 3600))
            .header("X-Natter-Site", site.id.as_str()),
        As::Backend(site, user) => req
            .bearer_auth(&site.api_key)
            .header("X-Natter-User", *user),
        As::Nobody => req,
    }
}

fn tus(app: &TestApp, method: Method, path: &str, who: &As<'_>) -> reqwest::RequestBuilder {
    authed(app.http.request(method, app.url(path)), who).header("Tus-Resumable", "1.0.0")
}

/// `POST /files`: the status, and the upload's path when created.
async fn create(app: &TestApp, who: &As<'_>, name: &str, len: usize) -> (u16, String, Value) {
    let meta = format!("filename {}", STANDARD.encode(name));
    let res = tus(app, Method::POST, "/files", who)
        .header("Upload-Length", len.to_string())
        .header("Upload-Metadata", meta)
        .send()
        .await
        .expect("create");
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, location, body)
}

/// `PATCH`: bytes from `offset`; the status, the new offset, the body.
async fn patch(
    app: &TestApp,
    who: &As<'_>,
    path: &str,
    offset: usize,
    bytes: &[u8],
) -> (u16, Option<u64>, Value) {
    let res = tus(app, Method::PATCH, path, who)
        .header("Upload-Offset", offset.to_string())
        .header("Content-Type", "application/offset+octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
        .expect("patch");
    let status = res.status().as_u16();
    let at = header_u64(&res, "upload-offset");
    (status, at, res.json().await.unwrap_or(Value::Null))
}

fn header_u64(res: &reqwest::Response, name: &str) -> Option<u64> {
    res.headers().get(name)?.to_str().ok()?.parse().ok()
}

/// `HEAD`: the status and the offset the server holds.
async fn head(app: &TestApp, who: &As<'_>, path: &str) -> (u16, Option<u64>) {
    let res = tus(app, Method::HEAD, path, who)
        .send()
        .await
        .expect("head");
    (res.status().as_u16(), header_u64(&res, "upload-offset"))
}

/// Uploads `bytes` whole in `pieces` requests; the file's id.
async fn upload(app: &TestApp, who: &As<'_>, name: &str, bytes: &[u8], pieces: usize) -> FileId {
    let (status, path, body) = create(app, who, name, bytes.len()).await;
    assert_eq!(status, 201, "creating {name}: {body}");
    let step = bytes.len().div_ceil(pieces.max(1));
    let mut at = 0;
    while at < bytes.len() {
        let end = (at + step).min(bytes.len());
        let (status, offset, body) = patch(app, who, &path, at, &bytes[at..end]).await;
        assert_eq!(status, 204, "uploading {name} at {at}: {body}");
        assert_eq!(offset, Some(end as u64));
        at = end;
    }
    file_id(&path)
}

fn file_id(path: &str) -> FileId {
    FileId::parse(path.rsplit('/').next().unwrap_or_default()).expect("file id in Location")
}

/// Pseudo-random bytes behind a PDF header: sniffed as a PDF.
fn pdf(len: usize, seed: u64) -> Vec<u8> {
    let mut out = b"%PDF-1.7\n".to_vec();
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// `GET` of a file path with a caller and maybe a Range.
async fn get(
    app: &TestApp,
    path: &str,
    who: &As<'_>,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = authed(app.http.get(app.url(path)), who);
    if let Some(r) = range {
        req = req.header("Range", r);
    }
    let res = req.send().await.expect("download");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.bytes().await.expect("body").to_vec())
}

fn code_of(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body).unwrap_or(Value::Null)["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Sends a message with files and returns the ack's seq or the error.
async fn send_files(
    client: &mut Client,
    room: &RoomId,
    body: &str,
    files: Vec<FileId>,
) -> Result<u64, (ErrorCode, String)> {
    client.try_send(room, body, files, cid()).await
}

/// The attachments of the next message event a client receives.
async fn next_files(client: &mut Client) -> (String, Vec<Attachment>) {
    let frame = client
        .recv_until(|f| matches!(f, ServerFrame::Event { event } if matches!(event.kind, EventKind::Message { .. })))
        .await;
    match frame {
        ServerFrame::Event { event } => match event.kind {
            EventKind::Message { body, files, .. } => (body, files),
            _ => unreachable!("filtered above"),
        },
        _ => unreachable!("filtered above"),
    }
}

/// Files left in the store's upload area.
fn parts_left(app: &TestApp) -> usize {
    let dir = files_dir_for(&app.database_url).join("uploads");
    walk(&dir)
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| {
                let p = e.path();
                if p.is_dir() { walk(&p) } else { 1 }
            })
            .sum()
    })
}

async fn a_file_goes_up_in_parts_and_down_to_members_only(db: Db) {
    let app = spawn_app(db).await;
    let room = app.group("Clinic", &["alice", "bob"]).await;
    app.group("Elsewhere", &["carol"]).await;
    let alice = As::User(&app.site, "alice");
    let bytes = pdf(3 * 1024 * 1024 + 17, 7);

    // Announced, then sent in two requests; HEAD between them tells where
    // the upload stands.
    let (status, path, body) = create(&app, &alice, "results.pdf", bytes.len()).await;
    assert_eq!(status, 201, "{body}");
    let half = bytes.len() / 2;
    let (status, at, _) = patch(&app, &alice, &path, 0, &bytes[..half]).await;
    assert_eq!((status, at), (204, Some(half as u64)));
    assert_eq!(head(&app, &alice, &path).await, (200, Some(half as u64)));
    let bob = As::User(&app.site, "bob");
    assert_eq!(
        head(&app, &bob, &path).await.0,
        404,
        "bob cannot see alice's upload"
    );
    let (status, at, _) = patch(&app, &alice, &path, half, &bytes[half..]).await;
    assert_eq!((status, at), (204, Some(bytes.len() as u64)));
    let id = file_id(&path);

    // The message carries the file; bob receives it once, with what the
    // server made of it.
    let (mut alice_ws, _) = app.login("alice").await;
    let (mut bob_ws, _) = app.login("bob").await;
    send_files(&mut alice_ws, &room.id, "", vec![id.clone()])
        .await
        .expect("a file-only message is sent");
    let (caption, files) = next_files(&mut bob_ws).await;
    assert_eq!(caption, "");
    assert_eq!(files.len(), 1);
    let f = &files[0];
    assert_eq!(
        (f.id.as_str(), f.name.as_str()),
        (id.as_str(), "results.pdf")
    );
    assert_eq!(
        (f.size, f.mime.as_str()),
        (bytes.len() as u64, "application/pdf")
    );
    assert!(!f.thumb && f.width.is_none());

    // Bob downloads the same bytes, whole and in a range, served so that
    // nothing in it can run.
    let file_path = format!("/files/{id}");
    let (status, headers, got) = get(&app, &file_path, &bob, None).await;
    assert_eq!(status, 200);
    assert_eq!(sha(&got), sha(&bytes), "the bytes come back unchanged");
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(h("content-type"), "application/pdf");
    assert_eq!(h("x-content-type-options"), "nosniff");
    assert_eq!(h("content-security-policy"), "sandbox");
    assert!(
        h("content-disposition").starts_with("attachment;"),
        "{}",
        h("content-disposition")
    );
    assert_eq!(h("accept-ranges"), "bytes");
    let (status, headers, got) = get(&app, &file_path, &bob, Some("bytes=100-199")).await;
    assert_eq!(status, 206);
    assert_eq!(got, &bytes[100..200]);
    assert_eq!(
        headers.get("content-range").and_then(|v| v.to_str().ok()),
        Some(format!("bytes 100-199/{}", bytes.len()).as_str())
    );
    let (status, _, _) = get(
        &app,
        &file_path,
        &bob,
        Some(&format!("bytes={}-", bytes.len())),
    )
    .await;
    assert_eq!(status, 416);

    // Nobody else reads it: not a member, no credential, another site.
    let (status, _, body) = get(&app, &file_path, &As::User(&app.site, "carol"), None).await;
    assert_eq!((status, code_of(&body).as_str()), (403, "not_member"));
    let (status, _, _) = get(&app, &file_path, &As::Nobody, None).await;
    assert_eq!(status, 401);
    let (status, _, _) = get(&app, &file_path, &As::User(&app.other, "bob"), None).await;
    assert_eq!(status, 403, "a user of another site");
    let forged = app
        .http
        .get(app.url(&file_path))
        .bearer_auth(token_for(&app.other, "bob", 3600))
        .header("X-Natter-Site", app.site.id.as_str())
        .send()
        .await
        .expect("forged");
    assert_eq!(
        forged.status(),
        StatusCode::UNAUTHORIZED,
        "a token of another site's secret"
    );
    let (status, _, got) = get(&app, &file_path, &As::Backend(&app.site, "x"), None).await;
    assert_eq!(
        (status, sha(&got)),
        (200, sha(&bytes)),
        "the site's backend"
    );
    let (status, _, _) = get(&app, &file_path, &As::Backend(&app.other, "x"), None).await;
    assert_eq!(status, 403, "another site's backend");

    // Signed links work without headers (for <img>, <audio>, a download
    // link), only as signed.
    let links: Value = authed(app.http.post(app.url(&format!("/files/{id}/links"))), &bob)
        .send()
        .await
        .expect("links")
        .json()
        .await
        .expect("links json");
    let url = links["url"].as_str().expect("url");
    let res = app.http.get(app.url(url)).send().await.expect("signed get");
    assert_eq!(res.status(), 200);
    assert_eq!(sha(&res.bytes().await.expect("bytes")), sha(&bytes));
    let tampered = url.replace("exp=", "exp=9");
    let res = app
        .http
        .get(app.url(&tampered))
        .send()
        .await
        .expect("tampered");
    assert_eq!(res.status(), 403);
    assert_eq!(code_of(&res.bytes().await.expect("body")), "link_invalid");
    let status = authed(
        app.http.post(app.url(&format!("/files/{id}/links"))),
        &As::User(&app.site, "carol"),
    )
    .send()
    .await
    .expect("links")
    .status();
    assert_eq!(status, 403, "no links for a non-member");

    // Counted; and the parts are gone once the file is whole.
    let metrics = app.metrics().await;
    assert!(metrics.contains("natter_files_stored_total 1"), "{metrics}");
    assert!(metrics.contains(&format!("natter_file_bytes_stored_total {}", bytes.len())));
    assert_eq!(parts_left(&app), 0);
    crate::assert_no_panics();
    app.stop().await;
}

async fn an_upload_cut_off_continues_where_it_stopped(db: Db) {
    let app = spawn_app(db).await;
    let room = app.dialog("alice", "bob").await;
    let alice = As::User(&app.site, "alice");
    let bytes = pdf(4 * 1024 * 1024, 11);
    let (status, path, _) = create(&app, &alice, "scan.pdf", bytes.len()).await;
    assert_eq!(status, 201);

    // One PATCH announces the whole file but the connection drops after
    // 2.5 MiB: what arrived is kept.
    let cut = 2 * 1024 * 1024 + 512 * 1024;
    let mut sock = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let request = format!(
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nX-Natter-Site: {}\r\n\
         Tus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\n\
         Content-Length: {}\r\n\r\n",
        app.addr,
        token_for(&app.site, "alice", 3600),
        app.site.id,
        bytes.len()
    );
    sock.write_all(request.as_bytes()).await.expect("head");
    sock.write_all(&bytes[..cut]).await.expect("body");
    sock.flush().await.expect("flush");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(sock);

    let held = eventually(
        Duration::from_secs(10),
        "the server holds what arrived",
        async || match head(&app, &alice, &path).await {
            (200, Some(at)) if at == cut as u64 => Some(at),
            _ => None,
        },
    )
    .await;
    // Continue from there: in all, less than 1.5× the file went up.
    let sent_again = bytes.len() - held as usize;
    assert!(cut + sent_again < bytes.len() * 3 / 2);
    let (status, at, body) =
        patch(&app, &alice, &path, held as usize, &bytes[held as usize..]).await;
    assert_eq!((status, at), (204, Some(bytes.len() as u64)), "{body}");

    let id = file_id(&path);
    let (mut alice_ws, _) = app.login("alice").await;
    send_files(&mut alice_ws, &room.id, "the scan", vec![id.clone()])
        .await
        .expect("sent");
    let (status, _, got) = get(
        &app,
        &format!("/files/{id}"),
        &As::User(&app.site, "bob"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(sha(&got), sha(&bytes));
    assert_eq!(parts_left(&app), 0);
    crate::assert_no_panics();
    app.stop().await;
}

async fn refusals_are_clear_and_leave_nothing_behind(db: Db) {
    let app = spawn_app_with(db, |c| {
        c.files.max_file_bytes = 1024 * 1024;
        c.files.max_upload_bytes_per_day = 2 * 1024 * 1024;
    })
    .await;
    let room = app.group("Class", &["alice", "bob"]).await;
    let alice = As::User(&app.site, "alice");

    // Too large, announced or sent; a request without the protocol header;
    // a PATCH from the wrong offset.
    let (status, _, body) = create(&app, &alice, "big.pdf", 1024 * 1024 + 1).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("file_too_large"))
    );
    let (_, path, _) = create(&app, &alice, "small.pdf", 100).await;
    let (status, _, body) = patch(&app, &alice, &path, 0, &pdf(101, 1)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("file_too_large"))
    );
    assert_eq!(
        head(&app, &alice, &path).await,
        (200, Some(0)),
        "nothing of it was kept"
    );
    let (status, _, _) = patch(&app, &alice, &path, 50, &pdf(50, 1)).await;
    assert_eq!(status, 409);
    let res = authed(app.http.post(app.url("/files")), &alice)
        .header("Upload-Length", "10")
        .send()
        .await
        .expect("no tus header");
    assert_eq!(res.status(), 412);
    assert_eq!(create(&app, &As::Nobody, "x", 10).await.0, 401);

    // A type not on the list (HTML, whatever its name says), and an image
    // that does not decode: refused once complete, and gone.
    let html = b"<!DOCTYPE html><script>parent.document.title='owned'</script>";
    let (_, path, _) = create(&app, &alice, "notes.txt", html.len()).await;
    let (status, _, body) = patch(&app, &alice, &path, 0, html).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (415, Some("file_type_refused"))
    );
    assert_eq!(head(&app, &alice, &path).await.0, 404);
    let fake = b"\x89PNG\r\n\x1a\n this is not an image at all";
    let (_, path, _) = create(&app, &alice, "photo.png", fake.len()).await;
    let (status, _, body) = patch(&app, &alice, &path, 0, fake).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("file_invalid"))
    );
    assert_eq!(head(&app, &alice, &path).await.0, 404);

    // Files that cannot go into a message: another user's, an unfinished
    // one, too many.
    let (mut alice_ws, _) = app.login("alice").await;
    let bobs = upload(&app, &As::User(&app.site, "bob"), "b.pdf", &pdf(1000, 2), 1).await;
    let err = send_files(&mut alice_ws, &room.id, "", vec![bobs]).await;
    assert_eq!(err.map_err(|e| e.0), Err(ErrorCode::FileInvalid));
    let (_, unfinished, _) = create(&app, &alice, "u.pdf", 1000).await;
    let err = send_files(&mut alice_ws, &room.id, "", vec![file_id(&unfinished)]).await;
    assert_eq!(err.map_err(|e| e.0), Err(ErrorCode::FileInvalid));
    let mine = upload(&app, &alice, "a.pdf", &pdf(1000, 3), 1).await;
    let eleven = vec![mine.clone(); 11];
    let err = send_files(&mut alice_ws, &room.id, "", eleven).await;
    assert_eq!(err.map_err(|e| e.0), Err(ErrorCode::InvalidInput));
    let other_room = app.group("Other", &["alice"]).await;
    send_files(&mut alice_ws, &room.id, "once here", vec![mine.clone()])
        .await
        .expect("sent");
    let err = send_files(&mut alice_ws, &other_room.id, "", vec![mine]).await;
    assert_eq!(
        err.map_err(|e| e.0),
        Err(ErrorCode::FileInvalid),
        "bound to its first room"
    );

    // The day's bytes run out.
    let (status, _, _) = create(&app, &alice, "1.pdf", 1024 * 1024).await;
    assert_eq!(status, 201);
    let (status, _, body) = create(&app, &alice, "2.pdf", 1024 * 1024).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (413, Some("quota_exceeded"))
    );

    assert_eq!(parts_left(&app), 0, "refused uploads left parts behind");
    crate::assert_no_panics();
    app.stop().await;
}

async fn markup_is_served_so_that_it_never_runs(db: Db) {
    let app = spawn_app(db).await;
    let room = app.group("Lab", &["alice", "bob"]).await;
    // The site takes anything.
    let res = app
        .api(Method::PUT, "/file-types")
        .json(&json!({"types": "*"}))
        .send()
        .await
        .expect("file types");
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.expect("json"), json!(["*"]));
    let (mut ws, _) = app.login("alice").await;
    let alice = As::User(&app.site, "alice");
    for (name, bytes) in [
        (
            "page.html",
            &b"<html><script>alert(document.domain)</script></html>"[..],
        ),
        (
            "pic.svg",
            &b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"[..],
        ),
    ] {
        let id = upload(&app, &alice, name, bytes, 1).await;
        send_files(&mut ws, &room.id, "", vec![id.clone()])
            .await
            .expect("sent");
        let (status, headers, _) = get(&app, &format!("/files/{id}"), &alice, None).await;
        assert_eq!(status, 200);
        let h = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(
            h("content-type"),
            "text/html",
            "{name} is sniffed as markup"
        );
        assert!(h("content-disposition").starts_with("attachment;"));
        assert_eq!(h("content-security-policy"), "sandbox");
        assert_eq!(h("x-content-type-options"), "nosniff");
    }
    // Back to the default list, which has no markup.
    let res = app
        .api(Method::PUT, "/file-types")
        .json(&json!({"types": null}))
        .send()
        .await
        .expect("file types");
    let list: Vec<String> = res.json().await.expect("json");
    assert!(list.contains(&"application/pdf".to_string()) && !list.contains(&"*".to_string()));
    let res = app
        .api(Method::PUT, "/file-types")
        .json(&json!({"types": "image/"}))
        .send()
        .await
        .expect("file types");
    assert_eq!(res.status(), 400);
    crate::assert_no_panics();
    app.stop().await;
}

/// A JPEG with EXIF (a place) and a comment.
fn photo(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .expect("encode");
    let mut jpeg = img_parts::jpeg::Jpeg::from_bytes(out.into()).expect("jpeg");
    use img_parts::ImageEXIF;
    jpeg.set_exif(Some(img_parts::Bytes::from_static(
        b"MM\0*\0\0\0\x08\0\0GPS 52.5200N 13.4050E",
    )));
    jpeg.segments_mut().insert(
        1,
        img_parts::jpeg::JpegSegment::new_with_contents(
            0xFE,
            img_parts::Bytes::from_static(b"taken at home"),
        ),
    );
    jpeg.encoder().bytes().to_vec()
}

async fn images_lose_their_metadata_and_get_thumbnails(db: Db) {
    let app = spawn_app(db).await;
    let room = app.dialog("alice", "bob").await;
    let alice = As::User(&app.site, "alice");
    let bob = As::User(&app.site, "bob");
    let raw = photo(1200, 600);
    assert!(raw.windows(3).any(|w| w == b"GPS"));
    let id = upload(&app, &alice, "IMG_0001.jpg", &raw, 1).await;
    let (mut alice_ws, _) = app.login("alice").await;
    let (mut bob_ws, _) = app.login("bob").await;
    send_files(&mut alice_ws, &room.id, "look", vec![id.clone()])
        .await
        .expect("sent");
    let (_, files) = next_files(&mut bob_ws).await;
    let f = &files[0];
    assert_eq!(
        (f.mime.as_str(), f.width, f.height, f.thumb),
        ("image/jpeg", Some(1200), Some(600), true)
    );

    let (status, headers, got) = get(&app, &format!("/files/{id}"), &bob, None).await;
    assert_eq!(status, 200);
    assert!(!got.windows(3).any(|w| w == b"GPS"), "GPS stripped");
    assert!(!got.windows(4).any(|w| w == b"home"), "comment stripped");
    assert_eq!(
        f.size,
        got.len() as u64,
        "the size announced is the size served"
    );
    assert!(
        headers
            .get("content-disposition")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("inline;")),
        "images show inline"
    );
    let shown = image::load_from_memory(&got).expect("still an image");
    assert_eq!((shown.width(), shown.height()), (1200, 600));

    let thumb = eventually(
        Duration::from_secs(10),
        "the thumbnail is made",
        async || {
            let (status, _, got) = get(&app, &format!("/files/{id}/thumb"), &bob, None).await;
            let img = image::load_from_memory(&got).ok()?;
            (status == 200 && img.width() == 320).then_some(img)
        },
    )
    .await;
    assert_eq!(thumb.height(), 160);
    crate::assert_no_panics();
    app.stop().await;
}

async fn abandoned_uploads_are_swept(db: Db) {
    let app = spawn_app_with(db, |c| c.files.upload_expiry_secs = 1).await;
    let alice = As::User(&app.site, "alice");
    let (_, path, _) = create(&app, &alice, "half.pdf", 2 * 1024 * 1024).await;
    let (status, _, _) = patch(&app, &alice, &path, 0, &pdf(1024 * 1024 + 10, 5)).await;
    assert_eq!(status, 204);
    assert!(parts_left(&app) > 0);
    eventually(Duration::from_secs(15), "the upload is swept", async || {
        (head(&app, &alice, &path).await.0 == 404 && parts_left(&app) == 0).then_some(())
    })
    .await;
    assert!(
        app.metrics()
            .await
            .contains("natter_uploads_abandoned_total 1")
    );
    crate::assert_no_panics();
    app.stop().await;
}

async fn the_sites_backend_posts_a_message_with_a_file(db: Db) {
    let app = spawn_app(db).await;
    let room = app.group("Support", &["alice", "bob"]).await;
    let bytes = pdf(5000, 9);
    let id = upload(
        &app,
        &As::Backend(&app.site, "alice"),
        "invoice.pdf",
        &bytes,
        1,
    )
    .await;
    let path = format!("/rooms/{}/messages", room.id);
    let res = app
        .api(Method::POST, &path)
        .json(&json!({"body": "", "files": [id]}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 400, "files need `from`");
    let res = app
        .api(Method::POST, &path)
        .json(&json!({"from": "bob", "body": "", "files": [id]}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 422, "the file is alice's");
    let res = app
        .api(Method::POST, &path)
        .json(&json!({"from": "alice", "body": "Your invoice", "files": [id]}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    let event: Value = res.json().await.expect("event");
    assert_eq!(event["files"][0]["name"], "invoice.pdf");
    assert_eq!(event["files"][0]["type"], "application/pdf");
    // It is in the history too, for a fresh reader.
    let page = app.messages(&room.id, "").await;
    assert_eq!(
        page["events"]
            .as_array()
            .and_then(|e| e.last())
            .map(|e| e["files"][0]["id"].clone()),
        Some(json!(id))
    );
    let (status, _, got) = get(
        &app,
        &format!("/files/{id}"),
        &As::User(&app.site, "bob"),
        None,
    )
    .await;
    assert_eq!((status, sha(&got)), (200, sha(&bytes)));
    crate::assert_no_panics();
    app.stop().await;
}

/// A file goes into one message: that message's retry carries it again,
/// any other message is refused it (over the socket and through the
/// API), and it cannot be deleted while the message stands. A send
/// refused when it is stored (a mute) leaves its file free: deletable,
/// and postable in the next message.
async fn a_file_goes_into_one_message(db: Db) {
    let app = spawn_app(db).await;
    let room = app.group("Class", &["alice", "bob"]).await;
    let alice = As::User(&app.site, "alice");
    let (mut alice_ws, _) = app.login("alice").await;
    let plan = upload(&app, &alice, "plan.pdf", &pdf(2000, 4), 1).await;
    let first = cid();
    let seq = alice_ws
        .try_send(&room.id, "the plan", vec![plan.clone()], first)
        .await
        .expect("sent");
    let again = alice_ws
        .try_send(&room.id, "the plan", vec![plan.clone()], first)
        .await;
    assert_eq!(again, Ok(seq), "a retry is the same message");
    let err = send_files(&mut alice_ws, &room.id, "again", vec![plan.clone()]).await;
    assert_eq!(
        err.map_err(|e| e.0),
        Err(ErrorCode::FileInvalid),
        "a second message"
    );
    let posts = format!("/rooms/{}/messages", room.id);
    let (status, body) = app
        .call(
            Method::POST,
            &posts,
            Some(json!({"from": "alice", "body": "", "files": [plan]})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("file_invalid")),
        "{body}"
    );
    let res = tus(&app, Method::DELETE, &format!("/files/{plan}"), &alice)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 409, "a file in a message stays");
    let body: Value = res.json().await.unwrap_or_default();
    assert_eq!(body["error"]["code"], "conflict");

    // Muted: the writer refuses the sends, and binds their files to nothing.
    let mute = format!("/rooms/{}/members/alice/mute", room.id);
    let (status, body) = app
        .call(Method::PUT, &mute, Some(json!({"secs": 3600})))
        .await;
    assert_eq!(status, 200, "{body}");
    let notes = upload(&app, &alice, "notes.pdf", &pdf(1500, 5), 1).await;
    let spare = upload(&app, &alice, "spare.pdf", &pdf(1500, 6), 1).await;
    for file in [&notes, &spare] {
        let err = send_files(&mut alice_ws, &room.id, "", vec![file.clone()]).await;
        assert_eq!(err.map_err(|e| e.0), Err(ErrorCode::Muted));
    }
    let res = tus(&app, Method::DELETE, &format!("/files/{spare}"), &alice)
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 204, "a refused send's file is free to delete");
    assert_eq!(app.call(Method::DELETE, &mute, None).await.0, 204);
    let (mut bob_ws, _) = app.login("bob").await;
    send_files(&mut alice_ws, &room.id, "the notes", vec![notes.clone()])
        .await
        .expect("a refused send's file goes into the next message");
    let (body, files) = next_files(&mut bob_ws).await;
    assert_eq!(body, "the notes");
    assert_eq!(files.iter().map(|f| &f.id).collect::<Vec<_>>(), [&notes]);
    crate::assert_no_panics();
    app.stop().await;
}

/// The site deletes a message: its body and files go for everyone, a
/// tombstone reaches the room, history keeps only who and when, a retry
/// of the sender's send adds nothing, and nothing else can be deleted.
async fn a_deleted_message_goes_for_everyone_with_its_files(db: Db) {
    let app = spawn_app(db).await;
    let room = app.dialog("alice", "bob").await;
    let (mut bob, _) = app.login("bob").await;
    let bytes = pdf(4000, 3);
    let id = upload(&app, &As::User(&app.site, "alice"), "plan.pdf", &bytes, 1).await;
    let (mut alice, _) = app.login("alice").await;
    let secret = cid();
    alice
        .send(&ClientFrame::Send {
            client_id: secret,
            room: room.id.clone(),
            body: "the secret plan".into(),
            files: vec![id.clone()],
        })
        .await;
    let target = match alice
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await
    {
        ServerFrame::Ack { seq, .. } => seq,
        other => panic!("expected an ack, got {other:?}"),
    };
    let kept = alice.say(&room.id, "kept").await;
    let messages = |seq: u64| format!("/rooms/{}/messages/{seq}", room.id);
    let api = &app;
    let delete = |seq: u64| async move {
        let res = api
            .api(Method::DELETE, &messages(seq))
            .send()
            .await
            .expect("delete");
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap_or(Value::Null))
    };

    let (status, tombstone) = delete(target).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&tombstone["kind"], &tombstone["target"], &tombstone["seq"]),
        (&json!("message_deleted"), &json!(target), &json!(kept + 1))
    );
    // The room hears of it live.
    let heard = bob
        .recv_until(|f| {
            matches!(f, ServerFrame::Event { event } if matches!(event.kind, EventKind::MessageDeleted { .. }))
        })
        .await;
    assert!(
        matches!(&heard, ServerFrame::Event { event } if event.kind == EventKind::MessageDeleted { target }),
        "{heard:?}"
    );
    // History keeps who and when only; the file is gone.
    let page = app.messages(&room.id, "").await;
    let events = page["events"].as_array().expect("events");
    let gone = events
        .iter()
        .find(|e| e["seq"] == json!(target))
        .expect("the deleted message");
    assert_eq!(gone["kind"], "deleted");
    assert_eq!(gone["sender"], "alice");
    assert!(
        gone.get("body").is_none() && gone.get("files").is_none(),
        "{gone}"
    );
    for who in [As::User(&app.site, "bob"), As::User(&app.site, "alice")] {
        let (status, _, _) = get(&app, &format!("/files/{id}"), &who, None).await;
        assert_eq!(status, 404, "the deleted message's file");
    }
    // Deleting again answers what stands; the sender's retry adds nothing.
    let (status, again) = delete(target).await;
    assert_eq!((status, &again["kind"]), (200, &json!("deleted")));
    alice
        .send(&ClientFrame::Send {
            client_id: secret,
            room: room.id.clone(),
            body: "the secret plan".into(),
            files: Vec::new(),
        })
        .await;
    match alice
        .recv_until(|f| matches!(f, ServerFrame::Ack { .. }))
        .await
    {
        ServerFrame::Ack { seq, .. } => assert_eq!(seq, target, "the retry is the deleted message"),
        other => panic!("expected an ack, got {other:?}"),
    }
    let after = app.messages(&room.id, "").await;
    assert_eq!(after["events"].as_array().map(Vec::len), Some(events.len()));
    // Only messages can be deleted, and only the site's own.
    let joined = events
        .iter()
        .find(|e| e["kind"] == "member_joined")
        .and_then(|e| e["seq"].as_u64());
    for seq in joined.into_iter().chain([kept + 1, 999, u64::MAX]) {
        assert_eq!(delete(seq).await.0, 404, "seq {seq}");
    }
    for bad in ["0", "x", "-1"] {
        let path = format!("/rooms/{}/messages/{bad}", room.id);
        let res = app.api(Method::DELETE, &path).send().await.expect("delete");
        assert_eq!(res.status(), 400, "seq {bad}");
    }
    let other = app.api_client_of(&app.other);
    let res = other
        .request(Method::DELETE, &messages(kept))
        .send()
        .await
        .expect("delete");
    assert_eq!(res.status(), 404, "another site's message");
    // Nothing of it counts as unread.
    let unread = app
        .api(Method::GET, "/users/bob/unread")
        .send()
        .await
        .expect("unread");
    let unread: Value = unread.json().await.expect("json");
    assert_eq!(unread["total"], 1, "only `kept` is unread: {unread}");
    crate::assert_no_panics();
    app.stop().await;
}

on_both!(
    a_deleted_message_goes_for_everyone_with_its_files,
    a_file_goes_into_one_message,
    a_file_goes_up_in_parts_and_down_to_members_only,
    an_upload_cut_off_continues_where_it_stopped,
    refusals_are_clear_and_leave_nothing_behind,
    markup_is_served_so_that_it_never_runs,
    images_lose_their_metadata_and_get_thumbnails,
    abandoned_uploads_are_swept,
    the_sites_backend_posts_a_message_with_a_file,
);
