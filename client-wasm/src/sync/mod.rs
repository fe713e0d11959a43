//! The sync engine: drives the [`Chat`] state machine with the socket's
//! frames and the person's actions, writes what changed to the [`Db`]
//! before the view shows it, and shares the work between tabs.
//!
//! One tab per site and user owns the connection and the outbox drain
//! ([`crate::leader`] says which). The others follow: they write their new
//! messages to the outbox store and tell the owner ([`News::Outbox`]: it
//! adopts and sends them), and re-read the store when the owner says it
//! stored events ([`News::Room`]). When the owner tab closes, a follower
//! takes over.
//!
//! Work is handled one item at a time, in arrival order (frames, sends,
//! room switches), so each item's writes finish before the next starts.
//! Files attached to messages upload beside it, one at a time, in the
//! owner tab ([`uploads`]); each finished upload is queued as work. What
//! the tabs tell each other besides (typing, the link, presence, reads)
//! is [`tabs`]'.

mod session;
mod tabs;
mod uploads;

use crate::chat::{Change, Chat, PAGE};
use crate::db::{self, Db};
use crate::error::ClientError;
use crate::leader::{News, Tabs};
use crate::net::{Incoming, Link, LinkState};
use crate::typing::Typing;
use leptos::prelude::*;
use natter_shared::sync::OutgoingFile;
use natter_shared::{ClientFrame, ClientId, ErrorCode, FileId, RoomId, Seq, ServerFrame, UserId};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use web_sys::Blob;

/// The signals the engine keeps up to date for the views.
#[derive(Clone, Copy)]
pub struct View {
    /// The chat as the store holds it.
    pub chat: RwSignal<Chat>,
    /// The socket's state (the owner's), or `None` in a follower tab.
    pub link: RwSignal<Option<LinkState>>,
    /// The last storage failure, shown to the person.
    pub error: RwSignal<Option<String>>,
    /// The room the person looks at.
    pub open: RwSignal<Option<RoomId>>,
    /// Who is typing where, and when this tab last said so.
    pub typing: RwSignal<Typing>,
    /// In a follower tab: whether the owner tab's connection is live, once
    /// it said.
    pub owner_live: RwSignal<Option<bool>>,
    /// Files on their way: how many bytes of each (by key) the server has.
    pub progress: RwSignal<HashMap<String, f64>>,
    /// Files on their way: a local address (`blob:`) to preview each
    /// image by (by key).
    pub previews: RwSignal<HashMap<String, String>>,
    /// Counts sign-outs another tab told of: the app closes this tab's
    /// session on each.
    pub signed_out: RwSignal<u32>,
}

/// Signs out of `site` in this browser: every tab of the user (of every
/// user of the site, when none is known) is told to close, then the
/// user's database (messages, outbox, kept files) is deleted. The
/// deletion waits for the other tabs to let go of it.
pub async fn sign_out(site: &str, user: Option<&UserId>) -> Result<(), ClientError> {
    let names = match user {
        Some(user) => vec![db::db_name(site, user.as_str())],
        None => Db::names(&db::db_name(site, "")).await?,
    };
    for name in names {
        let tabs = Tabs::new(&name);
        tabs.say(News::SignedOut);
        tabs.close();
        Db::delete(&name).await?;
    }
    Ok(())
}

/// A file the person attached: what the message says of it, and its bytes.
pub type Attached = (OutgoingFile, Blob);

/// How long a message refused for a passing reason waits before it is
/// sent again, unless the server said.
const RESEND_MS: u64 = 2_000;
/// The longest such wait.
const MAX_RESEND_MS: u32 = 60_000;

/// One thing to do, in order.
enum Work {
    /// A frame and the socket it came on (see [`Inner::socket`]).
    Frame(ServerFrame, u64),
    Disconnected,
    Compose(RoomId, String, Vec<Attached>),
    Uploaded(ClientId, String, FileId),
    UploadRefused(ClientId, ErrorCode, String),
    Retry(ClientId),
    Discard(ClientId),
    Open(RoomId),
    /// The person went back to the room list.
    Close,
    /// The person can (or no longer can) see the open room's end.
    Reading(bool),
    /// The person has seen a room up to this seq.
    ReadTo(RoomId, Seq),
    Older(RoomId),
    Reload,
    OutboxChanged,
    /// Messages a passing refusal put back in the queue go out again.
    Resend,
    /// The server took this token (`hello`, or `GET /session`): the
    /// database may show.
    Confirmed(String),
}

