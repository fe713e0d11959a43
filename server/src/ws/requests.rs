//! What a client asks for once authenticated, besides catch-up (`sync`,
//! in [`super::sync`]): `send`, `history`, `members`, `read`, `typing` and
//! `ping`. Each answer is a frame; a refusal is an error frame naming the
//! room or the message it concerns.

use super::conn::{Committed, Conn};
use super::{FrameSink, Gone, feed_frame};
use crate::error::store_error_parts;
use crate::gate::Rate;
use crate::hub::Moved;
use crate::metrics;
use crate::store::writer::{WriteOp, Written};
use crate::store::{AttachError, PageFrom, StoreError};
use futures_util::{FutureExt, SinkExt};
use natter_shared::limits::MEMBERS_PAGE;
use natter_shared::protocol::DecodeError;
use natter_shared::text::Body;
use natter_shared::{ClientFrame, ClientId, ErrorCode, FileId, RoomId, Seq, ServerFrame, UserId};
use std::time::Duration;
use tokio::time::Instant;

impl<S: FrameSink> Conn<S> {
    /// Decodes one text frame and answers it.
    pub(super) async fn on_text(&mut self, text: &str) -> Result<(), Gone> {
        match ClientFrame::decode(text) {
            Ok(frame) => self.on_frame(frame).await,
            Err(err @ (DecodeError::UnknownType(_) | DecodeError::Malformed(_))) => {
                self.send_error(err.code(), err.to_string()).await
            }
        }
    }

    /// Answers one frame, or holds it while its kind is over the user's
    /// rate: the client is told when it will be taken, and nothing more
    /// is read from it until then (so its sends stay in order).
    pub(super) async fn on_frame(&mut self, frame: ClientFrame) -> Result<(), Gone> {
        let rate = match &frame {
            ClientFrame::Send { .. } => Some(Rate::Sends),
            ClientFrame::Sync { .. }
            | ClientFrame::History { .. }
            | ClientFrame::Members { .. } => Some(Rate::Requests),
            // A room this connection does not follow is looked up in the
            // database: a request like any other. One it follows costs
            // nothing to check.
            ClientFrame::Read { room, .. } if !self.sent.contains_key(room) => Some(Rate::Requests),
            _ => None,
        };
        if let Some(Err(wait)) = rate.map(|rate| self.state.gate.take(rate, self.key)) {
            metrics::inc(&self.state.metrics.throttled);
            self.held = Some(Box::new((frame, Instant::now() + wait)));
            let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
            return self
                .send(&ServerFrame::Error {
                    code: ErrorCode::TooManyRequests,
                    message: format!("over the rate limit; this request is taken in {ms} ms"),
                    client_id: None,
                    room: None,
                    retry_after_ms: Some(ms),
                })
                .await;
        }
        match frame {
            ClientFrame::Auth { token } => self.renew(&token).await,
            ClientFrame::Sync { cursors } => self.sync(cursors).await,
            ClientFrame::Send {
                client_id,
                room,
                body,
                files,
            } => self.submit(client_id, room, body, files).await,
            ClientFrame::History {
                room,
                before,
                limit,
            } => self.history(room, before, limit).await,
            ClientFrame::Typing { room } => self.typing(room).await,
            ClientFrame::Read { room, seq } => self.read(room, seq).await,
            ClientFrame::Members { room, after, limit } => self.members(room, after, limit).await,
            ClientFrame::Ping { nonce } => self.send(&ServerFrame::Pong { nonce }).await,
        }
    }

    /// `auth` on an authenticated connection: a fresh token of the same
    /// user, before (or soon after) the old one expires. Answered with
    /// `hello`; nothing else changes. A token for someone else is refused
    /// and the connection stays the old user's.
    async fn renew(&mut self, token: &str) -> Result<(), Gone> {
        let Ok(Some(site)) = self.state.store.site_cached(&self.identity.site).await else {
            return self
                .send_error(ErrorCode::Internal, "could not read the site")
                .await;
        };
        let now = crate::store::now_ms() / 1000;
        let max_ttl = self.state.config.guard.max_token_ttl_secs;
        match crate::auth::verify_for(token, &site, now, max_ttl) {
            Err(err) => self.send_error(err.code(), err.to_string()).await,
            Ok(fresh) if fresh.user != self.identity.user => {
                self.send_error(
                    ErrorCode::InvalidInput,
                    "a token of another user: reconnect to change users",
                )
                .await
            }
            Ok(fresh) => {
                self.identity.exp = fresh.exp;
                self.told_expired = None;
                let hello = super::handshake::hello(&self.state, &site, &self.identity);
                self.send(&hello).await
            }
        }
    }

