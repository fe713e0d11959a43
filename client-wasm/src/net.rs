//! The WebSocket link to the server: open `/ws?site=SITE` with the
//! `natter.v1` subprotocol, authenticate, decode frames, and reconnect with
//! jittered exponential backoff when the socket closes.
//!
//! The link knows nothing about rooms: it hands decoded [`ServerFrame`]s and
//! its own [`LinkState`] to the handler the app gives it, and sends the
//! frames the app asks it to.
//!
//! A connection can die without a word (a laptop asleep, a router
//! restarted, a NAT that forgot it): the socket then stays open and
//! nothing comes. So when the server has been quiet for [`QUIET_MS`], or
//! the browser says the network came back, the link sends `ping`; a
//! socket that answers nothing within [`PONG_WAIT_MS`] is dropped and
//! another one opened.

use crate::link;
use leptos::prelude::{
    IntervalHandle, TimeoutHandle, set_interval_with_handle, set_timeout_with_handle,
};
use natter_shared::{ClientFrame, ErrorCode, PROTOCOL, ServerFrame};
use std::cell::{Cell, RefCell};
use std::rc::{Rc, Weak};
use std::time::Duration;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// How long the server may be quiet before the link asks it (`ping`).
const QUIET_MS: f64 = 25_000.0;
/// How long a `ping` may go unanswered before the socket counts as dead.
const PONG_WAIT_MS: f64 = 10_000.0;
/// How often the link looks at its socket.
const WATCH_EVERY: Duration = Duration::from_secs(5);

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
    /// The timer that looks for a dead socket.
    watch: Cell<Option<IntervalHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(watch) = self.watch.take() {
            watch.clear();
        }
    }
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
    /// When the current socket last brought anything (ms, `Date.now()`).
    heard: f64,
    /// When a `ping` went out that nothing has answered since.
    asked: Option<f64>,
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
        let link = Link(Rc::new(Inner {
            url,
            handler: Box::new(handler),
            state: RefCell::new(State::default()),
            watch: Cell::new(None),
        }));
        let weak = Rc::downgrade(&link.0);
        let watch = set_interval_with_handle(
            move || {
                if let Some(link) = upgrade(&weak) {
                    link.look();
                }
            },
            WATCH_EVERY,
        );
        link.0.watch.set(watch.ok());
        link
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
    /// An open one may have died meanwhile: it is asked (`ping`).
    pub fn retry_now(&self) {
        let connect = {
            let mut st = self.0.state.borrow_mut();
            st.attempt = 0;
            !st.closed && !st.socket.as_ref().is_some_and(|s| is_live(&s.ws))
        };
        if connect {
            self.connect();
        } else {
            self.ask();
        }
    }

    /// Sends `ping` on the open socket unless one is unanswered.
    fn ask(&self) {
        let now = js_sys::Date::now();
        {
            let mut st = self.0.state.borrow_mut();
            if st.asked.is_some() {
                return;
            }
            st.asked = Some(now);
        }
        if !self.send(&ClientFrame::Ping { nonce: None }) {
            self.0.state.borrow_mut().asked = None;
        }
    }

    /// Every [`WATCH_EVERY`]: asks a quiet socket whether it lives, and
    /// replaces one that left a `ping` unanswered.
    fn look(&self) {
        let now = js_sys::Date::now();
        let (quiet, dead) = {
            let st = self.0.state.borrow();
            let open = (st.socket.as_ref()).is_some_and(|s| s.ws.ready_state() == WebSocket::OPEN);
            if st.closed || !open {
                return;
            }
            match st.asked {
                Some(at) => (false, now - at > PONG_WAIT_MS),
                None => (now - st.heard > QUIET_MS, false),
            }
        };
        if dead {
            web_sys::console::warn_1(
                &"natter: the server stopped answering; connecting again".into(),
            );
            // Dropping it closes it without a report: this is the report.
            let gone = {
                let mut st = self.0.state.borrow_mut();
                st.asked = None;
                st.socket.take()
            };
            drop(gone);
            self.schedule_retry();
        } else if quiet {
            self.ask();
        }
    }

    /// Closes the socket for good and cancels any pending reconnect.
    pub fn close(&self) {
        if let Some(watch) = self.0.watch.take() {
            watch.clear();
        }
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
            st.asked = None;
            st.heard = js_sys::Date::now();
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
            {
                let mut st = link.0.state.borrow_mut();
                st.heard = js_sys::Date::now();
                st.asked = None;
            }
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
