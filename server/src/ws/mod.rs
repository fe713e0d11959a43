//! The WebSocket endpoint, in the order a connection lives:
//!
//! - [`upgrade`]: before the upgrade, the site must exist, the `Origin`
//!   must be one of its registered origins (or the server's own), and the
//!   client must ask for the `natter.v1` subprotocol.
//! - [`wire`]: the WebSocket frames, read and written by natter over the
//!   upgraded TCP socket; an idle connection keeps no buffer.
//! - [`handshake`]: after it, the first frame must be `auth` with a valid
//!   token; the answer is `hello`, or an error and a close.
//! - [`conn`]: one task per connection runs a `select!` over the socket,
//!   the hub's queue, the commits of its sends, a heartbeat and shutdown.
//! - [`requests`]: what the client asks for — catch-up, sends, history,
//!   typing, ping.
//! - [`deliver`]: live events from the hub, gap-free and in order.
//!
//! The connection is generic over a [`FrameSink`] and a [`FrameStream`]:
//! the socket's halves in production, channels in the unit tests.

mod conn;
mod deadline;
mod deliver;
mod handshake;
mod requests;
mod sync;
mod upgrade;
mod wire;

#[cfg(test)]
mod tests;

pub use upgrade::{Own, WsQuery, handler, origin_allowed};

use deadline::Deadline;

use crate::gate::Held;
use crate::state::AppState;
use crate::store::Site;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use futures_util::{Sink, SinkExt, Stream};
use natter_shared::{ErrorCode, ServerFrame, SiteId, UserId, close};

/// Where a connection writes its frames.
pub trait FrameSink: Sink<Message, Error = axum::Error> + Unpin + Send + 'static {}
impl<T> FrameSink for T where T: Sink<Message, Error = axum::Error> + Unpin + Send + 'static {}

/// Where a connection reads the client's frames from.
pub trait FrameStream:
    Stream<Item = Result<Message, axum::Error>> + Unpin + Send + 'static
{
}
impl<T> FrameStream for T where
    T: Stream<Item = Result<Message, axum::Error>> + Unpin + Send + 'static
{
}

/// The connection ended (socket closed or failed); nothing more to send.
#[derive(Debug)]
struct Gone;

/// Serves one upgraded connection of `site`: the handshake, then the
/// connection loop until either side ends it.
///
/// What the connection starts from travels boxed: an async fn keeps its
/// arguments for as long as it runs, and an idle connection should not
/// keep the site (B1 in BENCHMARKS.md).
fn serve<S: FrameSink, R: FrameStream>(
    sink: S,
    stream: R,
    state: AppState,
    site: Site,
    address: Option<Held>,
) -> impl Future<Output = ()> + Send {
    run(Box::new(Opening {
        sink,
        stream,
        state,
        site,
        address,
    }))
}

/// An upgraded connection before its handshake.
struct Opening<S, R> {
    sink: S,
    stream: R,
    state: AppState,
    site: Site,
    /// The connection counted against its client address's cap.
    address: Option<Held>,
}

/// The connection's loop once the handshake admitted it, boxed at its
/// own size.
type Serving = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The handshake and the loop each run boxed: what the handshake needs is
/// freed once it is done, and the task keeps a pointer to the loop, which
/// is allocated at its own size (B1 in BENCHMARKS.md).
async fn run<S: FrameSink, R: FrameStream>(opening: Box<Opening<S, R>>) {
    if let Some(serving) = Box::pin(open(opening)).await {
        serving.await;
    }
}

/// Authenticates the connection; `None` when it was refused.
async fn open<S: FrameSink, R: FrameStream>(opening: Box<Opening<S, R>>) -> Option<Serving> {
    let Opening {
        mut sink,
        mut stream,
        state,
        site,
        address,
    } = *opening;
    let open = conn::OpenConnection::new(state.metrics.clone());
    let Some(handshake::Admitted {
        identity,
        key,
        held,
    }) = handshake::authenticate(&state, &site, &mut sink, &mut stream).await
    else {
        crate::metrics::inc(&state.metrics.auth_failures);
        return None;
    };
    let settings = site.settings;
    drop(site);
    let counted = conn::Counted {
        _open: open,
        _address: address,
        _user: held,
    };
    let conn = conn::Conn::new(state, identity, settings, sink, key, counted);
    // A debug span: an enabled span costs each idle connection about
    // 430 bytes (B1 in BENCHMARKS.md), so the connection's own events at
    // info and above name the site and user themselves.
    let span = tracing::debug_span!("conn", conn = conn.reg.id, site = %conn.identity.site, user = %conn.identity.user);
    Some(Box::pin(tracing::Instrument::instrument(
        conn.serve(stream),
        span,
    )))
}

/// Sends one frame and flushes it.
async fn send_frame<S: FrameSink>(sink: &mut S, frame: &ServerFrame) -> Result<(), Gone> {
    let json = serde_json::to_string(frame).map_err(|_| Gone)?;
    sink.send(Message::Text(json.into()))
        .await
        .map_err(|_| Gone)
}

/// Queues one frame without flushing.
async fn feed_frame<S: FrameSink>(sink: &mut S, frame: &ServerFrame) -> Result<(), Gone> {
    let json = serde_json::to_string(frame).map_err(|_| Gone)?;
    sink.feed(Message::Text(json.into()))
        .await
        .map_err(|_| Gone)
}

/// What a banned user is told, at `auth` or when the ban comes.
pub(crate) const BANNED: &str = "this site has banned you";

/// Ends a connection that is refused: says why in an `error` frame, then
/// closes with `code` and `reason`.
async fn refuse<S: FrameSink>(
    sink: &mut S,
    error: ErrorCode,
    message: impl Into<String>,
    code: u16,
    reason: &'static str,
) {
    let _ = send_frame(sink, &ServerFrame::error(error, message)).await; // closing anyway
    close_with(sink, code, reason).await;
}

/// Sends a Close frame with `code` and `reason`, then closes the sink.
async fn close_with<S: FrameSink>(sink: &mut S, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    // The peer may already be gone; there is nobody left to tell.
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}

/// Ends a connection whose frames failed: a fault of the client's (a
/// message too big, a broken frame, text that is not UTF-8) is told with
/// its close code; a socket that failed is left.
///
/// `site` and `user` (once known) name the connection in the log.
async fn close_for<S: FrameSink>(
    sink: &mut S,
    err: &axum::Error,
    site: &SiteId,
    user: Option<&UserId>,
) {
    match wire::wire_error(err).and_then(wire::WireError::close_code) {
        Some((code, reason)) => {
            let user = user.map(UserId::as_str);
            tracing::info!(%site, user, code, reason, "closing on a bad frame");
            close_with(sink, code, reason).await;
        }
        None => tracing::debug!(error = %err, "socket error"),
    }
}

/// Answers the client's close with one (RFC 6455 section 5.5.1).
async fn answer_close<S: FrameSink>(sink: &mut S) {
    close_with(sink, close::NORMAL, "").await;
}

/// Answers a ping with a pong of the same payload.
async fn pong<S: FrameSink>(sink: &mut S, payload: bytes::Bytes) -> Result<(), Gone> {
    sink.send(Message::Pong(payload)).await.map_err(|_| Gone)
}