    /// Hands a message to the writer; its commit is answered in order by
    /// the connection loop.
    async fn submit(
        &mut self,
        client_id: ClientId,
        room: RoomId,
        body: String,
        files: Vec<FileId>,
    ) -> Result<(), Gone> {
        let max = self.state.config.limits.max_body_bytes;
        let parsed = if files.is_empty() {
            Body::parse(body, max)
        } else {
            Body::caption(body, max)
        };
        let body = match parsed {
            Ok(body) => body,
            Err(err) => {
                return self
                    .send(&ServerFrame::Error {
                        code: ErrorCode::BodyInvalid,
                        message: err.to_string(),
                        client_id: Some(client_id),
                        room: Some(room),
                        retry_after_ms: None,
                    })
                    .await;
            }
        };
        let (site, user) = (&self.identity.site, &self.identity.user);
        let max_files = self.state.config.files.max_files_per_message;
        let attached = self
            .state
            .store
            .attach_files(site, user, &room, Some(&client_id), &files, max_files)
            .await;
        let files = match attached.map_err(|err| match err {
            AttachError::TooMany(_) | AttachError::Repeated(_) => {
                (ErrorCode::InvalidInput, err.to_string())
            }
            AttachError::Store(err) => {
                let (_, code, message) = store_error_parts(&err);
                (code, message)
            }
            other => (ErrorCode::FileInvalid, other.to_string()),
        }) {
            Ok(files) => files,
            Err((code, message)) => {
                return self
                    .send(&ServerFrame::Error {
                        code,
                        message,
                        client_id: Some(client_id),
                        room: Some(room),
                        retry_after_ms: None,
                    })
                    .await;
            }
        };
        let op = WriteOp::Message {
            site: self.identity.site.clone(),
            room: room.clone(),
            sender: Some(self.identity.user.clone()),
            client_id: Some(client_id),
            body,
            files,
        };
        match self.state.writer.submit(op).await {
            Ok(rx) => {
                self.commits.push(Box::pin(
                    rx.map(move |r| (client_id, room, r.unwrap_or(Err(StoreError::Closed)))),
                ));
                Ok(())
            }
            Err(err) => self.answer_commit(client_id, room, Err(err)).await,
        }
    }

    /// Answers a send: `ack` after commit, or an error naming the message.
    pub(super) async fn answer_commit(
        &mut self,
        client_id: ClientId,
        room: RoomId,
        result: Result<Written, StoreError>,
    ) -> Result<(), Gone> {
        self.send(&commit_frame(client_id, room, result)).await
    }

    /// Answers this commit and every other one already decided, in order,
    /// flushed together: a batch's acks cost one `write()`.
    pub(super) async fn answer_ready_commits(&mut self, first: Committed) -> Result<(), Gone> {
        let mut next = Some(first);
        while let Some((client_id, room, result)) = next.take() {
            let frame = commit_frame(client_id, room, result);
            feed_frame(&mut self.sink, &frame).await?;
            next = self.commits.next().now_or_never().flatten();
        }
        self.sink.flush().await.map_err(|_| Gone)
    }

    /// On shutdown: answer the sends already submitted (the writer commits
    /// them before it stops), within a bound.
    pub(super) async fn finish_commits(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Ok(Some((client_id, room, result))) =
            tokio::time::timeout_at(deadline, self.commits.next()).await
        {
            if self.answer_commit(client_id, room, result).await.is_err() {
                return;
            }
        }
    }

    /// Older events, for scrolling back: up to `limit` (a page unless
    /// asked for more, at most `--max-catch-up-pages` pages) in `history`
    /// frames of at most a page each, newest first, each sent as soon as
    /// it is read, so the client reads one while the next is fetched. A
    /// room this connection follows is one the user is in (it stops
    /// following at their leaving); any other is looked up.
    async fn history(&mut self, room: RoomId, before: Seq, limit: Option<u32>) -> Result<(), Gone> {
        if !self.sent.contains_key(&room) {
            let member = self
                .state
                .store
                .is_member(&self.identity.site, &room, &self.identity.user)
                .await;
            match member {
                Ok(true) => {}
                Ok(false) => return self.not_member(room).await,
                Err(err) => return self.store_failed(err).await,
            }
        }
        let size = self.page_size();
        let most = size.saturating_mul(self.state.config.limits.max_catch_up_pages.max(1));
        let mut left = limit.unwrap_or(size).clamp(1, most);
        let mut before = before;
        loop {
            let read =
                self.state
                    .store
                    .events_page_json(&room, PageFrom::Before(before), left.min(size));
            let page = match read.await {
                Ok(page) => page,
                Err(err) => return self.store_failed(err).await,
            };
            self.send_page("history", &room, &page, false).await?;
            left = left.saturating_sub(u32::try_from(page.len()).unwrap_or(u32::MAX));
            match page.first() {
                Some((first, _)) if page.more && left > 0 => before = first,
                _ => return Ok(()),
            }
        }
    }

