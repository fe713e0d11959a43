//! The load's side of the wire: WebSocket clients that speak natter's
//! frames (the node peer speaks the same ones) or subscribe to nchan, each
//! connection from one of 127.0.0.2..=127.0.0.201 so ports never run out.
//!
//! The clients also count why messages or clients go missing ([`why::Why`]):
//! `resync` and `error` frames, refused handshakes, connections the server
//! ended and waits that timed out. `main` takes the count per benchmark and
//! server.

use crate::sys::{Endpoint, Kind};
use anyhow::{Result, bail};
use futures_util::{SinkExt, StreamExt};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

mod why;

use why::{bump, close_label, note_ended, note_frame, socket_label, why};
pub use why::{take_why, timed_out};

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

// ---------------------------------------------------------------- connecting

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
    let stream = match tcp(ep.addr).await {
        Ok(s) => s,
        Err(e) => {
            let label = match e.downcast_ref::<std::io::Error>() {
                Some(io) => format!("connect {:?}", io.kind()),
                None => "connect".into(),
            };
            why(|w| bump(&mut w.refused, label));
            return Err(e);
        }
    };
    match tokio::time::timeout(WAIT, tokio_tungstenite::client_async(req, stream)).await {
        Err(_) => {
            timed_out("upgrade");
            bail!("upgrade timed out")
        }
        Ok(Err(WsError::Http(res))) => {
            let status = res.status().as_u16();
            let code = res
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .and_then(|b| {
                    b.split(r#""code":""#)
                        .nth(1)
                        .and_then(|r| r.split('"').next())
                        .map(|c| format!(" {c}"))
                })
                .unwrap_or_default();
            why(|w| bump(&mut w.refused, format!("HTTP {status}{code}")));
            bail!("upgrade refused: HTTP {status}{code}")
        }
        Ok(Err(e)) => {
            why(|w| bump(&mut w.refused, format!("upgrade: {}", socket_label(&e))));
            Err(e.into())
        }
        Ok(Ok((ws, _))) => Ok(ws),
    }
}

/// Connects and authenticates `user`; returns after `hello`.
pub async fn login(ep: &Endpoint, user: &str) -> Result<Ws> {
    Ok(login_hello(ep, user).await?.0)
}

