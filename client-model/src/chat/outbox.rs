//! The person's messages on their way: composing one, retrying or
//! discarding one the server refused, adopting those another tab wrote,
//! and the next batch to send. The decisions are the shared [`Outbox`]'s;
//! this records what the store must keep of them.
//!
//! [`Outbox`]: natter_shared::sync::Outbox

use super::{Change, Chat};
use natter_shared::protocol::{Body, TextError, check_body};
use natter_shared::sync::{EntryState, OutboxEntry};
use natter_shared::{ClientFrame, ClientId, RoomId};

/// Most of our messages in flight at once; the server refuses more than
/// its `--max-inflight-sends` (64 by default) with `too_many_requests`.
pub(super) const WINDOW: usize = 16;

/// Why [`Chat::compose`] refused a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ComposeError {
    /// The room is not (or no longer) in the list.
    UnknownRoom,
    /// Empty, too long or containing NUL.
    Body(TextError),
}

impl std::fmt::Display for ComposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComposeError::UnknownRoom => f.write_str("This conversation is no longer available."),
            ComposeError::Body(e) => e.fmt(f),
        }
    }
}

impl Chat {
    /// Whether a message could be written to `room` now.
    pub fn check(&self, room: &RoomId, body: &str) -> Result<(), ComposeError> {
        check_body(body, self.limits.max_body_bytes).map_err(ComposeError::Body)?;
        match self.room(room) {
            Some(_) => Ok(()),
            None => Err(ComposeError::UnknownRoom),
        }
    }

    /// Queues a message of ours; it shows as pending at once. Returns the
    /// frames to send now: none while offline, the outbox goes out after
    /// the next `synced`.
    pub fn compose(
        &mut self,
        room: &RoomId,
        client_id: ClientId,
        body: String,
        now: i64,
    ) -> Result<Vec<ClientFrame>, ComposeError> {
        let body = Body::parse(body, self.limits.max_body_bytes).map_err(ComposeError::Body)?;
        if self.room(room).is_none() {
            return Err(ComposeError::UnknownRoom);
        }
        let entry = OutboxEntry {
            client_id,
            room: room.clone(),
            body: body.into_string(),
            created_at: now,
            files: Vec::new(),
        };
        self.changes.push(Change::Composed(entry.clone()));
        self.outbox.push(entry);
        Ok(self.sends())
    }

    /// Entries written elsewhere (another tab) that this outbox lacks;
    /// returns the frames to send now.
    pub fn adopt(&mut self, stored: Vec<(OutboxEntry, EntryState)>) -> Vec<ClientFrame> {
        for (entry, state) in stored {
            if state == EntryState::Queued {
                self.outbox.push(entry);
            }
        }
        self.sends()
    }

    /// The person asks to send a failed message again.
    pub fn retry(&mut self, client_id: &ClientId) -> Vec<ClientFrame> {
        if self.outbox.retry(client_id) {
            self.record_state(client_id);
        }
        self.sends()
    }

    /// Records the outbox entry's new state for the store.
    pub(super) fn record_state(&mut self, client_id: &ClientId) {
        let entry = self
            .outbox
            .entries()
            .find(|(e, _)| e.client_id == *client_id);
        if let Some((entry, state)) = entry.cloned() {
            self.changes.push(Change::State(entry, state));
        }
    }

    /// The person gives up on a message the server refused for good: it
    /// leaves the outbox and the room. Only failed messages can go: one
    /// on its way may already be stored.
    pub fn discard(&mut self, client_id: &ClientId) {
        let failed = self
            .outbox
            .entries()
            .any(|(e, s)| e.client_id == *client_id && matches!(s, EntryState::Failed { .. }));
        if let Some(entry) = failed.then(|| self.outbox.discard(client_id)).flatten() {
            self.changes.push(Change::Discarded(entry));
        }
    }

    /// Drops a message the store could not take (e.g. a full disk).
    pub fn unsend(&mut self, client_id: &ClientId) {
        self.outbox.discard(client_id);
    }

    /// The next batch of the outbox, while live.
    pub(super) fn sends(&mut self) -> Vec<ClientFrame> {
        if !self.live {
            return Vec::new();
        }
        self.outbox
            .next_batch()
            .iter()
            .map(OutboxEntry::frame)
            .collect()
    }
}
