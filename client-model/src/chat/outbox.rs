//! The person's messages on their way: composing one, retrying or
//! discarding one the server refused, adopting those another tab wrote,
//! and the next batch to send. The decisions are the shared [`Outbox`]'s;
//! this records what the store must keep of them.
//!
//! [`Outbox`]: natter_shared::sync::Outbox

use super::{Change, Chat};
use natter_shared::sync::{EntryState, OutboxEntry, OutgoingFile};
use natter_shared::text::{Body, TextError, check_body};
use natter_shared::{ClientFrame, ClientId, ErrorCode, FileId, RoomId};
use std::collections::HashSet;

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
    /// More files than the server takes in one message.
    TooManyFiles(usize),
    /// A file the server would refuse for its size.
    FileTooLarge { name: String, max: u64 },
    /// A file with nothing in it.
    EmptyFile(String),
    /// A file whose declared type the site does not take.
    FileType { name: String, mime: String },
}

impl std::fmt::Display for ComposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComposeError::UnknownRoom => f.write_str("This conversation is no longer available."),
            ComposeError::Body(e) => e.fmt(f),
            ComposeError::TooManyFiles(max) => {
                write!(f, "At most {max} files can go in one message.")
            }
            ComposeError::FileTooLarge { name, max } => write!(
                f,
                "“{name}” is too large: files of up to {} MB can be sent.",
                max / 1_000_000
            ),
            ComposeError::EmptyFile(name) => write!(f, "“{name}” is empty."),
            ComposeError::FileType { name, mime } => {
                write!(
                    f,
                    "“{name}” cannot be sent: files of type {mime} are not taken here."
                )
            }
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

    /// Whether these files could go in one message, as far as the limits
    /// the server announced say (it checks again, on the real bytes).
    pub fn check_files(&self, files: &[OutgoingFile]) -> Result<(), ComposeError> {
        let limits = &self.limits;
        if files.len() > limits.max_files_per_message {
            return Err(ComposeError::TooManyFiles(limits.max_files_per_message));
        }
        for file in files {
            if file.size == 0 {
                return Err(ComposeError::EmptyFile(file.name.clone()));
            }
            if file.size > limits.max_file_bytes {
                return Err(ComposeError::FileTooLarge {
                    name: file.name.clone(),
                    max: limits.max_file_bytes,
                });
            }
            // An undeclared type is for the server to sniff.
            if !file.mime.is_empty()
                && !limits.file_types.is_empty()
                && !natter_shared::mime::allowed(&file.mime, &limits.file_types)
            {
                return Err(ComposeError::FileType {
                    name: file.name.clone(),
                    mime: file.mime.clone(),
                });
            }
        }
        Ok(())
    }

    /// Queues a message of ours, with the files attached to it (their
    /// bytes are the caller's to keep until uploaded); it shows as pending
    /// at once. With files the text is a caption and may be empty.
    /// Returns the frames to send now: none while offline or while files
    /// upload; the outbox goes out after the next `synced`.
    pub fn compose(
        &mut self,
        room: &RoomId,
        client_id: ClientId,
        body: String,
        files: Vec<OutgoingFile>,
        now: i64,
    ) -> Result<Vec<ClientFrame>, ComposeError> {
        let max = self.limits.max_body_bytes;
        let body = if files.is_empty() {
            Body::parse(body, max)
        } else {
            Body::caption(body, max)
        }
        .map_err(ComposeError::Body)?;
        self.check_files(&files)?;
        if self.room(room).is_none() {
            return Err(ComposeError::UnknownRoom);
        }
        let entry = OutboxEntry {
            client_id,
            room: room.clone(),
            body: body.into_string(),
            created_at: now,
            files,
        };
        self.changes.push(Change::Composed(entry.clone()));
        self.outbox.push(entry);
        Ok(self.sends())
    }

    /// Takes in what other tabs did to the stored outbox (`stored`, all
    /// of it): messages they wrote are queued; a failed message they
    /// retried is queued again; one they gave up on (failed, or cancelled
    /// while its files uploaded) leaves this outbox too, and is returned
    /// so its uploads stop. Returns the frames to send now as well.
    pub fn adopt(
        &mut self,
        stored: Vec<(OutboxEntry, EntryState)>,
    ) -> (Vec<ClientFrame>, Vec<OutboxEntry>) {
        let kept: HashSet<ClientId> = stored.iter().map(|(e, _)| e.client_id).collect();
        // Only a message that cannot be on its way may have been given
        // up on elsewhere (a tab discards nothing else).
        let given_up: Vec<ClientId> = (self.outbox.entries())
            .filter(|(e, s)| {
                !kept.contains(&e.client_id)
                    && match s {
                        EntryState::Failed { .. } => true,
                        EntryState::Queued => !e.ready(),
                        EntryState::InFlight => false,
                    }
            })
            .map(|(e, _)| e.client_id)
            .collect();
        let gone: Vec<OutboxEntry> = (given_up.iter())
            .filter_map(|id| self.outbox.discard(id))
            .collect();
        for (entry, state) in stored {
            if state == EntryState::Queued && !self.outbox.retry(&entry.client_id) {
                self.outbox.push(entry);
            }
        }
        (self.sends(), gone)
    }

    /// The person asks to send a failed message again.
    pub fn retry(&mut self, client_id: &ClientId) -> Vec<ClientFrame> {
        if self.outbox.retry(client_id) {
            self.record_state(client_id);
        }
        self.sends()
    }

    /// Sends again what a passing refusal put back in the queue (the
    /// caller waited a while): the frames to send now.
    pub fn resend(&mut self) -> Vec<ClientFrame> {
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

    /// The person gives up on a message the server refused for good, or
    /// cancels one whose files are still uploading: it leaves the outbox
    /// and the room, and the entry is returned (its uploads are the
    /// caller's to stop). A message that may have been sent cannot go:
    /// it may already be stored.
    pub fn discard(&mut self, client_id: &ClientId) -> Option<OutboxEntry> {
        let unsent = self.outbox.entries().any(|(e, s)| {
            e.client_id == *client_id
                && match s {
                    EntryState::Failed { .. } => true,
                    EntryState::Queued => !e.ready(),
                    EntryState::InFlight => false,
                }
        });
        let entry = unsent.then(|| self.outbox.discard(client_id)).flatten()?;
        self.changes.push(Change::Discarded(entry.clone()));
        Some(entry)
    }

    /// Files still to upload, oldest message first.
    pub fn uploads(&self) -> Vec<(ClientId, OutgoingFile)> {
        self.outbox.uploads()
    }

    /// A file finished uploading as `id`: recorded, and the message goes
    /// out once all its files did. Returns the frames to send now.
    pub fn uploaded(&mut self, client_id: &ClientId, key: &str, id: FileId) -> Vec<ClientFrame> {
        if let Some(entry) = self.outbox.uploaded(client_id, key, id) {
            let state = (self.outbox.entries())
                .find(|(e, _)| e.client_id == *client_id)
                .map(|(_, s)| s.clone())
                .unwrap_or(EntryState::Queued);
            self.changes.push(Change::State(entry, state));
        }
        self.sends()
    }

    /// The server refused a file of the message for good (its type, its
    /// size, the day's quota): the message shows as not sent, with why.
    pub fn upload_refused(&mut self, client_id: &ClientId, code: ErrorCode, message: &str) {
        self.outbox.reject(client_id, code, message);
        self.record_state(client_id);
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
