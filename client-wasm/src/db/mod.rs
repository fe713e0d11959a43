//! The local store: everything the widget knows, in IndexedDB, so that the
//! chat opens with its rooms and messages before any network, and a
//! message accepted offline survives a closed tab.
//!
//! One database per site and user ([`db_name`]), so a user switch never
//! shows (or sends) another user's data. Object stores:
//!
//! - `rooms` (key `id`): a [`RoomRecord`]: the room, its cursor, unread
//!   count, last message preview and how far back history is cached.
//!
//!   The record types are the chat's ([`crate::chat::records`]): the store
//!   depends on the model, never the reverse.
//! - `messages` (out-of-line keys): the room's events under `[room, seq]`,
//!   as the server stored them.
//! - `outbox` (key `client_id`): an [`OutboxRecord`] per message of ours
//!   not yet acknowledged, and where it stands; index `room` (schema v2).
//!   It is the one record of a message on its way: the chat's in-memory
//!   outbox is restored from it, and nothing else copies it. (Code before
//!   this layout also wrote a copy under `[room, "pending", client_id]` in
//!   `messages`; such a copy is deleted when its message is acknowledged
//!   or discarded, and never read.)
//! - `meta`: the schema version, the user the database belongs to, the
//!   room left open and the digest of the last token the server accepted.
//! - `blobs` (key `key`, schema v3): the bytes of each file attached to a
//!   message in the outbox, and where its upload stands ([`files`]).
//! - `cached` (key `key`, index `used`, schema v3): files kept to open
//!   offline, whose bytes are in the Cache API ([`files`]).
//!
//! [`Db::apply`] stores each [`Change`] the chat records. Readers and
//! fault injection that only tests use are behind the `testing` feature
//! (the crate's tests turn it on).
//!
//! Writes that touch the outbox (a new message, an ack together with the
//! stored event and the room's cursor, a refusal, a retry) are one
//! transaction each, opened
//! with durability `"strict"`: rexie 0.6 cannot pass transaction options,
//! so those go through web-sys on a second connection to the same
//! database. Everything else uses rexie.

use crate::chat::{Change, RoomRecord};
use crate::error::ClientError;
use js_sys::Array;
use natter_shared::{ClientId, Event, EventKind, RoomId, Seq};
use rexie::{Direction, Index, KeyRange, ObjectStore, Rexie, RexieBuilder, TransactionMode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::IdbDatabase;

pub mod files;
mod meta;
mod outbox;
mod raw;

pub use outbox::OutboxRecord;

/// The schema this code writes. History:
/// 1. `rooms`, `messages`, `outbox`, `meta`;
/// 2. index `room` on `outbox` (a room's unsent messages);
/// 3. `blobs` (files waiting to be uploaded) and `cached` (files kept
///    for offline use).
///
/// An upgrade only adds: every version keeps the stores of the one before,
/// with their records, so the outbox survives it.
pub const SCHEMA_VERSION: u32 = 3;

const ROOMS: &str = "rooms";
const MESSAGES: &str = "messages";
const OUTBOX: &str = "outbox";
const META: &str = "meta";
const BLOBS: &str = "blobs";
const CACHED: &str = "cached";
/// The `meta` key of the user the database belongs to.
const META_USER: &str = "user";
/// The `meta` key of the schema version last written.
const META_SCHEMA: &str = "schema";
/// Key of the room the person last had open (absent: the room list).
const META_OPEN: &str = "open";
/// The middle part of the key of a pending message's copy in `messages`,
/// which older code wrote (see the module's notes).
const PENDING: &str = "pending";

/// The database of one user of one site.
pub fn db_name(site: &str, user: &str) -> String {
    format!("natter:{site}:{user}")
}

/// What a record of the `messages` store holds; one kind so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Rec {
    /// An event of the room, under `[room, seq]`.
    Stored,
}

/// A record of the `messages` store, `{"rec": "stored", "event": …}`, as
/// it is written.
#[derive(Serialize)]
struct StoredEvent<'a> {
    rec: Rec,
    event: &'a Event,
}

