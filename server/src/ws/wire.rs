//! WebSocket frames (RFC 6455, the server's side) over the upgraded TCP
//! socket, read and written by natter itself so that an idle connection
//! keeps no buffer (B1 in BENCHMARKS.md):
//!
//! - [`Reader`] reads up to [`CHUNK`] bytes at a time into the stack and
//!   keeps only the bytes of a frame not yet complete.
//! - [`Writer`] gathers the frames fed between two flushes in one buffer,
//!   written with as few `write()`s as the socket allows and freed once
//!   flushed.
//!
//! The socket's two halves share it without a lock. No extension is
//! agreed, so the reserved bits must be clear; client frames must be
//! masked; a message (all its fragments) may hold at most the configured
//! number of bytes, checked from each frame's header before its payload is
//! read.

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::{Sink, Stream};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use natter_shared::close;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Bytes read at a time: client frames are small.
const CHUNK: usize = 512;

/// Bytes fed and not yet flushed past which a new frame waits for a flush.
const WRITE_HIGH: usize = 64 * 1024;

/// Opcodes.
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// What ends a connection's frames.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("a message over the limit of {0} bytes")]
    TooBig(usize),
    #[error("not a valid WebSocket frame: {0}")]
    Protocol(&'static str),
    #[error("a text message that is not UTF-8")]
    NotUtf8,
    #[error("the connection is closed")]
    Closed,
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl WireError {
    /// The close code and reason the client is told, when the fault is
    /// its own.
    pub fn close_code(&self) -> Option<(u16, &'static str)> {
        match self {
            WireError::TooBig(_) => Some((close::TOO_BIG, "message too big")),
            WireError::Protocol(why) => Some((close::PROTOCOL, why)),
            WireError::NotUtf8 => Some((close::INVALID_DATA, "text is not UTF-8")),
            WireError::Closed | WireError::Io(_) => None,
        }
    }
}

/// Splits an upgraded connection into its frames' reader and writer.
/// `None` when the connection is not the TCP socket the server accepted
/// (`serve.rs` hands hyper a `TokioIo<TcpStream>`).
pub fn split(
    upgraded: Upgraded,
    limit: usize,
) -> Option<(Reader<OwnedReadHalf>, Writer<OwnedWriteHalf>)> {
    let parts = upgraded.downcast::<TokioIo<TcpStream>>().ok()?;
    let (read, write) = parts.io.into_inner().into_split();
    Some((
        Reader::new(read, &parts.read_buf, limit),
        Writer::new(write),
    ))
}

/// A frame's header, parsed.
struct Head {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    /// Where the payload starts.
    start: usize,
    len: usize,
}

/// Parses the header at the start of `data`: `Err(n)` when fewer than
/// the `n` bytes it needs are there yet.
fn head(data: &[u8], limit: usize) -> Result<Result<Head, usize>, WireError> {
    let [b0, b1, rest @ ..] = data else {
        return Ok(Err(2));
    };
    if b0 & 0x70 != 0 {
        return Err(WireError::Protocol("reserved bits set"));
    }
    if b1 & 0x80 == 0 {
        return Err(WireError::Protocol("an unmasked client frame"));
    }
    let (fin, opcode) = (b0 & 0x80 != 0, b0 & 0x0F);
    let (len, rest, at) = match (b1 & 0x7F, rest) {
        (126, [a, b, rest @ ..]) => (u64::from(u16::from_be_bytes([*a, *b])), rest, 4),
        (127, [a, b, c, d, e, f, g, h, rest @ ..]) => (
            u64::from_be_bytes([*a, *b, *c, *d, *e, *f, *g, *h]),
            rest,
            10,
        ),
        (126, _) => return Ok(Err(4)),
        (127, _) => return Ok(Err(10)),
        (n, rest) => (u64::from(n), rest, 2),
    };
    if opcode >= CLOSE && (!fin || len > 125) {
        return Err(WireError::Protocol(
            "a control frame fragmented or over 125 bytes",
        ));
    }
    let len = match usize::try_from(len) {
        Ok(len) if len <= limit => len,
        _ => return Err(WireError::TooBig(limit)),
    };
    let [m0, m1, m2, m3, ..] = rest else {
        return Ok(Err(at + 4));
    };
    Ok(Ok(Head {
        fin,
        opcode,
        mask: [*m0, *m1, *m2, *m3],
        start: at + 4,
        len,
    }))
}

/// What one frame's bytes made.
enum Step {
    /// The frame is not complete: this many bytes are needed.
    Need(usize),
    /// The frame took `used` bytes and made this message, if one is done.
    Took { used: usize, msg: Option<Message> },
}

/// Reads a client's messages: text, binary (refused by the protocol, but
/// read), ping, pong and close. After a close or an error it ends.
pub struct Reader<R> {
    io: R,
    /// Bytes read and not yet taken; empty and unallocated between frames
    /// unless several came in one read.
    kept: Vec<u8>,
    /// Bytes `kept` must hold for its first frame to be complete.
    need: usize,
    /// A fragmented message's opcode and payload so far (0: none begun).
    partial: (u8, Vec<u8>),
    limit: usize,
    done: bool,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Reads frames from `io`, after the bytes `early` (read past the
    /// upgrade request); messages of at most `limit` bytes.
    pub fn new(io: R, early: &[u8], limit: usize) -> Self {
        Reader {
            io,
            kept: early.to_vec(),
            need: 0,
            partial: (0, Vec::new()),
            limit,
            done: false,
        }
    }

    /// Takes one frame from the start of `data`.
    fn frame(&mut self, data: &[u8]) -> Result<Step, WireError> {
        let head = match head(data, self.limit)? {
            Ok(head) => head,
            Err(need) => return Ok(Step::Need(need)),
        };
        let end = head.start + head.len;
        let Some(payload) = data.get(head.start..end) else {
            return Ok(Step::Need(end));
        };
        let mut payload = payload.to_vec();
        for (i, byte) in payload.iter_mut().enumerate() {
            *byte ^= head.mask[i % 4];
        }
        let msg = self.message(head.fin, head.opcode, payload)?;
        Ok(Step::Took { used: end, msg })
    }

    /// What a frame's payload makes: a message, or a fragment kept.
    fn message(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: Vec<u8>,
    ) -> Result<Option<Message>, WireError> {
        match opcode {
            CONTINUATION => {
                let (begun, so_far) = &mut self.partial;
                if *begun == 0 {
                    return Err(WireError::Protocol("a continuation with no message begun"));
                }
                if so_far.len() + payload.len() > self.limit {
                    return Err(WireError::TooBig(self.limit));
                }
                so_far.extend_from_slice(&payload);
                if !fin {
                    return Ok(None);
                }
                let (opcode, whole) = std::mem::take(&mut self.partial);
                whole_message(opcode, whole).map(Some)
            }
            TEXT | BINARY => {
                if self.partial.0 != 0 {
                    return Err(WireError::Protocol("a new message inside a fragmented one"));
                }
                if fin {
                    return whole_message(opcode, payload).map(Some);
                }
                self.partial = (opcode, payload);
                Ok(None)
            }
            CLOSE => close_message(&payload).map(Some),
            PING => Ok(Some(Message::Ping(Bytes::from(payload)))),
            PONG => Ok(Some(Message::Pong(Bytes::from(payload)))),
            _ => Err(WireError::Protocol("an unknown opcode")),
        }
    }

    /// Ends the reader with `err`.
    fn fail(&mut self, err: WireError) -> Poll<Option<Result<Message, axum::Error>>> {
        self.done = true;
        self.kept = Vec::new();
        self.partial = (0, Vec::new());
        Poll::Ready(Some(Err(axum::Error::new(err))))
    }

    /// A message taken: a close ends the reader.
    fn took(&mut self, msg: Message) -> Poll<Option<Result<Message, axum::Error>>> {
        if matches!(msg, Message::Close(_)) {
            self.done = true;
        }
        Poll::Ready(Some(Ok(msg)))
    }
}

/// A complete text or binary message.
fn whole_message(opcode: u8, payload: Vec<u8>) -> Result<Message, WireError> {
    if opcode == TEXT {
        Utf8Bytes::try_from(payload)
            .map(Message::Text)
            .map_err(|_| WireError::NotUtf8)
    } else {
        Ok(Message::Binary(Bytes::from(payload)))
    }
}

/// A close frame's payload: nothing, or a code and a UTF-8 reason.
fn close_message(payload: &[u8]) -> Result<Message, WireError> {
    match payload {
        [] => Ok(Message::Close(None)),
        [a, b, reason @ ..] => {
            let reason = std::str::from_utf8(reason).map_err(|_| WireError::NotUtf8)?;
            Ok(Message::Close(Some(CloseFrame {
                code: u16::from_be_bytes([*a, *b]),
                reason: Utf8Bytes::from(reason.to_string()),
            })))
        }
        [_] => Err(WireError::Protocol("a close frame with half a code")),
    }
}

impl<R: AsyncRead + Unpin> Stream for Reader<R> {
    type Item = Result<Message, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            // A frame already complete among the bytes kept.
            if !this.kept.is_empty() && this.kept.len() >= this.need {
                let kept = std::mem::take(&mut this.kept);
                match this.frame(&kept) {
                    Err(err) => return this.fail(err),
                    Ok(Step::Need(need)) => {
                        this.kept = kept;
                        this.need = need;
                    }
                    Ok(Step::Took { used, msg }) => {
                        this.need = 0;
                        if used < kept.len() {
                            let mut kept = kept;
                            kept.drain(..used);
                            this.kept = kept;
                        }
                        match msg {
                            Some(msg) => return this.took(msg),
                            None => continue,
                        }
                    }
                }
            }
            if this.kept.is_empty() {
                // Between frames: read into the stack, keep only a rest.
                let mut chunk = [0u8; CHUNK];
                let mut buf = ReadBuf::new(&mut chunk);
                if let Err(err) = ready!(Pin::new(&mut this.io).poll_read(cx, &mut buf)) {
                    return this.fail(err.into());
                }
                let data = buf.filled();
                if data.is_empty() {
                    this.done = true;
                    return Poll::Ready(None);
                }
                match this.frame(data) {
                    Err(err) => return this.fail(err),
                    Ok(Step::Need(need)) => {
                        this.kept.extend_from_slice(data);
                        this.need = need;
                    }
                    Ok(Step::Took { used, msg }) => {
                        if let Some(rest) = data.get(used..) {
                            this.kept.extend_from_slice(rest);
                        }
                        if let Some(msg) = msg {
                            return this.took(msg);
                        }
                    }
                }
            } else {
                // Inside a frame: read the rest of it into what is kept.
                let have = this.kept.len();
                let want = this.need.saturating_sub(have).max(CHUNK);
                this.kept.resize(have + want, 0);
                let mut buf = ReadBuf::new(&mut this.kept[have..]);
                let poll = Pin::new(&mut this.io).poll_read(cx, &mut buf);
                let got = buf.filled().len();
                this.kept.truncate(have + got);
                match poll {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(err)) => return this.fail(err.into()),
                    Poll::Ready(Ok(())) if got == 0 => {
                        // The peer left in the middle of a frame.
                        this.done = true;
                        return Poll::Ready(None);
                    }
                    Poll::Ready(Ok(())) => {}
                }
            }
        }
    }
}

