//! Natter's wire protocol, shared by the server and the widget.
//!
//! A guided tour:
//!
//! - [`ids`]: the typed identifiers that cross the wire (sites, rooms, users,
//!   client message ids, per-room sequence numbers). Each has a `parse`
//!   constructor; past the boundary everything trusts the type.
//! - [`close`]: the WebSocket close codes and what each means.
//! - [`limits`]: the default sizes and counts every side agrees on.
//! - [`api`]: the JSON bodies of the HTTP API a site's backend calls.
//! - [`protocol`]: every frame a client and a server exchange over the
//!   WebSocket, the events a room is made of, and the error codes.
//!
//! - [`webhooks`]: what a site's backend is told of its chats, and the
//!   bodies that set webhooks up.
//!
//! - [`sync`]: the sans-IO state machines of the widget's sync engine —
//!   the outbox (what to send, what an ack settles, what a reconnect
//!   resends) and the per-room cursors (what to ask for, what a page or an
//!   event advances).
//!
//! Nothing here does IO: the crate builds for native targets and for
//! `wasm32-unknown-unknown` alike, so the decisions it encodes are
//! unit-tested without a socket or a browser.

pub mod api;
pub mod close;
pub mod ids;
pub mod limits;
pub mod mime;
pub mod protocol;
pub mod query;
pub mod sync;
pub mod text;
pub mod webhooks;

pub use ids::{ClientId, FileId, IdError, RoomId, Seq, SiteId, UserId};
pub use protocol::{
    Attachment, ClientFrame, Cursor, ErrorCode, Event, EventKind, Limits, Member, PROTOCOL,
    Presence, RoomInfo, RoomKind, ServerFrame,
};
