//! The widget's chat as plain data, apart from the browser: nothing here
//! touches Leptos, the DOM or IndexedDB, so it builds and is tested
//! natively without the widget's web dependencies.
//!
//! - [`chat`]: rooms and the events held of them, our own messages pending
//!   until the room has them, and the lines the views show, built when
//!   read. It drives the shared sans-IO state machines
//!   (`natter_shared::sync`: cursors and outbox) with each server frame and
//!   returns the frames to send back; it owns the record types the
//!   widget's store keeps.
//! - [`link`]: the reconnect delay (jittered backoff) and the WebSocket
//!   URL.
//! - [`time`]: timestamps as text, without the browser's `Date`.
//! - [`typing`]: typing indicators: when to say it, who is shown typing,
//!   when that goes stale.
//!
//! The widget (`natter-client`) re-exports these modules under its own
//! name.

pub mod chat;
pub mod link;
pub mod time;
pub mod typing;