/// A record of the `messages` store as it is read: a plain struct, not a
/// tagged enum, whose decoder would buffer every record twice.
#[derive(Deserialize)]
struct MessageRecord {
    #[allow(dead_code)] // read to check the record is one we know
    rec: Rec,
    event: Event,
}

/// An open database; clones share the connections.
#[derive(Clone)]
pub struct Db(Rc<Inner>);

struct Inner {
    name: String,
    /// Always `Some` until dropped (closing takes it by value).
    rexie: Option<Rexie>,
    /// A second connection, for the strict-durability transactions rexie
    /// cannot open.
    raw: IdbDatabase,
}

impl Drop for Inner {
    /// Closes both connections: an open one would block deleting or
    /// upgrading the database.
    fn drop(&mut self) {
        self.raw.close();
        if let Some(rexie) = self.rexie.take() {
            rexie.close();
        }
    }
}

impl Db {
    /// Opens (creating or upgrading) the database `name`.
    pub async fn open(name: &str) -> Result<Db, ClientError> {
        Db::open_version(name, SCHEMA_VERSION).await
    }

    /// Opens `name` with the layout of schema `version`: for tests of
    /// upgrades.
    #[cfg(feature = "testing")]
    pub async fn open_at(name: &str, version: u32) -> Result<Db, ClientError> {
        Db::open_version(name, version).await
    }

    async fn open_version(name: &str, version: u32) -> Result<Db, ClientError> {
        let rexie = schema(name, version).build().await?;
        let raw = raw::open_raw(name).await?;
        let db = Db(Rc::new(Inner {
            name: name.to_string(),
            rexie: Some(rexie),
            raw,
        }));
        db.put_meta(META_SCHEMA, &JsValue::from(version)).await?;
        Ok(db)
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The schema version the database is at.
    #[cfg(feature = "testing")]
    pub fn version(&self) -> Result<u32, ClientError> {
        Ok(self.rexie()?.version()?)
    }

    /// The names of this origin's databases that start with `prefix`
    /// (`indexedDB.databases()`).
    pub async fn names(prefix: &str) -> Result<Vec<String>, ClientError> {
        let factory = web_sys::window()
            .and_then(|w| w.indexed_db().ok().flatten())
            .ok_or(ClientError::NoStorage)?;
        let list = js_sys::Reflect::get(&factory, &"databases".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .ok_or(ClientError::NoStorage)?;
        let promise = list.call0(&factory).map_err(|e| ClientError::from_js(&e))?;
        let found = wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise))
            .await
            .map_err(|e| ClientError::from_js(&e))?;
        Ok(js_sys::Array::from(&found)
            .iter()
            .filter_map(|info| {
                js_sys::Reflect::get(&info, &"name".into())
                    .ok()?
                    .as_string()
            })
            .filter(|name| name.starts_with(prefix))
            .collect())
    }

    /// Deletes a database; it must be closed in every tab first.
    pub async fn delete(name: &str) -> Result<(), ClientError> {
        Ok(Rexie::delete(name).await?)
    }

    /// Stores one change the chat recorded, each in one transaction.
    pub async fn apply(&self, change: &Change) -> Result<(), ClientError> {
        match change {
            Change::User(user) => self.set_user(user).await,
            Change::Rooms(rooms) => self.put_rooms(rooms).await,
            Change::Forget(room) => self.forget_room(room).await,
            Change::Events(room, events) => self.store_events(room, events).await,
            Change::Reset(room, events) => self.reset_room(room, events).await,
            Change::Composed(entry) => self.compose(entry).await,
            Change::Acked(entry, event, room) => self.ack(entry, event, room.as_ref()).await,
            Change::State(entry, state) => self.set_state(entry, state).await,
            Change::Discarded(entry) | Change::Sent(entry) => self.discard(entry).await,
        }
    }

    /// Every room, in key order.
    pub async fn rooms(&self) -> Result<Vec<RoomRecord>, ClientError> {
        let tx = self.tx(&[ROOMS], TransactionMode::ReadOnly)?;
        let all = tx.store(ROOMS)?.get_all(None, None).await?;
        all.into_iter().map(decode).collect()
    }

