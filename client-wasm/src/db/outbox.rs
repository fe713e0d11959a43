//! The outbox in IndexedDB: each message of ours not yet acknowledged,
//! and where it stands. Every write here is one strict transaction
//! (see the store's notes in [`super`]).

use super::{
    BLOBS, Db, MESSAGES, OUTBOX, ROOMS, Rec, StoredEvent, decode, encode, files, pending_key,
    stored_key,
};
use crate::chat::RoomRecord;
use crate::error::ClientError;
#[cfg(feature = "testing")]
use natter_shared::RoomId;
use natter_shared::sync::{EntryState, OutboxEntry};
use natter_shared::{ClientId, Event};
#[cfg(feature = "testing")]
use rexie::KeyRange;
use rexie::TransactionMode;
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;
use web_sys::{Blob, IdbTransaction};

/// An outbox record: the message to send and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxRecord {
    /// The key; equal to `entry.client_id`.
    pub client_id: ClientId,
    /// The message.
    pub entry: OutboxEntry,
    /// Queued, or refused for good (in flight is not stored: after a
    /// restart everything not acknowledged goes out again).
    pub state: EntryState,
}

impl Db {
    /// The whole outbox, oldest first, as [`natter_shared::sync::Outbox::restore`]
    /// takes it.
    pub async fn outbox(&self) -> Result<Vec<(OutboxEntry, EntryState)>, ClientError> {
        let tx = self.tx(&[OUTBOX], TransactionMode::ReadOnly)?;
        let all = tx.store(OUTBOX)?.get_all(None, None).await?;
        let mut entries = all
            .into_iter()
            .map(|v| decode::<OutboxRecord>(v).map(|r| (r.entry, r.state)))
            .collect::<Result<Vec<_>, _>>()?;
        entries.sort_by(|a, b| order(&a.0, &b.0));
        Ok(entries)
    }

    /// The outbox entries of one room (through the `room` index).
    #[cfg(feature = "testing")]
    pub async fn room_outbox(&self, room: &RoomId) -> Result<Vec<OutboxRecord>, ClientError> {
        let tx = self.tx(&[OUTBOX], TransactionMode::ReadOnly)?;
        let index = tx.store(OUTBOX)?.index("room")?;
        let range = KeyRange::only(&room.as_str().into()).map_err(rexie::Error::from)?;
        let all = index.get_all(Some(range), None).await?;
        let mut records = all
            .into_iter()
            .map(decode::<OutboxRecord>)
            .collect::<Result<Vec<_>, _>>()?;
        records.sort_by(|a, b| order(&a.entry, &b.entry));
        Ok(records)
    }

    /// A message the person just wrote: its outbox entry, durably.
    pub async fn compose(&self, entry: &OutboxEntry) -> Result<(), ClientError> {
        self.write_outbox(entry, &EntryState::Queued).await
    }

    /// A message with files: its outbox entry and the files' bytes, in one
    /// transaction, so neither is ever kept without the other.
    pub async fn compose_with_files(
        &self,
        entry: &OutboxEntry,
        blobs: &[(String, Blob)],
    ) -> Result<(), ClientError> {
        let write = outbox_write(entry, &EntryState::Queued)?;
        let records = files::blob_writes(entry, blobs)?;
        self.strict(&[OUTBOX, BLOBS], |tx| {
            write(tx)?;
            let store = tx.object_store(BLOBS)?;
            for record in &records {
                store.put(record)?;
            }
            Ok(())
        })
        .await
    }

    /// Records a new state of an outbox entry (refused for good, or queued
    /// again by a retry).
    pub async fn set_state(
        &self,
        entry: &OutboxEntry,
        state: &EntryState,
    ) -> Result<(), ClientError> {
        self.write_outbox(entry, state).await
    }

    async fn write_outbox(
        &self,
        entry: &OutboxEntry,
        state: &EntryState,
    ) -> Result<(), ClientError> {
        let write = outbox_write(entry, state)?;
        self.strict(&[OUTBOX], write).await
    }