/// Writes the server's messages, unmasked, each in one frame.
pub struct Writer<W> {
    io: W,
    /// Frames fed and not yet written; unallocated once flushed.
    out: Vec<u8>,
    /// Bytes of `out` already written.
    written: usize,
    /// A close frame was fed: nothing may follow it.
    closing: bool,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(io: W) -> Self {
        Writer {
            io,
            out: Vec::new(),
            written: 0,
            closing: false,
        }
    }

    /// Appends one frame.
    fn frame(&mut self, opcode: u8, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        self.out.reserve(len + 10);
        self.out.push(0x80 | opcode);
        match (u8::try_from(len), u16::try_from(len)) {
            (Ok(small), _) if small < 126 => self.out.push(small),
            (_, Ok(medium)) => {
                self.out.push(126);
                self.out.extend_from_slice(&medium.to_be_bytes());
            }
            _ => {
                self.out.push(127);
                self.out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        for part in parts {
            self.out.extend_from_slice(part);
        }
    }

    fn write_out(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WireError>> {
        while self.written < self.out.len() {
            let rest = &self.out[self.written..];
            match ready!(Pin::new(&mut self.io).poll_write(cx, rest)) {
                Ok(0) => return Poll::Ready(Err(io::Error::from(io::ErrorKind::WriteZero).into())),
                Ok(n) => self.written += n,
                Err(err) => return Poll::Ready(Err(err.into())),
            }
        }
        self.out = Vec::new();
        self.written = 0;
        Pin::new(&mut self.io).poll_flush(cx).map_err(Into::into)
    }
}

impl<W: AsyncWrite + Unpin> Sink<Message> for Writer<W> {
    type Error = axum::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        let this = self.get_mut();
        if this.out.len() >= WRITE_HIGH {
            ready!(this.write_out(cx)).map_err(axum::Error::new)?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), axum::Error> {
        let this = self.get_mut();
        if this.closing {
            return Err(axum::Error::new(WireError::Closed));
        }
        match &item {
            Message::Text(text) => this.frame(TEXT, &[text.as_bytes()]),
            Message::Binary(data) => this.frame(BINARY, &[data]),
            Message::Ping(data) => this.frame(PING, &[data]),
            Message::Pong(data) => this.frame(PONG, &[data]),
            Message::Close(None) => {
                this.closing = true;
                this.frame(CLOSE, &[]);
            }
            Message::Close(Some(frame)) => {
                this.closing = true;
                // A control frame holds at most 125 bytes: the code and
                // 123 of the reason.
                let reason = frame.reason.as_bytes();
                let reason = reason.get(..123).unwrap_or(reason);
                this.frame(CLOSE, &[&frame.code.to_be_bytes(), reason]);
            }
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        self.get_mut().write_out(cx).map_err(axum::Error::new)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), axum::Error>> {
        let this = self.get_mut();
        ready!(this.write_out(cx)).map_err(axum::Error::new)?;
        this.closing = true;
        Pin::new(&mut this.io)
            .poll_shutdown(cx)
            .map_err(axum::Error::new)
    }
}

/// The wire error under a connection's read or write error, if any.
pub fn wire_error(err: &axum::Error) -> Option<&WireError> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(wire) = e.downcast_ref::<WireError>() {
            return Some(wire);
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests;