/// [`login`], with the server's `hello` frame.
pub async fn login_hello(ep: &Endpoint, user: &str) -> Result<(Ws, String)> {
    let mut ws = open(ep, &format!("/ws?site={}", ep.site)).await?;
    let token = ep.token(user);
    send_text(&mut ws, format!(r#"{{"type":"auth","token":"{token}"}}"#)).await?;
    let hello = recv(&mut ws, "hello").await?;
    if frame_type(&hello) != "hello" {
        bail!("expected hello, got {hello}");
    }
    Ok((ws, hello))
}

/// How many events one `history` request may bring, from the server's
/// `hello`: `page_size` × `history_pages` (one page from a server that
/// does not say).
pub fn history_reach(hello: &str) -> Result<u64> {
    #[derive(serde::Deserialize)]
    struct Hello {
        limits: Limits,
    }
    #[derive(serde::Deserialize)]
    struct Limits {
        page_size: u64,
        #[serde(default)]
        history_pages: Option<u64>,
    }
    let limits = serde_json::from_str::<Hello>(hello)?.limits;
    Ok(limits.page_size * limits.history_pages.unwrap_or(1).max(1))
}

/// A subscriber: nchan's WebSocket on a channel.
pub async fn subscribe_nchan(ep: &Endpoint, channel: &str) -> Result<Ws> {
    open(ep, &format!("/sub/{channel}")).await
}

fn sync_frame(cursors: &[(&str, u64)]) -> String {
    let list: Vec<String> = cursors
        .iter()
        .map(|(room, seq)| format!(r#"{{"room":"{room}","seq":{seq}}}"#))
        .collect();
    format!(r#"{{"type":"sync","cursors":[{}]}}"#, list.join(","))
}

/// Sends `sync` with cursors and reads up to `synced`; returns the seqs of
/// the events paged (in arrival order).
pub async fn sync(ws: &mut Ws, cursors: &[(&str, u64)]) -> Result<Vec<u64>> {
    send_text(ws, sync_frame(cursors)).await?;
    let mut seqs = Vec::new();
    loop {
        let text = recv(ws, "synced").await?;
        match frame_type(&text) {
            "synced" => return Ok(seqs),
            "page" | "event" => {
                // Only the seqs are kept: the rest is skipped, not built,
                // so the load generator stays cheaper than the server.
                let f: SeqsOf = serde_json::from_str(&text)?;
                seqs.extend(f.events.iter().chain(&f.event).map(|e| e.seq));
            }
            _ => {}
        }
    }
}

/// Reads a room's history back from `before` with `history` requests of
/// `reach` events each (answered in frames of a page), until the server
/// says there is no more; returns the seqs read (newest page first, each
/// in seq order).
pub async fn history(ws: &mut Ws, room: &str, mut before: u64, reach: u64) -> Result<Vec<u64>> {
    let mut seqs = Vec::new();
    loop {
        send_text(
            ws,
            format!(r#"{{"type":"history","room":"{room}","before":{before},"limit":{reach}}}"#),
        )
        .await?;
        // The answer: frames of a page each, each older than the last,
        // until one says there is no more or `reach` events came.
        let mut got = 0;
        while got < reach {
            let page: HistoryOf = loop {
                let text = recv(ws, "history").await?;
                match frame_type(&text) {
                    "history" => break serde_json::from_str(&text)?,
                    "error" => bail!("history refused: {text}"),
                    _ => {}
                }
            };
            let Some(first) = page.events.first() else {
                return Ok(seqs);
            };
            before = first.seq;
            got += page.events.len() as u64;
            seqs.extend(page.events.iter().map(|e| e.seq));
            if !page.more {
                return Ok(seqs);
            }
        }
    }
}

/// The seqs of a `history` frame, and whether older events exist.
#[derive(serde::Deserialize)]
struct HistoryOf {
    events: Vec<SeqOnly>,
    more: bool,
}

/// The seqs of a `page` (`events`) or `event` frame.
#[derive(serde::Deserialize)]
struct SeqsOf {
    #[serde(default)]
    events: Vec<SeqOnly>,
    event: Option<SeqOnly>,
}

#[derive(serde::Deserialize)]
struct SeqOnly {
    seq: u64,
}

/// Sends a frame; a failure (the connection ended) is counted.
pub async fn send_text(ws: &mut Ws, text: String) -> Result<()> {
    if let Err(e) = ws.send(Message::text(text)).await {
        note_ended(&format!("send failed: {}", socket_label(&e)));
        return Err(e.into());
    }
    Ok(())
}

/// Queues a frame without flushing (the next flush or send writes it).
pub async fn feed_text(ws: &mut Ws, text: String) -> Result<()> {
    ws.feed(Message::text(text)).await?;
    Ok(())
}

// ---------------------------------------------------------------- reading

/// What reading a connection gave.
pub enum Next {
    Text(Utf8Bytes),
    /// The server closed it, or the socket ended (how, also counted).
    Ended(String),
    /// Nothing before the deadline (the caller counts it, saying for what).
    TimedOut,
}

/// The next text frame before `deadline`, skipping pings and pongs;
/// counts `resync`, `error` and how a connection ended.
pub async fn next_text<S>(ws: &mut S, deadline: Instant) -> Next
where
    S: futures_util::Stream<Item = Result<Message, WsError>> + Unpin,
{
    loop {
        let Ok(msg) = tokio::time::timeout_at(deadline.into(), ws.next()).await else {
            return Next::TimedOut;
        };
        let how = match msg {
            Some(Ok(Message::Text(t))) => {
                note_frame(&t);
                return Next::Text(t);
            }
            Some(Ok(Message::Close(c))) => close_label(c.as_ref()),
            Some(Ok(_)) => continue,
            Some(Err(e)) => socket_label(&e),
            None => "ended without a close".into(),
        };
        note_ended(&how);
        return Next::Ended(how);
    }
}

/// The next text frame, within [`WAIT`]; `waiting_for` names it in the
/// count of timeouts.
pub async fn recv(ws: &mut Ws, waiting_for: &'static str) -> Result<String> {
    match next_text(ws, Instant::now() + WAIT).await {
        Next::Text(t) => Ok(t.as_str().to_string()),
        Next::Ended(how) => bail!("connection ended waiting for {waiting_for}: {how}"),
        Next::TimedOut => {
            timed_out(waiting_for);
            bail!("no {waiting_for} within {WAIT:?}")
        }
    }
}

/// What a [`Follower`] read.
pub enum Delivered {
    /// Send time and tag of each message the frame delivered.
    Stamps(Vec<(u64, u64)>),
    Ended,
    TimedOut,
}

/// A receiving connection kept as a client keeps it. On natter and node:
/// synced on one room, holding the highest seq it has of it; told to
/// `resync`, or seeing a live event skip a seq, it sends `sync` again from
/// there and counts the catch-up's messages as delivered. On nchan: a
/// subscriber.
pub struct Follower {
    ws: Ws,
    track: Track,
    ended: bool,
}

impl Follower {
    pub fn new(ws: Ws, kind: Kind, room: &str, cursor: u64) -> Follower {
        Follower {
            ws,
            track: Track::new(kind == Kind::Nchan, room, cursor),
            ended: false,
        }
    }

    pub fn room(&self) -> &str {
        &self.track.room
    }

    /// Sends a frame; false (and ended from now on) when the connection
    /// has ended (counted).
    pub async fn send(&mut self, text: String) -> bool {
        if !self.ended && send_text(&mut self.ws, text).await.is_err() {
            self.ended = true;
        }
        !self.ended
    }

    /// Reads until a frame delivers messages, the connection ends or the
    /// deadline passes. Cancel-safe: a frame read is handled before the
    /// next await.
    pub async fn next(&mut self, deadline: Instant) -> Delivered {
        loop {
            if self.ended {
                return Delivered::Ended;
            }
            if self.track.must_sync {
                let frame = sync_frame(&[(&self.track.room, self.track.cursor)]);
                if !self.send(frame).await {
                    return Delivered::Ended;
                }
                self.track.sync_sent();
            }
            let text = match next_text(&mut self.ws, deadline).await {
                Next::Text(t) => t,
                Next::Ended(_) => {
                    self.ended = true;
                    return Delivered::Ended;
                }
                Next::TimedOut => return Delivered::TimedOut,
            };
            let stamps = self.track.on_frame(&text);
            if !stamps.is_empty() {
                return Delivered::Stamps(stamps);
            }
        }
    }
}

/// A follower's state: its room, its cursor, and whether it must or did
/// just sync again.
struct Track {
    nchan: bool,
    room: String,
    room_field: String,
    cursor: u64,
    must_sync: bool,
    syncing: bool,
}

impl Track {
    fn new(nchan: bool, room: &str, cursor: u64) -> Track {
        Track {
            nchan,
            room: room.to_string(),
            room_field: format!(r#""room":"{room}""#),
            cursor,
            must_sync: false,
            syncing: false,
        }
    }

    fn sync_sent(&mut self) {
        self.must_sync = false;
        self.syncing = true;
        why(|w| w.resynced += 1);
    }

    /// The messages a frame delivers (send time, tag), each once.
    fn on_frame(&mut self, text: &str) -> Vec<(u64, u64)> {
        if self.nchan {
            return stamp(text).into_iter().collect();
        }
        match frame_type(text) {
            // Live events queued before a new sync are in its catch-up.
            "event" if !self.syncing && text.contains(&self.room_field) => {
                let Some(seq) = text
                    .split_once(r#""seq":"#)
                    .and_then(|(_, r)| r.split([',', '}']).next())
                    .and_then(|s| s.parse::<u64>().ok())
                else {
                    return Vec::new();
                };
                if seq <= self.cursor {
                    return Vec::new();
                }
                if seq > self.cursor + 1 {
                    // Something was skipped: sync again, as a client
                    // would; the catch-up brings this event too.
                    why(|w| w.gaps += 1);
                    self.must_sync = true;
                    return Vec::new();
                }
                self.cursor = seq;
                stamp(text).into_iter().collect()
            }
            "page" => {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(text) else {
                    return Vec::new();
                };
                if v["room"].as_str() != Some(&self.room) {
                    return Vec::new();
                }
                let mut out = Vec::new();
                for e in v["events"].as_array().into_iter().flatten() {
                    let Some(seq) = e["seq"].as_u64() else {
                        continue;
                    };
                    if seq <= self.cursor {
                        continue;
                    }
                    self.cursor = seq;
                    out.extend(e["body"].as_str().and_then(stamp));
                }
                out
            }
            "synced" => {
                self.syncing = false;
                Vec::new()
            }
            "resync" => {
                self.must_sync = true;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }
}

// ---------------------------------------------------------------- frames

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

#[cfg(test)]
mod tests {
    use super::*;

    fn event(room: &str, seq: u64, ts: u64) -> String {
        format!(
            r#"{{"type":"event","event":{{"room":"{room}","seq":{seq},"ts":1,"sender":"a","kind":"message","body":"t{ts} 7 xx","client_id":"c"}}}}"#
        )
    }

    #[test]
    fn a_follower_counts_each_message_once_and_syncs_again_after_resync_or_a_gap() {
        let mut t = Track::new(false, "r1", 0);
        assert_eq!(t.on_frame(&event("r1", 1, 100)), vec![(100, 7)]);
        assert!(t.on_frame(&event("r1", 1, 100)).is_empty(), "duplicate");
        assert!(t.on_frame(&event("r10", 2, 100)).is_empty(), "other room");
        // Told to resync: it syncs from seq 1; live events until `synced`
        // are left to the catch-up, which delivers 2 and 3 once.
        assert!(t.on_frame(r#"{"type":"resync","reason":"x"}"#).is_empty());
        assert!(t.must_sync);
        t.sync_sent();
        assert!(t.on_frame(&event("r1", 2, 200)).is_empty());
        let page = r#"{"type":"page","room":"r1","events":[{"room":"r1","seq":1,"body":"t100 7 x"},{"room":"r1","seq":2,"body":"t200 7 x"},{"room":"r1","seq":3,"body":"t300 8 x"}],"more":false}"#;
        assert_eq!(t.on_frame(page), vec![(200, 7), (300, 8)]);
        assert!(t.on_frame(r#"{"type":"synced"}"#).is_empty());
        assert_eq!(t.on_frame(&event("r1", 4, 400)), vec![(400, 7)]);
        // A skipped seq: nothing counted, a sync is due.
        assert!(t.on_frame(&event("r1", 6, 600)).is_empty());
        assert!(t.must_sync);
        assert_eq!(t.cursor, 4);
        let why = take_why();
        assert_eq!((why.resynced, why.gaps), (1, 1));
    }

    #[test]
    fn an_nchan_subscriber_reads_the_body_itself() {
        let mut t = Track::new(true, "fan", 0);
        assert_eq!(t.on_frame("t55 3 xxxx"), vec![(55, 3)]);
    }
}
