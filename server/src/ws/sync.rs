//! Catch-up: a connection's `sync`: the rooms announced in frames within
//! the frame limit, presence of the people sharing them, and each room's
//! events since its cursor, page by page, then `synced`.

use super::conn::{Conn, Here};
use super::{FrameSink, Gone};
use crate::store::{JsonPage, PageFrom};
use axum::extract::ws::Message;
use futures_util::SinkExt;
use natter_shared::{Cursor, ErrorCode, Presence, RoomId, RoomInfo, Seq, ServerFrame, UserId};
use std::collections::{HashMap, HashSet};

impl<S: FrameSink> Conn<S> {
    /// The page size the server was configured with (at least 1).
    pub(super) fn page_size(&self) -> u32 {
        self.state.config.limits.page_size.max(1)
    }

    /// Catch-up: announce rooms, page what each gained since its cursor,
    /// then `synced`. Live events are subscribed to first, so none is
    /// missed; those already paged are skipped when they arrive.
    pub(super) async fn sync(&mut self, cursors: Vec<Cursor>) -> Result<(), Gone> {
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
        if self.state.reads.has_pending(self.key)
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
                self.here = Some(Here::new(self.state.clone(), key, &room_ids));
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
                tracing::info!(site = %self.identity.site, user = %self.identity.user, room = %cursor.room, cursor = cursor.seq, last_seq, "a client is ahead of the room; sending it afresh");
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
    pub(super) async fn tell_presence(&mut self, mates: Vec<UserId>) -> Result<(), Gone> {
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
                .events_page_json(&room, PageFrom::Before(Seq::MAX), self.page_size());
        let mut page = match latest.await {
            Ok(page) => page,
            Err(err) => return self.store_failed(err).await,
        };
        page.more = false;
        let last = page.last_seq().unwrap_or(0);
        self.sent.insert(room.clone(), last);
        self.send_page("page", &room, &page, reset).await
    }

    /// Sends a page of events in the frame `kind` names (`page` or
    /// `history`), written from the page's JSON.
    pub(super) async fn send_page(
        &mut self,
        kind: &str,
        room: &RoomId,
        page: &JsonPage,
        reset: bool,
    ) -> Result<(), Gone> {
        match page.frame(kind, room, reset) {
            Ok(frame) => self
                .sink
                .send(Message::Text(frame.into()))
                .await
                .map_err(|_| Gone),
            Err(err) => self.store_failed(err).await,
        }
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
            let page =
                self.state
                    .store
                    .events_page_json(&room, PageFrom::After(from), self.page_size());
            let mut page = match page.await {
                Ok(page) => page,
                Err(err) => return self.store_failed(err).await,
            };
            if let Some(ts) = check.take() {
                match page.first() {
                    Some((seq, at)) if seq == last && at == ts => page.drop_first(),
                    found => {
                        tracing::info!(site = %self.identity.site, user = %self.identity.user, %room, cursor = last, ts, ?found, "a client holds another event at its cursor; sending the room afresh");
                        return self.latest_page(room, true).await;
                    }
                }
            }
            if let Some(seq) = page.last_seq() {
                last = seq;
            }
            self.sent.insert(room.clone(), last);
            self.send_page("page", &room, &page, false).await?;
            let more = page.more;
            if !more {
                return Ok(());
            }
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
pub(super) fn room_mates(rooms: &[RoomInfo], me: &UserId) -> Vec<UserId> {
    let mates: std::collections::BTreeSet<&UserId> = rooms
        .iter()
        .flat_map(|r| r.members.iter().map(|m| &m.id))
        .filter(|id| *id != me)
        .collect();
    mates.into_iter().cloned().collect()
}