    /// Issues the write of [`Db::compose`], then fails before the
    /// transaction ends, as a crash or a full disk would: for tests of
    /// atomicity.
    #[cfg(feature = "testing")]
    pub async fn compose_then_fail(&self, entry: &OutboxEntry) -> Result<(), ClientError> {
        let write = outbox_write(entry, &EntryState::Queued)?;
        self.strict(&[OUTBOX], |tx| {
            write(tx)?;
            Err(JsValue::from("failed after the write"))
        })
        .await
    }

    /// Writes the copy of a pending message that older code kept in
    /// `messages`: for tests that such copies are cleaned up.
    #[cfg(feature = "testing")]
    pub async fn put_legacy_pending_copy(&self, entry: &OutboxEntry) -> Result<(), ClientError> {
        #[derive(Serialize)]
        struct LegacyPending<'a> {
            rec: &'static str,
            entry: &'a OutboxEntry,
            state: EntryState,
        }
        let copy = encode(&LegacyPending {
            rec: "pending",
            entry,
            state: EntryState::Queued,
        })?;
        let key = pending_key(&entry.room, &entry.client_id);
        self.strict(&[MESSAGES], |tx| {
            tx.object_store(MESSAGES)?.put_with_key(&copy, &key)?;
            Ok(())
        })
        .await
    }

    /// Our message was stored by the server as `event`: the outbox entry
    /// goes (with an older code's pending copy), the event stays, and the room's record
    /// (cursor, preview) is updated, in one transaction.
    pub async fn ack(
        &self,
        entry: &OutboxEntry,
        event: &Event,
        room: Option<&RoomRecord>,
    ) -> Result<(), ClientError> {
        let stored = encode(&StoredEvent {
            rec: Rec::Stored,
            event,
        })?;
        let room = room.map(encode).transpose()?;
        let outbox_key = JsValue::from(entry.client_id.to_string());
        let pending_key = pending_key(&entry.room, &entry.client_id);
        let stored_key = stored_key(&event.room, event.seq);
        let stores: &[&str] = if room.is_some() {
            &[OUTBOX, MESSAGES, BLOBS, ROOMS]
        } else {
            &[OUTBOX, MESSAGES, BLOBS]
        };
        self.strict(stores, |tx| {
            tx.object_store(OUTBOX)?.delete(&outbox_key)?;
            files::delete_blobs(tx, entry)?;
            let messages = tx.object_store(MESSAGES)?;
            messages.delete(&pending_key)?;
            messages.put_with_key(&stored, &stored_key)?;
            if let Some(room) = &room {
                tx.object_store(ROOMS)?.put(room)?;
            }
            Ok(())
        })
        .await
    }

    /// A message leaves the outbox with its files' bytes (and an older
    /// code's pending copy), its stored event untouched: the person gave
    /// up on it, or its event is held already.
    pub async fn discard(&self, entry: &OutboxEntry) -> Result<(), ClientError> {
        let outbox_key = JsValue::from(entry.client_id.to_string());
        let pending_key = pending_key(&entry.room, &entry.client_id);
        self.strict(&[OUTBOX, MESSAGES, BLOBS], |tx| {
            tx.object_store(OUTBOX)?.delete(&outbox_key)?;
            files::delete_blobs(tx, entry)?;
            tx.object_store(MESSAGES)?.delete(&pending_key)?;
            Ok(())
        })
        .await
    }
}

/// The write of a new outbox state.
fn outbox_write(
    entry: &OutboxEntry,
    state: &EntryState,
) -> Result<impl FnOnce(&IdbTransaction) -> Result<(), JsValue>, ClientError> {
    let outbox = encode(&OutboxRecord {
        client_id: entry.client_id,
        entry: entry.clone(),
        state: state.clone(),
    })?;
    Ok(move |tx: &IdbTransaction| {
        tx.object_store(OUTBOX)?.put(&outbox)?;
        Ok(())
    })
}

/// Oldest first: by creation time, then by (time-ordered) client id.
fn order(a: &OutboxEntry, b: &OutboxEntry) -> std::cmp::Ordering {
    (a.created_at, a.client_id).cmp(&(b.created_at, b.client_id))
}