/// A running engine for one user; clones share it.
#[derive(Clone)]
pub struct Engine(Rc<Inner>);

struct Inner {
    site: String,
    user: UserId,
    url: String,
    token: RefCell<String>,
    db: Db,
    view: View,
    link: RefCell<Option<Link>>,
    /// The lock that makes this tab the owner, and the channel to the
    /// other tabs.
    tabs: Tabs,
    queue: RefCell<VecDeque<Work>>,
    running: Cell<bool>,
    closed: Cell<bool>,
    /// Counts the sockets opened. The chat's state learns of a closed
    /// socket only when the queue reaches it, so until then it may still
    /// think itself live while a new socket is already open.
    socket: Cell<u64>,
    /// The socket the chat last synced on: messages go out on that socket
    /// only. On a newer one they would overtake the ones still in flight on
    /// the old one, which the next sync sends again first.
    synced_on: Cell<u64>,
    /// The uploads' state (see [`uploads`]).
    uploads: uploads::State,
    /// Whether the person can see the open room's end (kept across the
    /// chat's rebuilds).
    reading: Cell<bool>,
    /// Whether the server took a token of this user that the database
    /// knows (see [`crate::trust`]); until then nothing of it shows.
    trusted: Cell<bool>,
    /// Whether this tab is asking the server about its token.
    asking: Cell<bool>,
    /// Whether a [`Work::Resend`] is on its way.
    resend_due: Cell<bool>,
}

impl Engine {
    /// Opens the user's database, shows what it holds, then competes for
    /// the connection: the owner connects, a follower listens.
    pub async fn start(
        site: &str,
        user: UserId,
        url: String,
        token: String,
        view: View,
    ) -> Result<Engine, ClientError> {
        let name = db::db_name(site, user.as_str());
        let db = Db::open(&name).await?;
        let known = db.verified().await?;
        let trusted = crate::trust::is_known(&token, known.as_deref()).await;
        db.set_user(&user).await?;
        let engine = Engine(Rc::new(Inner {
            site: site.to_string(),
            user,
            url,
            token: RefCell::new(token),
            db,
            view,
            link: RefCell::new(None),
            tabs: Tabs::new(&name),
            queue: RefCell::new(VecDeque::new()),
            running: Cell::new(false),
            closed: Cell::new(false),
            socket: Cell::new(0),
            synced_on: Cell::new(0),
            uploads: uploads::State::default(),
            reading: Cell::new(false),
            trusted: Cell::new(trusted),
            asking: Cell::new(false),
            resend_due: Cell::new(false),
        }));
        // The store first, before any network, for a token it knows.
        if trusted {
            engine.show_store().await?;
        }
        engine.ask();
        let weak = Rc::downgrade(&engine.0);
        engine.0.tabs.listen(move |news| {
            if let Some(inner) = weak.upgrade() {
                Engine(inner).hear_tab(news);
            }
        });
        engine.0.tabs.say(News::Ask);
        let weak = Rc::downgrade(&engine.0);
        engine.0.tabs.lead_when_chosen(&name, move || {
            if let Some(inner) = weak.upgrade() {
                Engine(inner).lead();
            }
        });
        Ok(engine)
    }

    /// The user this engine serves.
    pub fn user(&self) -> &UserId {
        &self.0.user
    }

    /// The user's database.
    pub fn db(&self) -> &Db {
        &self.0.db
    }

    /// Shows what the store holds: the chat, with the room left open.
    async fn show_store(&self) -> Result<(), ClientError> {
        if let Some(room) = self.0.db.open_room().await? {
            self.0.view.open.set(Some(room));
        }
        self.reload().await
    }

    /// Writes a new message, with the files attached to it; it shows as
    /// pending at once.
    pub fn compose(&self, room: RoomId, body: String, files: Vec<Attached>) {
        self.push(Work::Compose(room, body, files));
    }

    /// Sends a failed message again.
    pub fn retry(&self, client_id: ClientId) {
        self.push(Work::Retry(client_id));
    }

    /// Gives up on a failed message, or cancels one still uploading.
    pub fn discard(&self, client_id: ClientId) {
        self.push(Work::Discard(client_id));
    }

    /// The person opened a room.
    pub fn open(&self, room: RoomId) {
        self.push(Work::Open(room));
    }

