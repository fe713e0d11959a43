//! Files in messages, as a person sees them: a message from the site's
//! backend with an image and a PDF shows the image's thumbnail and a chip
//! with the PDF's name (text, whatever it holds) and size, and both links
//! work from the chat, signed, without the token in them.

use crate::harness::World;
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
    let href = seen[0].as_str().expect("the chip links the file");
    assert!(
        href.starts_with(&format!("/files/{pdf_id}?exp=")) && href.contains("&sig="),
        "{href}"
    );
    assert_eq!(seen[1], json!(hostile), "downloaded under its own name");
    assert_eq!(seen[2], json!("40 KB"));
    assert_eq!(
        (seen[3].clone(), seen[4].clone()),
        (json!("240"), json!("120")),
        "laid out before loading"
    );
    assert_eq!(seen[5], json!("scan.png"));
    assert_ne!(seen[6], json!("owned"), "nothing in a name ran");

    // The link works from the chat, with no header: the same bytes.
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
