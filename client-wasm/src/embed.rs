//! What the widget learns from the page around it: the site from its own
//! URL (`/widget/?site=SITE`), and the user's token from the host page,
//! which `widget.js` posts into the iframe as
//! `{type: "natter:token", token}`.
//!
//! Tokens never travel in URLs (they would end up in logs and history):
//! only `postMessage` from the parent window is accepted.

use natter_shared::{RoomId, SiteId};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::MessageEvent;

/// The message type that carries a token.
const TOKEN_MESSAGE: &str = "natter:token";
/// The message that asks the widget to show a room.
const OPEN_MESSAGE: &str = "natter:open";
/// The message the widget posts to its parent once it listens for tokens.
const READY_MESSAGE: &str = "natter:ready";
/// The message that carries the total unread count to the parent.
const UNREAD_MESSAGE: &str = "natter:unread";
/// The message that asks the widget to sign out.
const LOGOUT_MESSAGE: &str = "natter:logout";
/// The message that says signing out would drop unsent messages.
const UNSENT_MESSAGE: &str = "natter:unsent";
/// The message that says the sign-out is done.
const LOGGED_OUT_MESSAGE: &str = "natter:logged-out";
/// The message that asks the parent for a fresh token.
const TOKEN_EXPIRED_MESSAGE: &str = "natter:token-expired";
/// The message that says whether the person can see the chat.
const VIEW_MESSAGE: &str = "natter:view";

/// Where the widget runs: its site and how to reach its server.
#[derive(Debug, Clone)]
pub struct Location {
    pub site: SiteId,
    /// `host[:port]` of the server that served the widget.
    pub host: String,
    /// Served over https, so the socket must be wss.
    pub secure: bool,
    /// The cap on received files kept for offline use, in MB, when the
    /// page set one (`data-file-cache-mb`, passed as `file_cache_mb`).
    pub file_cache_mb: Option<u32>,
}

/// Reads the site from `?site=` of the page's URL; `None` when it is
/// missing or malformed.
pub fn location() -> Option<Location> {
    let loc = web_sys::window()?.location();
    let search = loc.search().ok()?;
    let query = web_sys::UrlSearchParams::new_with_str(&search).ok()?;
    // Read exactly as the server read it for the page's frame-ancestors.
    let site = natter_shared::query::site(search.trim_start_matches('?')).ok()??;
    let file_cache_mb = query
        .get("file_cache_mb")
        .and_then(|v| v.trim().parse::<u32>().ok());
    Some(Location {
        site,
        host: loc.host().ok()?,
        secure: loc.protocol().ok()? == "https:",
        file_cache_mb,
    })
}

/// Calls `on_token` with every token the parent window posts, then tells
/// the parent the widget is listening (it may have posted before the
/// widget's code ran, and posts again on `natter:ready`). The listener
/// lives as long as the page.
/// `on_open` gets the room of every `{type: "natter:open", room}`, and
/// `on_view` whether the person can see the chat (`{type: "natter:view",
/// shown}`: the panel open and the page visible).
pub fn listen_for_tokens(
    on_token: impl Fn(String) + 'static,
    on_open: impl Fn(RoomId) + 'static,
    on_view: impl Fn(bool) + 'static,
    on_logout: impl Fn(bool) + 'static,
) {
    let Some(window) = web_sys::window() else {
        return;
    };
    let Some(parent) = window.parent().ok().flatten() else {
        return;
    };
    // A top-level page has itself as parent: nobody to hear from.
    if JsValue::from(parent.clone()) == JsValue::from(window.clone()) {
        return;
    }
    let expected = JsValue::from(parent.clone());
    let listener = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
        // Only the embedding page may hand us a token, not a sibling frame
        // or a window we opened.
        if ev.source().map(JsValue::from) != Some(expected.clone()) {
            return;
        }
        if let Some(room) = room_of(&ev.data()) {
            on_open(room);
        }
        if let Some(shown) = shown_of(&ev.data()) {
            on_view(shown);
        }
        if let Some(force) = logout_of(&ev.data()) {
            PARENT_ORIGIN.with(|o| *o.borrow_mut() = Some(ev.origin()));
            on_logout(force);
        }
        if let Some(token) = token_of(&ev.data()) {
            // The page that hands us tokens is the one to tell of unread
            // messages, at its own origin only.
            PARENT_ORIGIN.with(|o| *o.borrow_mut() = Some(ev.origin()));
            on_token(token);
        }
    });
    // Failing to listen leaves the widget waiting for a token, which its
    // status line shows; there is nothing better to do.
    let _ = window.add_event_listener_with_callback("message", listener.as_ref().unchecked_ref());
    // The listener must outlive this call: it is never removed.
    listener.forget();

    let ready = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&ready, &"type".into(), &READY_MESSAGE.into());
    // No secret in it, so any origin may read it; if it is lost the parent
    // still posts the token on the iframe's load event.
    let _ = parent.post_message(&ready, "*");
}