    /// One room.
    #[cfg(feature = "testing")]
    pub async fn room(&self, id: &RoomId) -> Result<Option<RoomRecord>, ClientError> {
        let tx = self.tx(&[ROOMS], TransactionMode::ReadOnly)?;
        let value = tx.store(ROOMS)?.get(id.as_str().into()).await?;
        value.map(decode).transpose()
    }

    /// Writes rooms (the list from `sync`, a new room, an unread count).
    pub async fn put_rooms(&self, rooms: &[RoomRecord]) -> Result<(), ClientError> {
        let tx = self.tx(&[ROOMS], TransactionMode::ReadWrite)?;
        let store = tx.store(ROOMS)?;
        for room in rooms {
            store.put(&encode(room)?, None).await?;
        }
        done(tx).await
    }

    /// Forgets a room we are no longer in, with its cached events. Our
    /// unsent messages to it stay in the outbox: the server refuses them
    /// and they show as failed, never dropped in silence.
    pub async fn forget_room(&self, id: &RoomId) -> Result<(), ClientError> {
        let tx = self.tx(&[ROOMS, MESSAGES], TransactionMode::ReadWrite)?;
        tx.store(ROOMS)?.delete(id.as_str().into()).await?;
        delete_events(&tx.store(MESSAGES)?, id).await?;
        done(tx).await
    }

    /// Stores events of one room together with the room's new record, in
    /// one transaction: a catch-up page, a live event, a history page.
    pub async fn store_events(
        &self,
        room: &RoomRecord,
        events: &[Event],
    ) -> Result<(), ClientError> {
        let tx = self.tx(&[ROOMS, MESSAGES], TransactionMode::ReadWrite)?;
        put_events(&tx.store(MESSAGES)?, events).await?;
        tx.store(ROOMS)?.put(&encode(room)?, None).await?;
        done(tx).await
    }

    /// Replaces every cached event of a room with these (the server sent
    /// the room afresh: what was held is of another history), with the
    /// room's new record, in one transaction.
    pub async fn reset_room(&self, room: &RoomRecord, events: &[Event]) -> Result<(), ClientError> {
        let tx = self.tx(&[ROOMS, MESSAGES], TransactionMode::ReadWrite)?;
        let messages = tx.store(MESSAGES)?;
        delete_events(&messages, &room.id).await?;
        put_events(&messages, events).await?;
        tx.store(ROOMS)?.put(&encode(room)?, None).await?;
        done(tx).await
    }

    /// The room's latest `limit` cached events, ascending.
    pub async fn messages(&self, room: &RoomId, limit: u32) -> Result<Vec<Event>, ClientError> {
        self.messages_before(room, Seq::MAX, limit).await
    }

    /// Up to `limit` cached events with seq below `before`, ascending.
    pub async fn messages_before(
        &self,
        room: &RoomId,
        before: Seq,
        limit: u32,
    ) -> Result<Vec<Event>, ClientError> {
        let tx = self.tx(&[MESSAGES], TransactionMode::ReadOnly)?;
        let store = tx.store(MESSAGES)?;
        let upper = if before == Seq::MAX {
            f64::INFINITY
        } else {
            before as f64
        };
        let stored_range = bound(
            key(&[room.as_str().into(), 0.into()]),
            key(&[room.as_str().into(), upper.into()]),
            true,
        )?;
        let newest_first = store
            .scan(Some(stored_range), Some(limit), None, Some(Direction::Prev))
            .await?;
        newest_first
            .into_iter()
            .rev()
            .map(|(_, value)| decode::<MessageRecord>(value).map(|record| record.event))
            .collect()
    }

    /// How many records `messages` holds for the room, events and older
    /// code's pending copies alike.
    #[cfg(feature = "testing")]
    pub async fn message_records(&self, room: &RoomId) -> Result<usize, ClientError> {
        let tx = self.tx(&[MESSAGES], TransactionMode::ReadOnly)?;
        let range = bound(
            key(&[room.as_str().into()]),
            key(&[room.as_str().into(), Array::new().into()]),
            false,
        )?;
        Ok(tx.store(MESSAGES)?.get_all(Some(range), None).await?.len())
    }

