//! Natter's chat widget: a Leptos app that runs at `/widget/?site=SITE`
//! inside an iframe that `widget.js` puts on a host page.
//!
//! A guided tour:
//!
//! - [`embed`]: what the iframe learns from its surroundings: the site from
//!   its URL, the user's token from the parent window's `postMessage`.
//! - [`net`]: the WebSocket link: subprotocol `natter.v1`, the auth frame,
//!   frame decoding, reconnect with jittered backoff.
//! - [`chat`]: the chat as plain data: rooms and the events held of
//!   them, our own messages pending until the room has them, and the
//!   lines the views show, built when read. It lives in the
//!   `natter-client-model` crate (no browser there, so its tests run
//!   natively without Leptos) and is re-exported here.
//! - [`components`]: the views (connection line, room list, messages,
//!   composer); network text only ever becomes DOM text.
//! - [`files`]: files in messages: thumbnails, players and chips, with
//!   short-lived signed links asked of the server.
//! - [`db`]: the IndexedDB store (rooms, messages, outbox, meta), one
//!   database per site and user; the source of truth the views show.
//! - [`sync`]: the engine: store first, then network; a queue of work
//!   handled in order.
//! - [`json`]: JSON text read and written by the browser, decoded by the
//!   same decoder as the store's values (one decoder per type).
//! - [`leader`]: one tab per user owns the connection (Web Locks), the
//!   others follow through a BroadcastChannel and the store.
//! - [`typing`]: typing indicators as plain data: when to say it, who is
//!   shown typing, when that goes stale (also from `natter-client-model`).
//! - [`shell`]: opening without the server: the service worker that keeps
//!   this build and the page in the browser's cache, and durable storage.
//! - [`error`]: what the browser or its storage can refuse.
//! - [`stopped`]: a panic or a trap in the widget stops the chat, saying so.
//! - [`app`]: the root component that wires them together.

pub mod app;
pub mod components;
pub mod db;
pub mod embed;
pub mod error;
pub mod files;
pub mod json;
pub mod leader;
pub mod net;
pub mod shell;
pub mod stopped;
pub mod sync;
pub mod trust;

pub use natter_client_model::{chat, link, time, typing};

/// Mounts the widget on the page's body.
pub fn start() {
    stopped::install();
    leptos::mount::mount_to_body(app::App);
    shell::keep_offline();
}