    /// A page of a room's members, by user id; other members' markers
    /// hidden where the site shows no receipts.
    async fn members(
        &mut self,
        room: RoomId,
        after: Option<UserId>,
        limit: Option<u32>,
    ) -> Result<(), Gone> {
        let (site, user) = (&self.identity.site, &self.identity.user);
        let kind = match self.state.store.member_room_kind(site, &room, user).await {
            Ok(kind) => kind,
            Err(err) => return self.store_failed(err).await,
        };
        let Some(kind) = kind else {
            return self.not_member(room).await;
        };
        let limit = limit.map_or(MEMBERS_PAGE, |l| l.clamp(1, MEMBERS_PAGE));
        let page = self.state.store.members_page(&room, after.as_ref(), limit);
        let (mut members, next) = match page.await {
            Ok(page) => page,
            Err(err) => return self.store_failed(err).await,
        };
        if !self.settings.receipts(kind) {
            for m in members.iter_mut().filter(|m| m.id != *user) {
                m.read = None;
            }
        }
        self.send(&ServerFrame::Members {
            room,
            members,
            next,
        })
        .await
    }

    /// Moves the user's read marker: never back, and never past what the
    /// room has. It is noted for the next batch write and goes out at once
    /// to the user's devices (and the room's members where receipts show).
    /// A room this connection does not follow (yet: a `read` may overtake
    /// a `sync` on a fresh connection) is looked up.
    async fn read(&mut self, room: RoomId, seq: Seq) -> Result<(), Gone> {
        let known = match (self.sent.get(&room), self.marks.get(&room)) {
            (Some(&sent), Some(&(kind, marker))) => {
                // Within what this connection was sent, the room's head
                // need not be asked for.
                let head = if seq <= sent {
                    sent
                } else {
                    self.state.hub.head(&room).unwrap_or(0).max(sent)
                };
                Some((kind, marker, head, true))
            }
            _ => {
                let (site, user) = (&self.identity.site, &self.identity.user);
                match self.state.store.room_for_user(site, &room, user).await {
                    Ok(info) => info.map(|r| (r.kind, r.read, r.last_seq, false)),
                    Err(err) => return self.store_failed(err).await,
                }
            }
        };
        let Some((kind, marker, head, followed)) = known else {
            return self.not_member(room).await;
        };
        let seq = seq.min(head);
        if seq <= marker {
            return Ok(());
        }
        if followed && let Some(mark) = self.marks.get_mut(&room) {
            mark.1 = seq;
        }
        let user = &self.identity.user;
        self.state.reads.note(self.key, &room, user, seq);
        let public = self.settings.receipts(kind);
        self.state.broker.read(
            &room,
            user,
            Moved { after: marker, seq },
            public,
            Some(self.reg.id),
        );
        Ok(())
    }

    /// Tells the room's other connections that this user is typing.
    async fn typing(&mut self, room: RoomId) -> Result<(), Gone> {
        if self.sent.contains_key(&room) {
            self.state.broker.typing(&room, &self.identity.user);
            Ok(())
        } else {
            self.not_member(room).await
        }
    }
}

/// The answer to a send once its commit is decided: `ack`, or an error.
fn commit_frame(
    client_id: ClientId,
    room: RoomId,
    result: Result<Written, StoreError>,
) -> ServerFrame {
    match result {
        Ok(written) => ServerFrame::Ack {
            client_id,
            room,
            seq: written.event.seq,
            ts: written.event.ts,
        },
        Err(err) => {
            let (code, message) = match err {
                // Another site's room and a missing room get the same
                // answer as a room one is not in: nothing leaks.
                StoreError::NotMember | StoreError::RoomNotFound => (
                    ErrorCode::NotMember,
                    "you are not a member of this room".to_string(),
                ),
                other => {
                    let (_, code, message) = store_error_parts(&other);
                    (code, message)
                }
            };
            ServerFrame::Error {
                code,
                message,
                client_id: Some(client_id),
                room: Some(room),
                retry_after_ms: None,
            }
        }
    }
}
