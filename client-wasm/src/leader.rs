//! Tab leadership: of the tabs of one site and user, the one holding the
//! Web Lock named after the database owns the connection and the outbox
//! drain; when it closes, the lock passes to a follower. The tabs tell
//! each other what they stored, who types and how the connection stands
//! on a BroadcastChannel of the same name ([`News`]).

use js_sys::{Function, Promise, Reflect};
use natter_shared::{Presence, RoomId, Seq, UserId};
use serde::{Deserialize, Serialize};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BroadcastChannel, MessageEvent};

/// What a tab tells the others: what it wrote to the store, and what the
/// tab that holds the connection hears and says for the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum News {
    /// The owner stored events: followers re-read the store.
    Room,
    /// A tab wrote to the outbox: the owner adopts and sends.
    Outbox,
    /// The owner heard someone type: followers show it too.
    Typing { room: RoomId, user: UserId },
    /// A follower's person types: the owner says so on the connection.
    SayTyping { room: RoomId },
    /// The owner's connection is live (synced) or not.
    Link { live: bool },
    /// A follower's person read a room up to `seq`: the owner tells the
    /// server.
    Read { room: RoomId, seq: Seq },
    /// Who is online, as the owner heard it.
    Presence { users: Vec<Presence> },
    /// A tab started: the owner says how its connection stands.
    Ask,
    /// The person signed out in one tab: the others close too (the
    /// database is being deleted).
    SignedOut,
}

impl News {
    /// What is said on the channel: JSON, `"room"` for a bare word and
    /// `{"typing":{…}}` for the rest (no tag field to look for first,
    /// which keeps its decoder small).
    fn encode(&self) -> String {
        crate::json::stringify(self).unwrap_or_default()
    }

    /// Also the bare words of builds before JSON. What a tab of another
    /// build says in another form is not understood, and ignored.
    fn parse(said: &str) -> Option<News> {
        match said {
            "room" => Some(News::Room),
            "outbox" => Some(News::Outbox),
            _ => crate::json::parse(said).ok(),
        }
    }
}

/// A listener the browser calls with a channel's messages.
type Listener = Closure<dyn FnMut(MessageEvent)>;

/// This tab's place among the tabs of one site and user.
pub struct Tabs {
    /// `None` where the browser has no BroadcastChannel: the tab then
    /// neither hears nor tells (each tab leads, see [`Tabs::lead_when_chosen`]).
    channel: Option<BroadcastChannel>,
    /// Resolving it releases the lock (held until then).
    release: Rc<RefCell<Option<Function>>>,
    /// The channel's listener, kept alive as long as the tabs.
    on_message: RefCell<Option<Listener>>,
    /// Set on close: a lock granted after it (the request still waited)
    /// is given back at once, so it passes on to a live tab.
    closed: Rc<Cell<bool>>,
}

impl Tabs {
    /// Joins the channel named `name` (the database's name).
    pub fn new(name: &str) -> Tabs {
        Tabs {
            channel: BroadcastChannel::new(name).ok(),
            release: Rc::new(RefCell::new(None)),
            on_message: RefCell::new(None),
            closed: Rc::new(Cell::new(false)),
        }
    }

    /// Tells the other tabs.
    pub fn say(&self, news: News) {
        if let Some(channel) = &self.channel {
            // A tab that misses it re-reads on its next change.
            let _ = channel.post_message(&news.encode().into());
        }
    }

    /// Calls `on_news` with what the other tabs say.
    pub fn listen(&self, on_news: impl Fn(News) + 'static) {
        let Some(channel) = &self.channel else {
            return;
        };
        let on_message = Listener::new(move |ev: MessageEvent| {
            if let Some(news) = ev.data().as_string().as_deref().and_then(News::parse) {
                on_news(news);
            }
        });
        channel.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        *self.on_message.borrow_mut() = Some(on_message);
    }

    /// Asks for the lock named `name`; once held, calls `lead` (this tab
    /// connects). Where the browser has no Web Locks, every tab leads on
    /// its own (the server's idempotent sends keep that safe).
    pub fn lead_when_chosen(&self, name: &str, lead: impl Fn() + 'static) {
        let lead = Rc::new(lead);
        let release = self.release.clone();
        let closed = self.closed.clone();
        let acquired = {
            let lead = lead.clone();
            move |_lock: JsValue| -> JsValue {
                if closed.get() {
                    // This tab left while it waited: the lock goes on.
                    return JsValue::UNDEFINED;
                }
                lead();
                // Held until this promise resolves: on close, or with the tab.
                Promise::new(&mut |resolve, _| {
                    *release.borrow_mut() = Some(resolve);
                })
                .into()
            }
        };
        let locks = web_sys::window()
            .map(|w| JsValue::from(w.navigator()))
            .and_then(|n| Reflect::get(&n, &"locks".into()).ok())
            .filter(|l| l.is_object());
        let request = locks.as_ref().and_then(|l| {
            Reflect::get(l, &"request".into())
                .ok()?
                .dyn_into::<Function>()
                .ok()
        });
        match (locks, request) {
            (Some(locks), Some(request)) => {
                let callback = Closure::once_into_js(acquired);
                if request.call2(&locks, &name.into(), &callback).is_err() {
                    lead();
                }
            }
            _ => lead(),
        }
    }

    /// Leaves: closes the channel and releases the lock (or, still
    /// waiting for it, gives it back as soon as it is granted).
    pub fn close(&self) {
        self.closed.set(true);
        if let Some(channel) = &self.channel {
            channel.close();
        }
        if let Some(release) = self.release.borrow_mut().take() {
            // Resolving a promise does not fail.
            let _ = release.call0(&JsValue::UNDEFINED);
        }
    }
}