    /// The person went back to the room list.
    pub fn close_room(&self) {
        self.push(Work::Close);
    }

    /// Whether the person can see the open room's end (the chat open, the
    /// page visible, scrolled to the end): what is there, and what comes,
    /// is read.
    pub fn reading(&self, reading: bool) {
        self.push(Work::Reading(reading));
    }

    /// The person has seen a room up to `seq` (scrolled back, say).
    pub fn read_to(&self, room: RoomId, seq: Seq) {
        self.push(Work::ReadTo(room, seq));
    }

    /// The person scrolled to the top of a room: older messages, from the
    /// store if it has them, else from the server.
    pub fn older(&self, room: RoomId) {
        self.push(Work::Older(room));
    }

    /// The browser says the network is back: reconnect and continue
    /// uploads now.
    pub fn online(&self) {
        if let Some(link) = self.0.link.borrow().clone() {
            link.retry_now();
        }
        self.0.uploads.wake();
    }

    /// Stops: closes the socket, releases the lock and the store.
    pub fn close(&self) {
        self.0.closed.set(true);
        if let Some(link) = self.0.link.borrow_mut().take() {
            link.close();
        }
        self.0.uploads.stop();
        self.0.tabs.close();
    }

    /// Sends what a passing refusal (the server busy or stopping) put
    /// back in the queue once `ms` passed, not at once and not in a tight
    /// loop, and whether or not anything else happens meanwhile.
    fn resend_after(&self, ms: u64) {
        if self.0.resend_due.replace(true) {
            return;
        }
        let engine = self.clone();
        let ms = u32::try_from(ms).unwrap_or(u32::MAX).min(MAX_RESEND_MS);
        wasm_bindgen_futures::spawn_local(async move {
            uploads::sleep(ms).await;
            engine.push(Work::Resend);
        });
    }

    fn push(&self, work: Work) {
        if self.0.closed.get() {
            return;
        }
        self.0.queue.borrow_mut().push_back(work);
        if !self.0.running.replace(true) {
            let engine = self.clone();
            wasm_bindgen_futures::spawn_local(async move { engine.run().await });
        }
    }

    async fn run(self) {
        loop {
            let next = self.0.queue.borrow_mut().pop_front();
            let Some(work) = next else { break };
            if let Err(err) = self.handle(work).await {
                self.0.view.error.set(Some(err.to_string()));
            }
        }
        self.0.running.set(false);
    }