/// True when the widget runs in a frame (of the host page), not as a page
/// of its own.
pub fn framed() -> bool {
    web_sys::window()
        .and_then(|w| {
            let parent = w.parent().ok().flatten()?;
            Some(JsValue::from(parent) != JsValue::from(w))
        })
        .unwrap_or(false)
}

/// Whether a `{type: "natter:view", shown: bool}` message says the chat
/// can be seen.
fn shown_of(data: &JsValue) -> Option<bool> {
    let field = |name: &str| js_sys::Reflect::get(data, &name.into()).ok();
    if !data.is_object() || field("type")?.as_string()? != VIEW_MESSAGE {
        return None;
    }
    field("shown")?.as_bool()
}

/// `force` of a `{type: "natter:logout", force: bool}` message.
fn logout_of(data: &JsValue) -> Option<bool> {
    let field = |name: &str| js_sys::Reflect::get(data, &name.into()).ok();
    if !data.is_object() || field("type")?.as_string()? != LOGOUT_MESSAGE {
        return None;
    }
    Some(field("force").and_then(|f| f.as_bool()).unwrap_or(false))
}

/// Tells the embedding page that signing out would drop `count` messages
/// not yet sent (`Natter.on('unsent', fn)`); nothing was wiped.
pub fn post_unsent(count: usize) {
    post_to_host(UNSENT_MESSAGE, Some(("count", (count as u32).into())));
}

/// Tells the embedding page the sign-out is done (`Natter.on('loggedout', fn)`).
pub fn post_logged_out() {
    post_to_host(LOGGED_OUT_MESSAGE, None);
}

/// The room of a `{type: "natter:open", room: "..."}` message.
fn room_of(data: &JsValue) -> Option<RoomId> {
    let field = |name: &str| js_sys::Reflect::get(data, &name.into()).ok()?.as_string();
    if !data.is_object() || field("type")? != OPEN_MESSAGE {
        return None;
    }
    RoomId::parse(field("room")?).ok()
}

/// The token of a `{type: "natter:token", token: "..."}` message.
fn token_of(data: &JsValue) -> Option<String> {
    let field = |name: &str| js_sys::Reflect::get(data, &name.into()).ok()?.as_string();
    if !data.is_object() || field("type")? != TOKEN_MESSAGE {
        return None;
    }
    field("token").filter(|t| !t.is_empty())
}

thread_local! {
    /// The origin of the page that posted the token.
    static PARENT_ORIGIN: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    /// The count last posted.
    static LAST_UNREAD: std::cell::Cell<Option<u32>> = const { std::cell::Cell::new(None) };
}

/// Tells the embedding page the total unread count (`widget.js` hands it
/// to `Natter.on('unread', fn)` listeners); nothing before a token came.
pub fn post_unread(total: u32) {
    // Only changes are news to the page.
    if PARENT_ORIGIN.with(|o| o.borrow().is_none())
        || LAST_UNREAD.with(|last| last.replace(Some(total))) == Some(total)
    {
        return;
    }
    post_to_host(UNREAD_MESSAGE, Some(("count", total.into())));
}

/// Tells the embedding page the token expired (`widget.js` calls its
/// `Natter.on('tokenexpired', fn)` listeners, which hand a fresh one to
/// `Natter.setToken`); the connection stays open meanwhile.
pub fn post_token_expired() {
    post_to_host(TOKEN_EXPIRED_MESSAGE, None);
}

/// Posts `{type, [field]: value}` to the page that gave us the token, at
/// its origin only; nothing before a token came.
fn post_to_host(kind: &str, field: Option<(&str, JsValue)>) {
    let Some(origin) = PARENT_ORIGIN.with(|o| o.borrow().clone()) else {
        return;
    };
    let Some(window) = web_sys::window() else {
        return;
    };
    let Some(parent) = window.parent().ok().flatten() else {
        return;
    };
    if JsValue::from(parent.clone()) == JsValue::from(window) {
        return;
    }
    let message = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&message, &"type".into(), &kind.into());
    if let Some((name, value)) = field {
        let _ = js_sys::Reflect::set(&message, &name.into(), &value);
    }
    // Lost only if the parent navigated away; nothing to do then.
    let _ = parent.post_message(&message, &origin);
}
