//! The WebSocket link to the server: open `/ws?site=SITE` with the
//! `natter.v1` subprotocol, authenticate, decode frames, and reconnect with
//! jittered exponential backoff when the socket closes.
//!
//! The link knows nothing about rooms: it hands decoded [`ServerFrame`]s and
//! its own [`LinkState`] to the handler the app gives it, and sends the
//! frames the app asks it to.

use crate::link;
use leptos::prelude::{TimeoutHandle, set_timeout_with_handle};
use natter_shared::{ClientFrame, ErrorCode, PROTOCOL, ServerFrame};
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::time::Duration;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// The socket's side of the connection state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkState {
    /// No token from the host page yet.
    WaitingForToken,
    /// Opening the socket and authenticating.
    Connecting,
    /// The socket is open and the auth frame went out.
    Open,
    /// Closed; the next attempt starts in `retry_ms`.
    Offline { retry_ms: u32 },
    /// The server refused the token; waiting for a new one.
    Refused { reason: String },
}

/// What the link reports to its handler.
#[derive(Debug)]
pub enum Incoming {
    State(LinkState),
    Frame(ServerFrame),
}

/// A handle on the link; clones share it.
#[derive(Clone)]
pub struct Link(Rc<Inner>);

type Handler = Box<dyn Fn(&Link, Incoming)>;

struct Inner {
    url: String,
    handler: Handler,
    // Never borrowed across a call to `handler`, which may call back into
    // the link (to send, or to connect with a new token).
    state: RefCell<State>,
}

#[derive(Default)]
struct State {
    token: Option<String>,
    socket: Option<Socket>,
    retry: Option<TimeoutHandle>,
    /// Failed attempts since the last `hello`.
    attempt: u32,
    closed: bool,
    /// The current socket's user was welcomed (`hello`): a new token is
    /// sent on it (`auth` again) instead of connecting anew.
    welcomed: bool,
}

/// An open (or closing) socket with the callbacks it holds.
struct Socket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        // Detach first: a replaced socket must not report its own close.
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        // Closing an already closed socket is a no-op; nothing to report.
        let _ = self.ws.close();
    }
}

impl Link {
    /// A link to `url` that reports to `handler`. It connects once it has a
    /// token ([`Link::set_token`]).
    pub fn new(url: String, handler: impl Fn(&Link, Incoming) + 'static) -> Self {
        Link(Rc::new(Inner {
            url,
            handler: Box::new(handler),
            state: RefCell::new(State::default()),
        }))
    }

    /// Uses `token` from now on, connecting again unless it is the token
    /// of the socket already open: a new token may name another user, and
    /// the host page posts the same one more than once.
    ///
    /// A token of the same user for a socket already welcomed (a fresh one
    /// before or after the old one expired) goes out on that socket as
    /// `auth`: the session goes on.
    pub fn set_token(&self, token: String) {
        let (connect, renew) = {
            let mut st = self.0.state.borrow_mut();
            let same = st.token.as_deref() == Some(token.as_str());
            st.token = Some(token.clone());
            st.attempt = 0;
            let live = st.socket.as_ref().is_some_and(|s| is_live(&s.ws));
            let renew = !same && live && st.welcomed && !st.closed;
            let reuse = same && live;
            (!(st.closed || reuse || renew), renew)
        };
        if renew {
            self.send(&ClientFrame::Auth { token });
        } else if connect {
            self.connect();
        }
    }

    /// The token of the latest `auth` (the one a `hello` answers).
    pub fn token(&self) -> Option<String> {
        self.0.state.borrow().token.clone()
    }

    /// Sends a frame if the socket is open; false when it is not.
    pub fn send(&self, frame: &ClientFrame) -> bool {
        let st = self.0.state.borrow();
        let Some(socket) = st
            .socket
            .as_ref()
            .filter(|s| s.ws.ready_state() == WebSocket::OPEN)
        else {
            return false;
        };
        match crate::json::stringify(frame) {
            Some(text) => socket.ws.send_with_str(&text).is_ok(),
            None => false,
        }
    }

    /// Reconnects at once unless a socket is open or opening (the
    /// browser says the network is back: no need to wait for the backoff).
    pub fn retry_now(&self) {
        let connect = {
            let mut st = self.0.state.borrow_mut();
            st.attempt = 0;
            !st.closed && !st.socket.as_ref().is_some_and(|s| is_live(&s.ws))
        };
        if connect {
            self.connect();
        }
    }