    async fn handle(&self, work: Work) -> Result<(), ClientError> {
        let chat = self.0.view.chat;
        // Nothing of the store shows before the server took a token.
        if !self.0.trusted.get()
            && matches!(work, Work::Open(_) | Work::Older(_) | Work::OutboxChanged)
        {
            return Ok(());
        }
        match work {
            Work::Confirmed(token) => self.confirmed(&token).await?,
            Work::Frame(frame, socket) => {
                if let ServerFrame::Error {
                    client_id: Some(_),
                    code,
                    retry_after_ms,
                    ..
                } = &frame
                    && !natter_shared::sync::is_permanent(*code)
                {
                    self.resend_after(retry_after_ms.unwrap_or(RESEND_MS));
                }
                let synced = matches!(frame, ServerFrame::Synced {});
                if synced {
                    self.0.synced_on.set(socket);
                }
                let out = chat
                    .try_update_untracked(|c| c.apply(frame))
                    .unwrap_or_default();
                self.persist().await?;
                self.send(&out);
                if synced {
                    self.announce_link();
                }
            }
            Work::Disconnected => {
                chat.update(Chat::on_disconnect);
                self.announce_link();
            }
            Work::Compose(room, body, attached) => {
                let client_id = ClientId::from_uuid(uuid::Uuid::now_v7());
                let now = js_sys::Date::now() as i64;
                let files = attached.iter().map(|(f, _)| f.clone()).collect();
                let composed =
                    chat.try_update_untracked(|c| c.compose(&room, client_id, body, files, now));
                let out = match composed {
                    Some(Ok(out)) => out,
                    Some(Err(err)) => {
                        self.0.view.error.set(Some(err.to_string()));
                        return Ok(());
                    }
                    None => return Ok(()),
                };
                self.preview(&attached);
                *self.0.uploads.staged.borrow_mut() = attached;
                let persisted = self.persist().await;
                self.0.uploads.staged.borrow_mut().clear();
                if let Err(err) = persisted {
                    // Not saved, so not accepted: it must not look sent.
                    chat.update(|c| c.unsend(&client_id));
                    return Err(err);
                }
                self.0.view.error.set(None);
                self.send(&out);
                self.0.tabs.say(News::Outbox);
                self.upload();
            }
            Work::Uploaded(client_id, key, id) => {
                let out = chat
                    .try_update_untracked(|c| c.uploaded(&client_id, &key, id))
                    .unwrap_or_default();
                self.persist().await?;
                self.send(&out);
            }
            Work::UploadRefused(client_id, code, message) => {
                chat.try_update_untracked(|c| c.upload_refused(&client_id, code, &message));
                self.persist().await?;
            }
            Work::Discard(client_id) => {
                let gone = chat
                    .try_update_untracked(|c| c.discard(&client_id))
                    .flatten();
                // Where its uploads are, read before their records go.
                let cancel = match &gone {
                    Some(entry) => self.cancel_uploads(entry).await,
                    None => Vec::new(),
                };
                self.persist().await?;
                self.finish_cancel(cancel);
                self.0.tabs.say(News::Outbox);
            }
            Work::Retry(client_id) => {
                let out = chat
                    .try_update_untracked(|c| c.retry(&client_id))
                    .unwrap_or_default();
                self.persist().await?;
                self.send(&out);
                self.0.tabs.say(News::Outbox);
                self.upload();
            }
            Work::Open(room) => {
                self.0.view.open.set(Some(room.clone()));
                self.0.db.set_open_room(Some(&room)).await?;
                let cached = self.0.db.messages(&room, PAGE).await?;
                let reading = self.0.reading.get();
                let out = chat
                    .try_update_untracked(|c| {
                        c.set_open(Some(room.clone()));
                        c.load(&room, cached);
                        c.set_reading(reading)
                    })
                    .unwrap_or_default();
                self.persist().await?;
                self.send(&out);
                self.share_read();
            }
            Work::Close => {
                self.0.db.set_open_room(None).await?;
                chat.update_untracked(|c| c.set_open(None));
            }
            Work::Reading(reading) => {
                self.0.reading.set(reading);
                let out = chat
                    .try_update_untracked(|c| c.set_reading(reading))
                    .unwrap_or_default();
                self.persist().await?;
                self.send(&out);
                self.share_read();
            }
            Work::ReadTo(room, seq) => {
                let out = chat
                    .try_update_untracked(|c| c.mark_read(&room, seq))
                    .flatten();
                self.persist().await?;
                self.send(&out.into_iter().collect::<Vec<_>>());
                self.share_read();
            }
            Work::Older(room) => {
                let first = chat.with_untracked(|c| c.first_shown(&room));
                let cached = match first {
                    Some(before) => self.0.db.messages_before(&room, before, PAGE).await?,
                    None => Vec::new(),
                };
                if cached.is_empty() {
                    let request = chat.try_update_untracked(|c| c.older(&room)).flatten();
                    self.send(&request.into_iter().collect::<Vec<_>>());
                } else {
                    chat.update(|c| c.load(&room, cached));
                }
            }
            Work::Reload => self.reload().await?,
            Work::Resend => {
                self.0.resend_due.set(false);
                let out = chat.try_update(Chat::resend).unwrap_or_default();
                self.persist().await?;
                self.send(&out);
            }
            Work::OutboxChanged => {
                if self.0.link.borrow().is_some() {
                    let stored = self.0.db.outbox().await?;
                    let (out, gone) = chat.try_update(|c| c.adopt(stored)).unwrap_or_default();
                    // Given up on in another tab, which dropped their
                    // uploads on the server: this tab stops sending them.
                    for entry in &gone {
                        self.cancel_uploads(entry).await;
                    }
                    self.send(&out);
                    self.upload();
                }
            }
        }
        Ok(())
    }

