//! Files in an S3 bucket (`--files-url s3://…`): an S3-compatible server
//! of the test's own (moto's, from PyPI: `pip install 'moto[server]'`),
//! and two `natter` processes on one database sharing the bucket, as the
//! nodes of a site do. An upload started on one node continues on the
//! other, the file downloads from either with the same bytes, and the
//! objects are in the bucket under the configured prefix.

use crate::nodes::{free_port, kill, log_dir, log_file, site_on, tail, tool};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use natter_tests::{ApiClient, Db, User, eventually, fresh_database, natter_bin};
use serde_json::json;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BUCKET: &str = "natter-bucket";
const START: Duration = Duration::from_secs(30);

/// A child process killed on drop.
struct Running(Option<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        kill(&mut self.0);
    }
}

async fn answers(url: &str, what: &str, log: &Path, child: &mut Running) {
    let http = reqwest::Client::new();
    eventually(START, what, async || {
        if let Some(Ok(Some(status))) = child.0.as_mut().map(Child::try_wait) {
            panic!("{what}: exited ({status}):\n{}", tail(log));
        }
        http.get(url).send().await.ok().map(|_| ())
    })
    .await;
}

fn moto_bin() -> std::path::PathBuf {
    tool(
        "NATTER_TEST_MOTO_SERVER",
        "moto_server",
        "/usr/local/bin/moto_server",
        "moto_server (pip install 'moto[server]')",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_live_in_an_s3_bucket_shared_by_nodes() {
    let dir = log_dir("s3");
    let s3_port = free_port();
    let s3 = format!("http://127.0.0.1:{s3_port}");
    let s3_log = dir.join("moto.log");
    let (out, err) = log_file(&s3_log);
    let mut moto = Running(Some(
        Command::new(moto_bin())
            .args(["-H", "127.0.0.1", "-p", &s3_port.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("moto_server starts"),
    ));
    answers(&s3, "the S3 server", &s3_log, &mut moto).await;
    let http = reqwest::Client::new();
    let made = http
        .put(format!("{s3}/{BUCKET}"))
        .send()
        .await
        .expect("create the bucket");
    assert!(made.status().is_success(), "{}", made.status());

    let (database_url, _scratch) = fresh_database(Db::Sqlite).await;
    let site = site_on(&database_url).await;
    let mut nodes = Vec::new();
    for name in ["a", "b"] {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let log = dir.join(format!("{name}.log"));
        let (out, err) = log_file(&log);
        let mut node = Running(Some(
            Command::new(natter_bin())
                .args(["--bind", &addr.to_string(), "--database-url", &database_url])
                .arg("--widget-dir")
                .arg(dir.join("no-widget"))
                .args(["--files-url", &format!("s3://{BUCKET}/site-files")])
                .env("AWS_ENDPOINT", &s3)
                .env("AWS_ALLOW_HTTP", "true")
                .env("AWS_ACCESS_KEY_ID", "test")
                .env("AWS_SECRET_ACCESS_KEY", "test")
                .env("AWS_REGION", "us-east-1")
                .env("RUST_LOG", "info,sqlx=warn")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .expect("natter starts"),
        ));
        answers(&format!("http://{addr}/healthz"), "a node", &log, &mut node).await;
        nodes.push((addr, node, log));
    }
    let (a, b) = (nodes[0].0, nodes[1].0);
    let api = ApiClient::new(http.clone(), a, &site.api_key);
    let room = api.dialog(User::id("alice"), User::id("bob")).await;

    // A photo, half sent to one node, the rest to the other.
    let img = image::RgbImage::from_fn(400, 200, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let mut png = std::io::Cursor::new(Vec::new());
    img.write_to(&mut png, image::ImageFormat::Png)
        .expect("png");
    let png = png.into_inner();
    let tus = |method: reqwest::Method, node: SocketAddr, path: &str| {
        http.request(method, format!("http://{node}{path}"))
            .bearer_auth(&site.api_key)
            .header("X-Natter-User", "alice")
            .header("Tus-Resumable", "1.0.0")
    };
    let res = tus(reqwest::Method::POST, a, "/files")
        .header("Upload-Length", png.len().to_string())
        .header(
            "Upload-Metadata",
            format!("filename {}", STANDARD.encode("photo.png")),
        )
        .send()
        .await
        .expect("create");
    assert_eq!(res.status(), 201);
    let path = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let id = path.rsplit('/').next().expect("id").to_string();
    let half = png.len() / 2;
    for (node, from, bytes) in [(a, 0, &png[..half]), (b, half, &png[half..])] {
        let res = tus(reqwest::Method::PATCH, node, &path)
            .header("Upload-Offset", from.to_string())
            .header("Content-Type", "application/offset+octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("patch");
        assert_eq!(res.status(), 204, "{:?}", res.text().await);
    }
    let res = http
        .post(format!("http://{a}/api/v1/rooms/{}/messages", room.id))
        .bearer_auth(&site.api_key)
        .json(&json!({"from": "alice", "body": "from the bucket", "files": [id]}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201, "{:?}", res.text().await);

    // Either node serves it, and its thumbnail once made.
    for node in [a, b] {
        let got = http
            .get(format!("http://{node}/files/{id}"))
            .bearer_auth(&site.api_key)
            .send()
            .await
            .expect("download");
        assert_eq!(got.status(), 200);
        let bytes = got.bytes().await.expect("bytes");
        let decoded = image::load_from_memory(&bytes).expect("a PNG");
        assert_eq!((decoded.width(), decoded.height()), (400, 200));
    }
    let thumbs = format!("site-files/thumbs/{id}");
    let listed = eventually(START, "the thumbnail in the bucket", async || {
        let text = http
            .get(format!("{s3}/{BUCKET}?list-type=2"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains(&thumbs).then_some(text)
    })
    .await;
    assert!(
        listed.contains(&format!("site-files/files/{id}")),
        "{listed}"
    );
    let thumb = http
        .get(format!("http://{b}/files/{id}/thumb"))
        .bearer_auth(&site.api_key)
        .send()
        .await
        .expect("thumb");
    assert_eq!(thumb.status(), 200);
    let small = image::load_from_memory(&thumb.bytes().await.expect("bytes")).expect("image");
    assert_eq!(small.width(), 320);
    for (_, node, log) in &mut nodes {
        kill(&mut node.0);
        assert!(
            !std::fs::read_to_string(&*log)
                .unwrap_or_default()
                .contains("panicked")
        );
    }
}