    /// Closes the socket for good and cancels any pending reconnect.
    pub fn close(&self) {
        let mut st = self.0.state.borrow_mut();
        st.closed = true;
        if let Some(retry) = st.retry.take() {
            retry.clear();
        }
        st.socket = None;
    }

    fn report(&self, incoming: Incoming) {
        (self.0.handler)(self, incoming);
    }

    fn connect(&self) {
        let token = {
            let mut st = self.0.state.borrow_mut();
            if let Some(retry) = st.retry.take() {
                retry.clear();
            }
            st.socket = None;
            st.welcomed = false;
            st.token.clone()
        };
        let Some(token) = token else {
            self.report(Incoming::State(LinkState::WaitingForToken));
            return;
        };
        self.report(Incoming::State(LinkState::Connecting));
        match WebSocket::new_with_str(&self.0.url, PROTOCOL) {
            Ok(ws) => {
                let socket = self.attach(ws, token);
                self.0.state.borrow_mut().socket = Some(socket);
            }
            // A malformed URL: retrying cannot help, but backing off keeps
            // the loop from spinning.
            Err(_) => self.schedule_retry(),
        }
    }

    /// Wires the socket's callbacks; each holds the link weakly.
    fn attach(&self, ws: WebSocket, token: String) -> Socket {
        let weak = Rc::downgrade(&self.0);
        let on_open = Closure::<dyn FnMut()>::new(move || {
            if let Some(link) = upgrade(&weak) {
                link.send(&ClientFrame::Auth {
                    token: token.clone(),
                });
                link.report(Incoming::State(LinkState::Open));
            }
        });
        let weak = Rc::downgrade(&self.0);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |ev: MessageEvent| {
            let Some(link) = upgrade(&weak) else { return };
            let Some(text) = ev.data().as_string() else {
                return;
            };
            match crate::json::parse::<ServerFrame>(&text) {
                Ok(frame) => {
                    match &frame {
                        ServerFrame::Hello { .. } => {
                            let mut st = link.0.state.borrow_mut();
                            st.attempt = 0;
                            st.welcomed = true;
                        }
                        // The session goes on for a while: ask the page.
                        ServerFrame::Error {
                            code: ErrorCode::TokenExpired,
                            client_id: None,
                            ..
                        } => crate::embed::post_token_expired(),
                        _ => {}
                    }
                    link.report(Incoming::Frame(frame));
                }
                // A frame from a newer server: skip it, keep the session.
                Err(err) => web_sys::console::warn_1(&format!("natter: {err}").into()),
            }
        });
        let weak = Rc::downgrade(&self.0);
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |ev: CloseEvent| {
            let Some(link) = upgrade(&weak) else { return };
            if ev.code() == natter_shared::close::AUTH {
                // Retrying the same token would be refused again.
                if ev.reason() == ErrorCode::TokenExpired.as_str() {
                    crate::embed::post_token_expired();
                }
                link.report(Incoming::State(LinkState::Refused {
                    reason: ev.reason(),
                }));
            } else {
                link.schedule_retry();
            }
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        }
    }

    /// Reconnects after the next backoff delay. The dead socket stays in
    /// place until then: this runs inside its close callback.
    fn schedule_retry(&self) {
        let delay = {
            let mut st = self.0.state.borrow_mut();
            if st.closed {
                return;
            }
            let delay = link::backoff_ms(st.attempt, js_sys::Math::random());
            st.attempt = st.attempt.saturating_add(1);
            delay
        };
        let weak = Rc::downgrade(&self.0);
        let retry = set_timeout_with_handle(
            move || {
                if let Some(link) = upgrade(&weak) {
                    link.connect();
                }
            },
            Duration::from_millis(delay.into()),
        );
        self.0.state.borrow_mut().retry = retry.ok();
        self.report(Incoming::State(LinkState::Offline { retry_ms: delay }));
    }
}

fn upgrade(weak: &Weak<Inner>) -> Option<Link> {
    weak.upgrade().map(Link)
}

fn is_live(ws: &WebSocket) -> bool {
    matches!(ws.ready_state(), WebSocket::CONNECTING | WebSocket::OPEN)
}