    /// Writes what the chat recorded, then lets the views show it.
    async fn persist(&self) -> Result<(), ClientError> {
        let chat = self.0.view.chat;
        let changes = chat
            .try_update_untracked(Chat::take_changes)
            .unwrap_or_default();
        let mut stored_events = false;
        let mut result = Ok(());
        for change in changes {
            stored_events |= change.stores_events();
            let applied = match &change {
                Change::Composed(entry) if !entry.files.is_empty() => {
                    let blobs: Vec<(String, Blob)> = (self.0.uploads.staged.borrow().iter())
                        .map(|(f, b)| (f.key.clone(), b.clone()))
                        .collect();
                    self.0.db.compose_with_files(entry, &blobs).await
                }
                _ => self.0.db.apply(&change).await,
            };
            if let Err(err) = applied {
                result = Err(err);
                break;
            }
        }
        chat.notify();
        if stored_events {
            self.0.tabs.say(News::Room);
        }
        self.post_unread();
        result
    }

    /// Rebuilds the chat from the store (at start, and in a follower when
    /// the owner stored something).
    async fn reload(&self) -> Result<(), ClientError> {
        if !self.0.trusted.get() {
            return Ok(());
        }
        let rooms = self.0.db.rooms().await?;
        let outbox = self.0.db.outbox().await?;
        let open = self.0.view.open.get_untracked();
        let cached = match &open {
            Some(room) => Some(self.0.db.messages(room, PAGE).await?),
            None => None,
        };
        let chat = self.0.view.chat;
        let live = chat.with_untracked(Chat::is_live);
        // The owner's chat already holds what it stored; a follower's (or
        // the owner's before it connects) is rebuilt.
        if !live {
            let mut next = Chat::hydrate(Some(self.0.user.clone()), rooms, outbox);
            // Presence is never stored: keep what was heard.
            next.take_presence(chat.with_untracked(Chat::presences));
            if let (Some(room), Some(cached)) = (open.clone(), cached) {
                next.set_open(Some(room.clone()));
                next.take_changes();
                next.load(&room, cached);
                next.set_reading(self.0.reading.get());
            }
            chat.set(next);
            // What the person sees now is read (a follower tells the owner).
            self.persist().await?;
            self.share_read();
        }
        self.restore_previews().await;
        self.upload();
        self.post_unread();
        Ok(())
    }

    fn send(&self, frames: &[ClientFrame]) {
        let link = self.0.link.borrow().clone();
        let synced = self.0.synced_on.get() == self.0.socket.get();
        // The markers moved offline go just before the `sync` they come
        // with, so that the counts it answers with include them.
        let syncing = frames.iter().any(|f| matches!(f, ClientFrame::Sync { .. }));
        if let Some(link) = link {
            for frame in frames {
                // A frame that cannot go out now is not lost: the next
                // connection syncs from the cursors and resends the outbox,
                // oldest first, and the read markers moved meanwhile.
                let held = match frame {
                    ClientFrame::Send { .. } => !synced,
                    ClientFrame::Read { .. } => !synced && !syncing,
                    _ => false,
                };
                if !held {
                    link.send(frame);
                }
            }
        }
    }

    /// Posts the total unread count to the embedding page, whose origin
    /// the widget does not know: the count is all it says.
    fn post_unread(&self) {
        let total = self.0.view.chat.with_untracked(Chat::unread_total);
        crate::embed::post_unread(total);
    }

    /// This tab owns the connection now.
    fn lead(&self) {
        if self.0.closed.get() || self.0.link.borrow().is_some() {
            return;
        }
        let weak = Rc::downgrade(&self.0);
        let link = Link::new(self.0.url.clone(), move |link, incoming| {
            let Some(inner) = weak.upgrade() else { return };
            let engine = Engine(inner);
            match incoming {
                Incoming::State(state) => {
                    if let LinkState::Refused { reason } = &state
                        && reason == ErrorCode::Banned.as_str()
                    {
                        engine.banned(reason.clone());
                    }
                    if state == LinkState::Open {
                        engine.0.socket.set(engine.0.socket.get() + 1);
                    } else {
                        engine.push(Work::Disconnected);
                    }
                    engine.0.view.link.set(Some(state));
                }
                Incoming::Frame(frame) => {
                    if let (ServerFrame::Hello { .. }, Some(token)) = (&frame, link.token()) {
                        engine.push(Work::Confirmed(token));
                    }
                    engine.heard(&frame);
                    let socket = engine.0.socket.get();
                    engine.push(Work::Frame(frame, socket));
                }
            }
        });
        *self.0.link.borrow_mut() = Some(link.clone());
        // The outbox may hold what a previous owner left.
        self.push(Work::Reload);
        link.set_token(self.0.token.borrow().clone());
    }
}