    fn tx(
        &self,
        stores: &[&str],
        mode: TransactionMode,
    ) -> Result<rexie::Transaction, ClientError> {
        Ok(self.rexie()?.transaction(stores, mode)?)
    }

    fn rexie(&self) -> Result<&Rexie, ClientError> {
        (self.0.rexie.as_ref()).ok_or_else(|| ClientError::Storage("the database is closed".into()))
    }
}

/// The stores of schema `version`.
fn schema(name: &str, version: u32) -> RexieBuilder {
    let mut outbox = ObjectStore::new(OUTBOX).key_path("client_id");
    if version >= 2 {
        outbox = outbox.add_index(Index::new("room", "entry.room"));
    }
    let builder = Rexie::builder(name)
        .version(version)
        .add_object_store(ObjectStore::new(ROOMS).key_path("id"))
        .add_object_store(ObjectStore::new(MESSAGES))
        .add_object_store(outbox)
        .add_object_store(ObjectStore::new(META));
    if version < 3 {
        return builder;
    }
    builder
        .add_object_store(ObjectStore::new(BLOBS).key_path("key"))
        .add_object_store(
            ObjectStore::new(CACHED)
                .key_path("key")
                .add_index(Index::new("used", "used")),
        )
}

/// Deletes the cached events of a room.
async fn delete_events(messages: &rexie::Store, room: &RoomId) -> Result<(), ClientError> {
    let range = bound(
        key(&[room.as_str().into(), 0.into()]),
        key(&[room.as_str().into(), f64::INFINITY.into()]),
        false,
    )?;
    for k in messages.get_all_keys(Some(range), None).await? {
        messages.delete(k).await?;
    }
    Ok(())
}

/// Caches events under their room and seq.
async fn put_events(messages: &rexie::Store, events: &[Event]) -> Result<(), ClientError> {
    for event in events {
        put_event(messages, event).await?;
        // A deletion empties the message it names, wherever it is kept.
        if let EventKind::MessageDeleted { target } = event.kind
            && let Some(value) = messages.get(stored_key(&event.room, target)).await?
        {
            let mut held = decode::<MessageRecord>(value)?.event;
            held.kind = held.kind.deleted();
            put_event(messages, &held).await?;
        }
    }
    Ok(())
}

async fn put_event(messages: &rexie::Store, event: &Event) -> Result<(), ClientError> {
    let record = StoredEvent {
        rec: Rec::Stored,
        event,
    };
    messages
        .put(&encode(&record)?, Some(&stored_key(&event.room, event.seq)))
        .await?;
    Ok(())
}

/// Waits for a rexie transaction to commit.
async fn done(tx: rexie::Transaction) -> Result<(), ClientError> {
    if tx.done().await?.is_committed() {
        Ok(())
    } else {
        Err(ClientError::Storage("the transaction was aborted".into()))
    }
}

/// The keys from `lower` to `upper` (inclusive unless `upper_open`).
fn bound(lower: JsValue, upper: JsValue, upper_open: bool) -> Result<KeyRange, ClientError> {
    Ok(KeyRange::bound(&lower, &upper, None, Some(upper_open)).map_err(rexie::Error::from)?)
}

fn key(parts: &[JsValue]) -> JsValue {
    parts.iter().collect::<Array>().into()
}

fn stored_key(room: &RoomId, seq: Seq) -> JsValue {
    key(&[room.as_str().into(), (seq as f64).into()])
}

fn pending_key(room: &RoomId, client_id: &ClientId) -> JsValue {
    key(&[
        room.as_str().into(),
        PENDING.into(),
        client_id.to_string().into(),
    ])
}

/// Records are plain objects (not `Map`s), so key paths reach into them.
fn encode<T: Serialize>(value: &T) -> Result<JsValue, ClientError> {
    let serializer = serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true);
    Ok(value.serialize(&serializer)?)
}

fn decode<T: DeserializeOwned>(value: JsValue) -> Result<T, ClientError> {
    Ok(serde_wasm_bindgen::from_value(value)?)
}
