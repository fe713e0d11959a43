//! The load's side of the wire: WebSocket clients that speak natter's
//! frames (the node peer speaks the same ones) or subscribe to nchan, each
//! connection from one of 127.0.0.2..=127.0.0.201 so ports never run out.

use crate::sys::{Endpoint, Kind};
use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

pub type Ws = WebSocketStream<TcpStream>;

/// How long one expected frame may take before a client gives up.
pub const WAIT: Duration = Duration::from_secs(30);

static NEXT_SOURCE: AtomicU64 = AtomicU64::new(0);
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// The instant timestamps in message bodies count from.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

pub fn now_ns() -> u64 {
    epoch().elapsed().as_nanos() as u64
}

/// A TCP connection from the next loopback source address.
pub async fn tcp(addr: SocketAddr) -> Result<TcpStream> {
    let n = NEXT_SOURCE.fetch_add(1, Ordering::Relaxed);
    let ip = Ipv4Addr::new(127, 0, 0, 2 + (n % 200) as u8);
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(ip.into(), 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens a WebSocket to `path` (natter: with the natter.v1 subprotocol).
pub async fn open(ep: &Endpoint, path: &str) -> Result<Ws> {
    let mut req = format!("ws://{}{path}", ep.addr).into_client_request()?;
    if ep.kind != Kind::Nchan {
        req.headers_mut()
            .insert("sec-websocket-protocol", "natter.v1".parse()?);
    }
    let stream = tcp(ep.addr).await?;
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, stream))
        .await
        .context("upgrade timed out")??;
    Ok(ws)
}

/// Connects and authenticates `user`; returns after `hello`.
pub async fn login(ep: &Endpoint, user: &str) -> Result<Ws> {
    let mut ws = open(ep, &format!("/ws?site={}", ep.site)).await?;
    let token = ep.token(user);
    send_text(&mut ws, format!(r#"{{"type":"auth","token":"{token}"}}"#)).await?;
    let hello = recv(&mut ws).await?;
    if frame_type(&hello) != "hello" {
        bail!("expected hello, got {hello}");
    }
    Ok(ws)
}

/// A subscriber: nchan's WebSocket on a channel.
pub async fn subscribe_nchan(ep: &Endpoint, channel: &str) -> Result<Ws> {
    open(ep, &format!("/sub/{channel}")).await
}

/// Sends `sync` with cursors and reads up to `synced`; returns the seqs of
/// the events paged (in arrival order).
pub async fn sync(ws: &mut Ws, cursors: &[(&str, u64)]) -> Result<Vec<u64>> {
    let list: Vec<String> = cursors
        .iter()
        .map(|(room, seq)| format!(r#"{{"room":"{room}","seq":{seq}}}"#))
        .collect();
    send_text(
        ws,
        format!(r#"{{"type":"sync","cursors":[{}]}}"#, list.join(",")),
    )
    .await?;
    let mut seqs = Vec::new();
    loop {
        let text = recv(ws).await?;
        match frame_type(&text) {
            "synced" => return Ok(seqs),
            "page" | "event" => {
                let v: serde_json::Value = serde_json::from_str(&text)?;
                let events = match v.get("events") {
                    Some(serde_json::Value::Array(a)) => a.clone(),
                    _ => v.get("event").cloned().into_iter().collect(),
                };
                seqs.extend(events.iter().filter_map(|e| e["seq"].as_u64()));
            }
            _ => {}
        }
    }
}

pub async fn send_text(ws: &mut Ws, text: String) -> Result<()> {
    ws.send(Message::text(text)).await?;
    Ok(())
}

/// Queues a frame without flushing (the next flush or send writes it).
pub async fn feed_text(ws: &mut Ws, text: String) -> Result<()> {
    ws.feed(Message::text(text)).await?;
    Ok(())
}

/// The next text frame.
pub async fn recv(ws: &mut Ws) -> Result<String> {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .map_err(|_| anyhow!("no frame within {WAIT:?}"))?;
        match msg {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_string()),
            Some(Ok(Message::Close(c))) => bail!("closed: {c:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection ended"),
        }
    }
}

/// The `type` of a frame; natter and the node peer both write it first.
pub fn frame_type(text: &str) -> &str {
    text.strip_prefix(r#"{"type":""#)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
}

/// A fresh client id (a UUID with a per-process random part).
pub fn client_id() -> String {
    static BASE: OnceLock<u64> = OnceLock::new();
    let base = *BASE.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7)
            ^ ((std::process::id() as u64) << 40)
    });
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        (base >> 32) as u32,
        (base >> 16) as u16,
        (base & 0xfff) as u16,
        (n >> 48) as u16 & 0xfff,
        n & 0xffff_ffff_ffff
    )
}

/// A body that carries its send time: `t<ns> <tag> <padding>` (~64 bytes).
pub fn body(tag: u64) -> String {
    let mut b = format!("t{} {tag} ", now_ns());
    while b.len() < 64 {
        b.push('x');
    }
    b
}

/// The `send` frame for a message in `room`.
pub fn send_frame(room: &str, tag: u64) -> String {
    format!(
        r#"{{"type":"send","client_id":"{}","room":"{room}","body":"{}"}}"#,
        client_id(),
        body(tag)
    )
}

/// Send time and tag of a delivered message: from an event frame's body,
/// or from an nchan message (the body itself).
pub fn stamp(text: &str) -> Option<(u64, u64)> {
    let start = match text.find(r#""body":"t"#) {
        Some(i) => i + 9,
        None => text.strip_prefix('t').map(|_| 1)?,
    };
    let mut parts = text[start..].split(' ');
    let ts = parts.next()?.parse().ok()?;
    let tag = parts.next()?.parse().ok()?;
    Some((ts, tag))
}
