//! What a client asks for once authenticated: `sync` (catch-up), `send`,
//! `history`, `typing` and `ping`. Each answer is a frame; a refusal is an
//! error frame naming the room or the message it concerns.

use super::conn::{Committed, Conn, Here};
use super::{FrameSink, Gone, feed_frame};
use crate::error::store_error_parts;
use crate::gate::Rate;
use crate::metrics;
use crate::store::writer::{WriteOp, Written};
use crate::store::{AttachError, PageFrom, StoreError};
use axum::extract::ws::Message;
use futures_util::{FutureExt, SinkExt, StreamExt};
use natter_shared::limits::MEMBERS_PAGE;
use natter_shared::protocol::DecodeError;
use natter_shared::text::Body;
use natter_shared::{
    ClientFrame, ClientId, Cursor, ErrorCode, FileId, Presence, RoomId, RoomInfo, Seq, ServerFrame,
    UserId,
};
use std::collections::{HashMap, HashSet};
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

    /// The page size the server was configured with (at least 1).
    fn page_size(&self) -> u32 {
        self.state.config.limits.page_size.max(1)
    }

    /// Catch-up: announce rooms, page what each gained since its cursor,
    /// then `synced`. Live events are subscribed to first, so none is
    /// missed; those already paged are skipped when they arrive.
    async fn sync(&mut self, cursors: Vec<Cursor>) -> Result<(), Gone> {
        if cursors.len() > natter_shared::limits::MAX_CURSORS {
            return self
                .send_error(
                    ErrorCode::InvalidInput,
                    format!(
                        "at most {} cursors per sync",
                        natter_shared::limits::MAX_CURSORS
                    ),
                )
                .await;
        }
        // Go live first (so a join or a new room during the sync reaches
        // this connection), then read the rooms and follow them, then read
        // the memberships again: a room left in between is dropped.
        self.sent.clear();
        self.state.hub.begin_sync(self.reg.id);
        let store = self.state.store.clone();
        let (site, user) = (&self.identity.site.clone(), &self.identity.user.clone());
        // This user's markers noted here but not yet written: written
        // first, so the counts read below include them.
        if self.state.reads.has_pending(site, user)
            && let Err(err) = self.state.reads.flush().await
        {
            return self.store_failed(err).await;
        }
        let rooms = match store.rooms_for_user(site, user, None, usize::MAX).await {
            Ok(rooms) => rooms,
            Err(err) => return self.store_failed(err).await,
        };
        self.state.hub.follow(
            self.reg.id,
            rooms.iter().map(|r| (r.id.clone(), r.last_seq)),
        );
        let still = match store.room_ids_for_user(site, user).await {
            Ok(ids) => ids,
            Err(err) => return self.store_failed(err).await,
        };
        let (mut rooms, gone): (Vec<_>, Vec<_>) =
            rooms.into_iter().partition(|r| still.contains(&r.id));
        for room in gone {
            self.state.hub.unfollow(self.reg.id, &room.id);
        }
        self.marks.clear();
        for room in &mut rooms {
            self.settle_marks(room);
        }
        // Room -> its last seq when read: a cursor beyond it (a client that
        // kept a cache the server no longer has) is taken back to it, so
        // live events are not mistaken for ones already held.
        let member_of: HashMap<RoomId, Seq> =
            rooms.iter().map(|r| (r.id.clone(), r.last_seq)).collect();
        let room_ids: Vec<RoomId> = rooms.iter().map(|r| r.id.clone()).collect();
        let mates = room_mates(&rooms, user);
        self.send_rooms(rooms).await?;
        if self.settings.presence {
            if self.here.is_none() {
                let key = (site.clone(), user.clone());
                self.here = Some(Here::new(self.state.broker.clone(), key, &room_ids));
            }
            self.tell_presence(mates).await?;
        }

        let mut known = HashSet::new();
        for cursor in cursors {
            let Some(&last_seq) = member_of.get(&cursor.room) else {
                self.room_error(
                    ErrorCode::NotMember,
                    "you are not a member of this room (or it does not exist)",
                    cursor.room,
                )
                .await?;
                continue;
            };
            if !known.insert(cursor.room.clone()) {
                continue;
            }
            let pages = u64::from(self.state.config.limits.max_catch_up_pages.max(1));
            if cursor.seq > last_seq {
                // The client holds more than the room has: its copy is of
                // another history (a database restored from a backup).
                tracing::info!(room = %cursor.room, cursor = cursor.seq, last_seq, "a client is ahead of the room; sending it afresh");
                self.latest_page(cursor.room, true).await?;
            } else if last_seq - cursor.seq > pages * u64::from(self.page_size()) {
                // Too far behind to page it all now: the latest page, and
                // the rest by `history` as the person scrolls.
                self.latest_page(cursor.room, true).await?;
            } else {
                self.page_after(cursor).await?;
            }
        }
        // Rooms the client holds nothing of: their latest page only.
        for room in room_ids {
            if !known.contains(&room) {
                self.latest_page(room, false).await?;
            }
        }
        self.send(&ServerFrame::Synced {}).await
    }

    /// The user's rooms in as many `rooms` frames as it takes to keep each
    /// within `max_frame_bytes` (one, empty, when there are none); the
    /// client knows the list is complete at `synced`.
    async fn send_rooms(&mut self, rooms: Vec<RoomInfo>) -> Result<(), Gone> {
        let limit = self.state.config.limits.max_frame_bytes;
        let frames = rooms_frames(&rooms, limit).map_err(|_| Gone)?;
        for frame in frames {
            self.sink
                .send(Message::Text(frame.into()))
                .await
                .map_err(|_| Gone)?;
        }
        Ok(())
    }

    /// Tells the client who of its room-mates is online, and when the
    /// others were last seen.
    async fn tell_presence(&mut self, mates: Vec<UserId>) -> Result<(), Gone> {
        if mates.is_empty() {
            return Ok(());
        }
        let site = &self.identity.site;
        let online = self.state.broker.presence().online(site, &mates);
        let away: Vec<UserId> = (mates.iter().zip(&online))
            .filter(|(_, on)| !**on)
            .map(|(u, _)| u.clone())
            .collect();
        let seen = match self.state.store.last_seen(site, &away).await {
            Ok(seen) => seen,
            Err(err) => return self.store_failed(err).await,
        };
        let users = (mates.into_iter().zip(online))
            .map(|(user, online)| Presence {
                last_seen: (!online).then(|| seen.get(&user).copied()).flatten(),
                user,
                online,
            })
            .collect();
        self.send(&ServerFrame::Presence { users }).await
    }

    /// Keeps a room's kind and the user's marker, and hides the other
    /// members' markers where the site shows no receipts.
    pub(super) fn settle_marks(&mut self, room: &mut RoomInfo) {
        if !self.settings.receipts(room.kind) {
            for m in &mut room.members {
                if m.id != self.identity.user {
                    m.read = None;
                }
            }
        }
        self.marks.insert(room.id.clone(), (room.kind, room.read));
    }

    /// Sends a room's latest page; `reset` tells the client to drop what it
    /// holds of the room first.
    async fn latest_page(&mut self, room: RoomId, reset: bool) -> Result<(), Gone> {
        let latest =
            self.state
                .store
                .events_page(&room, PageFrom::Before(Seq::MAX), self.page_size());
        let events = match latest.await {
            Ok(page) => page.events,
            Err(err) => return self.store_failed(err).await,
        };
        let last = events.last().map_or(0, |e| e.seq);
        self.sent.insert(room.clone(), last);
        self.send(&ServerFrame::Page {
            room,
            events,
            more: false,
            reset,
        })
        .await
    }

    /// Sends every event after the cursor in pages, and records the last.
    /// When the cursor names its event's time, the first page starts at
    /// that event to check it: another event there means the client's copy
    /// is of another history, and the room is sent afresh instead.
    async fn page_after(&mut self, cursor: Cursor) -> Result<(), Gone> {
        let room = cursor.room;
        let mut last = cursor.seq;
        let mut check = cursor.ts.filter(|_| cursor.seq > 0);
        loop {
            let from = if check.is_some() { last - 1 } else { last };
            let page = self
                .state
                .store
                .events_page(&room, PageFrom::After(from), self.page_size());
            let page = match page.await {
                Ok(page) => page,
                Err(err) => return self.store_failed(err).await,
            };
            let mut events = page.events;
            if let Some(ts) = check.take() {
                match events.first() {
                    Some(e) if e.seq == last && e.ts == ts => {
                        events.remove(0);
                    }
                    other => {
                        tracing::info!(%room, cursor = last, ts, found = ?other.map(|e| (e.seq, e.ts)), "a client holds another event at its cursor; sending the room afresh");
                        return self.latest_page(room, true).await;
                    }
                }
            }
            if let Some(e) = events.last() {
                last = e.seq;
            }
            self.sent.insert(room.clone(), last);
            let more = page.more;
            self.send(&ServerFrame::Page {
                room: room.clone(),
                events,
                more,
                reset: false,
            })
            .await?;
            if !more {
                return Ok(());
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
            .attach_files(site, user, &room, &files, max_files)
            .await;
        let files = match attached.map_err(|err| match err {
            AttachError::TooMany(_) => (ErrorCode::InvalidInput, err.to_string()),
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
                self.commits.push_back(Box::pin(
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

    /// A page of older events, for scrolling back.
    async fn history(&mut self, room: RoomId, before: Seq, limit: Option<u32>) -> Result<(), Gone> {
        let member = self
            .state
            .store
            .is_member(&self.identity.site, &room, &self.identity.user)
            .await;
        match member {
            Ok(true) => {}
            Ok(false) => {
                return self.not_member(room).await;
            }
            Err(err) => return self.store_failed(err).await,
        }
        let page = self.page_size();
        let limit = limit.unwrap_or(page).clamp(1, page);
        let page = self
            .state
            .store
            .events_page(&room, PageFrom::Before(before), limit);
        match page.await {
            Ok(page) => {
                self.send(&ServerFrame::History {
                    room,
                    events: page.events,
                    more: page.more,
                })
                .await
            }
            Err(err) => self.store_failed(err).await,
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
        let kind = match self.marks.get(&room) {
            Some(&(kind, _)) => match self.state.store.is_member(site, &room, user).await {
                Ok(true) => Some(kind),
                Ok(false) => None,
                Err(err) => return self.store_failed(err).await,
            },
            None => match self.state.store.room_for_user(site, &room, user).await {
                Ok(info) => info.map(|info| info.kind),
                Err(err) => return self.store_failed(err).await,
            },
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
        self.state.reads.note(&self.identity.site, &room, user, seq);
        let public = self.settings.receipts(kind);
        self.state
            .broker
            .read(&room, user, seq, public, Some(self.reg.id));
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

/// `rooms` frames listing `rooms` in order, each within `limit` bytes
/// (a room larger than that alone still goes, in a frame of its own), and
/// one empty frame when there are none. Each room is serialised once:
/// the frames are `ServerFrame::Rooms` as serde writes it, joined by hand.
pub(super) fn rooms_frames(
    rooms: &[RoomInfo],
    limit: usize,
) -> Result<Vec<String>, serde_json::Error> {
    const HEAD: &str = r#"{"type":"rooms","rooms":["#;
    const TAIL: &str = "]}";
    let mut frames = Vec::new();
    let mut frame = String::from(HEAD);
    for room in rooms {
        let json = serde_json::to_string(room)?;
        let empty = frame.len() == HEAD.len();
        if !empty && frame.len() + 1 + json.len() + TAIL.len() > limit {
            frame.push_str(TAIL);
            frames.push(std::mem::replace(&mut frame, String::from(HEAD)));
        } else if !empty {
            frame.push(',');
        }
        frame.push_str(&json);
    }
    frame.push_str(TAIL);
    frames.push(frame);
    Ok(frames)
}

/// Everyone who shares a room with `me`, once each.
fn room_mates(rooms: &[RoomInfo], me: &UserId) -> Vec<UserId> {
    let mates: std::collections::BTreeSet<&UserId> = rooms
        .iter()
        .flat_map(|r| r.members.iter().map(|m| &m.id))
        .filter(|id| *id != me)
        .collect();
    mates.into_iter().cloned().collect()
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
