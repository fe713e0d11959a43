//! B10: files: uploading a 24 MiB file (tus, one `PATCH`) and downloading it,
//! in MiB/s and server CPU per MiB, beside plain nginx taking the same
//! bytes with `PUT` (its DAV module) and serving them as a static file.
//! The client speaks HTTP/1.1 by hand over one connection per transfer and
//! throws the bytes away as it reads them, so it costs less than either
//! server.

use crate::log;
use crate::plan::RUNS;
use crate::report::{Report, Row, med};
use crate::sys::{self, Paths, Server};
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use std::net::SocketAddr;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The file moved each run: just within natter's default largest file
/// (25 MiB).
const MIB: usize = 24;
const SIZE: usize = MIB * 1024 * 1024;

/// A figure of one transfer.
type Figure = fn(&Took) -> f64;

/// One transfer: wall seconds and server CPU seconds.
#[derive(Clone, Copy)]
struct Took {
    secs: f64,
    cpu: f64,
}

impl Took {
    fn rate(&self) -> f64 {
        MIB as f64 / self.secs
    }

    fn cpu_ms_per_mib(&self) -> f64 {
        self.cpu * 1e3 / MIB as f64
    }
}

/// B10 on natter (SQLite, the file directory on the local disk) and nginx.
pub async fn run(paths: &Paths, natter: &Server, report: &mut Report) {
    log("B10 files");
    // Bytes that do not compress and are not a known type's: text/plain
    // would be sniffed for anything else; these sniff as binary data.
    let mut body = vec![0u8; SIZE];
    let mut x: u32 = 0x9e37_79b9;
    for b in &mut body {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    body[..4].copy_from_slice(b"PK\x03\x04");
    let natter_runs = runs(|i| natter_round(natter, &body, i)).await;
    let nginx = match sys::start_nginx_files(paths) {
        Ok((server, www)) => {
            let written = std::fs::write(www.join("static.bin"), &body);
            match written {
                Ok(()) => Some(runs(|i| nginx_round(&server, &body, i)).await),
                Err(e) => {
                    report.fail("B10 nginx", e.into());
                    None
                }
            }
        }
        Err(e) => {
            report.fail("B10 nginx", e);
            None
        }
    };
    let rows: [(&str, Figure, usize); 4] = [
        ("upload of 24 MiB: MiB/s", Took::rate, 0),
        ("upload: server CPU ms per MiB", Took::cpu_ms_per_mib, 0),
        ("download of 24 MiB: MiB/s", Took::rate, 1),
        ("download: server CPU ms per MiB", Took::cpu_ms_per_mib, 1),
    ];
    let natter_runs = natter_runs.map_err(|e| report.fail("B10 natter", e)).ok();
    let nginx = nginx.and_then(|r| r.map_err(|e| report.fail("B10 nginx", e)).ok());
    for (metric, figure, which) in rows {
        let mut row = Row::new("B10", metric, "— (nginx in the nchan column)");
        if let Some(r) = &natter_runs {
            row.natter = med(r, |t| figure(&t[which]));
        }
        if let Some(r) = &nginx {
            row.nchan = med(r, |t| figure(&t[which]));
        }
        report.rows.push(row);
    }
}

async fn runs<F, Fut>(round: F) -> Result<Vec<[Took; 2]>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<[Took; 2]>>,
{
    let mut out = Vec::new();
    for i in 0..RUNS {
        out.push(round(i).await?);
    }
    Ok(out)
}

/// Times `f` and the server's CPU across it.
async fn timed<T>(server: &Server, f: impl Future<Output = Result<T>>) -> Result<(T, Took)> {
    let cpu0 = server.cpu();
    let t0 = Instant::now();
    let out = f.await?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = (server.cpu() - cpu0).as_secs_f64();
    Ok((out, Took { secs, cpu }))
}

async fn natter_round(server: &Server, body: &[u8], i: usize) -> Result<[Took; 2]> {
    let ep = &server.ep;
    let auth = format!(
        "Authorization: Bearer {}\r\nX-Natter-User: bench{i}\r\nTus-Resumable: 1.0.0\r\n",
        ep.api_key
    );
    let created = exchange(
        ep.addr,
        &format!(
            "POST /files HTTP/1.1\r\nHost: bench\r\n{auth}Upload-Length: {SIZE}\r\n\
             Upload-Metadata: filename {}\r\nContent-Length: 0\r\n\r\n",
            STANDARD.encode("bench.zip")
        ),
        &[],
    )
    .await?;
    let location = created
        .header("location")
        .context("no Location from POST /files")?
        .to_string();
    let (_, up) = timed(
        server,
        exchange(
            ep.addr,
            &format!(
                "PATCH {location} HTTP/1.1\r\nHost: bench\r\n{auth}Upload-Offset: 0\r\n\
                 Content-Type: application/offset+octet-stream\r\nContent-Length: {SIZE}\r\n\r\n"
            ),
            body,
        ),
    )
    .await?;
    let (got, down) = timed(
        server,
        exchange(
            ep.addr,
            &format!("GET {location} HTTP/1.1\r\nHost: bench\r\n{auth}\r\n"),
            &[],
        ),
    )
    .await?;
    if got.body != SIZE {
        bail!("natter served {} bytes of {SIZE}", got.body);
    }
    Ok([up, down])
}

async fn nginx_round(server: &Server, body: &[u8], i: usize) -> Result<[Took; 2]> {
    let addr = server.ep.addr;
    let (_, up) = timed(
        server,
        exchange(
            addr,
            &format!("PUT /up/{i}.bin HTTP/1.1\r\nHost: bench\r\nContent-Length: {SIZE}\r\n\r\n"),
            body,
        ),
    )
    .await?;
    let (got, down) = timed(
        server,
        exchange(addr, "GET /static.bin HTTP/1.1\r\nHost: bench\r\n\r\n", &[]),
    )
    .await?;
    if got.body != SIZE {
        bail!("nginx served {} bytes of {SIZE}", got.body);
    }
    Ok([up, down])
}

/// An answer's head and how many body bytes came.
struct Answer {
    head: String,
    body: usize,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

/// Sends one request on a new connection and reads the whole answer
/// (its body counted, not kept); 2xx only.
async fn exchange(addr: SocketAddr, head: &str, body: &[u8]) -> Result<Answer> {
    let mut conn = TcpStream::connect(addr).await?;
    conn.set_nodelay(true)?;
    conn.write_all(head.as_bytes()).await?;
    if !body.is_empty() {
        conn.write_all(body).await?;
    }
    let mut buf = vec![0u8; 1024 * 1024];
    let mut got = Vec::new();
    let end = loop {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            bail!("the connection closed before the answer's head");
        }
        got.extend_from_slice(&buf[..n]);
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&got[..end]).to_string();
    let answer = Answer {
        head,
        body: got.len() - end,
    };
    let status = answer.head.split_whitespace().nth(1).unwrap_or("");
    if !status.starts_with('2') {
        bail!("{}", answer.head.lines().next().unwrap_or("no status"));
    }
    let length: usize = answer
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut read = answer.body;
    while read < length {
        let n = conn.read(&mut buf).await?;
        if n == 0 {
            bail!("the connection closed after {read} of {length} bytes");
        }
        read += n;
    }
    Ok(Answer {
        body: read,
        ..answer
    })
}
