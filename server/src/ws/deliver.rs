//! Live delivery: what the hub queued for this connection, written
//! gap-free and in order. Each connection remembers the last seq it
//! delivered per room: an event already delivered is skipped, and one
//! that arrives past a gap is preceded by the missing events read from the
//! store. A gap that holds this user's own leaving (its live event lost on
//! the way between nodes) ends the room for this connection there, and
//! an event of a room the connection does not follow reaches it only once
//! the store says the user is a member. A gap
//! that cannot be read (the database is away) is never stepped over: the
//! connection is told to `resync` instead.

use super::conn::Conn;
use super::{FrameSink, Gone};
use crate::error::store_error_parts;
use crate::hub::{Delivery, Published};
use axum::extract::ws::Utf8Bytes;
use futures_util::SinkExt;
use natter_shared::{Event, EventKind, RoomId, Seq, ServerFrame};

/// What reading a gap came to.
enum Filled {
    /// Read and sent, with this user's last membership change among the
    /// events (joined: true, left: false), if any.
    Read(Option<bool>),
    /// Not read (why): nothing past the gap may be sent.
    Unread(String),
}

impl<S: FrameSink> Conn<S> {
    /// Delivers what the hub queued: this delivery and whatever else is
    /// already waiting (up to a bound), written together and flushed once,
    /// so a busy room costs one `write()` for several frames.
    pub(super) async fn deliver_queued(&mut self, first: Delivery) -> Result<(), Gone> {
        const BURST: usize = 64;
        self.deliver(first).await?;
        for _ in 1..BURST {
            match self.reg.mailbox.try_recv() {
                Some(next) => self.deliver(next).await?,
                None => break,
            }
        }
        self.sink.flush().await.map_err(|_| Gone)
    }

    async fn deliver(&mut self, delivery: Delivery) -> Result<(), Gone> {
        match delivery {
            Delivery::Notice(frame) => self.feed_raw(Utf8Bytes::clone(&frame)).await,
            Delivery::Presence(frame) if self.settings.presence => {
                self.feed_raw(Utf8Bytes::clone(&frame)).await
            }
            Delivery::Presence(_) => Ok(()),
            Delivery::NewRoom(room) => {
                let room = *room;
                if self.sent.contains_key(&room) {
                    return Ok(());
                }
                if !self.announce(&room).await? {
                    return Ok(());
                }
                self.sent.insert(room.clone(), 0);
                // The whole history, leavings and rejoinings included.
                match self.fill_gap(&room, Seq::MAX).await? {
                    Filled::Read(_) => Ok(()),
                    Filled::Unread(reason) => self.resync(reason).await,
                }
            }
            Delivery::Event(published) => self.deliver_event(&published).await,
        }
    }

    async fn deliver_event(&mut self, p: &Published) -> Result<(), Gone> {
        let last = match self.sent.get(&p.room) {
            Some(&last) => last,
            None => {
                // A room this connection has not seen: it was just joined,
                // or it was left (an event queued before the leaving was
                // found in a gap, or a removal right after the join).
                if !self.announce(&p.room).await? {
                    return Ok(());
                }
                let last = p.seq.saturating_sub(1);
                self.sent.insert(p.room.clone(), last);
                last
            }
        };
        if p.seq <= last {
            return Ok(());
        }
        if p.seq > last.saturating_add(1) {
            let membership = match self.fill_gap(&p.room, p.seq).await? {
                Filled::Read(membership) => membership,
                Filled::Unread(reason) => return self.resync(reason).await,
            };
            let rejoins = matches!(&p.member, Some((user, true)) if user == &self.identity.user);
            if membership == Some(false) && !rejoins {
                // This user left in the gap: nothing after it is theirs.
                self.sent.remove(&p.room);
                self.state.hub.unfollow(self.reg.id, &p.room);
                return Ok(());
            }
        }
        self.feed_raw(p.frame.clone()).await?;
        self.sent.insert(p.room.clone(), p.seq);
        if let Some((user, false)) = &p.member
            && user == &self.identity.user
        {
            self.sent.remove(&p.room);
        }
        Ok(())
    }

    /// Sends a `rooms` frame for one room (just joined), and who of its
    /// members is online; true then. False when nothing of the room may be
    /// sent: the user is not a member (the room is unfollowed), or the
    /// membership could not be read (the connection is told to resync).
    async fn announce(&mut self, room: &RoomId) -> Result<bool, Gone> {
        let (site, user) = (&self.identity.site, &self.identity.user);
        match self.state.store.room_for_user(site, room, user).await {
            Ok(Some(mut info)) => {
                self.settle_marks(&mut info);
                let me = &self.identity.user;
                let mates = super::sync::room_mates(std::slice::from_ref(&info), me);
                self.send(&ServerFrame::Rooms { rooms: vec![info] }).await?;
                if self.settings.presence {
                    self.tell_presence(mates).await?;
                }
                Ok(true)
            }
            Ok(None) => {
                self.state.hub.unfollow(self.reg.id, room);
                Ok(false)
            }
            Err(err) => {
                let reason = format!(
                    "room {room} could not be read: {}",
                    store_error_parts(&err).2
                );
                self.resync(reason).await?;
                Ok(false)
            }
        }
    }

    /// Sends the stored events between the last delivered one and `until`
    /// (exclusive; `Seq::MAX`: all there are), as live events.
    async fn fill_gap(&mut self, room: &RoomId, until: Seq) -> Result<Filled, Gone> {
        let page = self.state.config.limits.page_size.max(1);
        let mut membership = None;
        loop {
            let last = self.sent.get(room).copied().unwrap_or(0);
            if last.saturating_add(1) >= until {
                return Ok(Filled::Read(membership));
            }
            let events: Vec<Event> = match self.state.store.events_after(room, last, page).await {
                Ok(events) => events.into_iter().filter(|e| e.seq < until).collect(),
                Err(err) => {
                    tracing::warn!(%room, after = last, error = %err, "a gap in a room could not be read");
                    return Ok(Filled::Unread(format!(
                        "events of room {room} after {last} could not be read: {}",
                        store_error_parts(&err).2
                    )));
                }
            };
            let Some(newest) = events.last().map(|e| e.seq) else {
                if until == Seq::MAX {
                    return Ok(Filled::Read(membership));
                }
                // Events the broker passed on are committed: the store
                // must hold those before them.
                tracing::warn!(%room, after = last, until, "a gap in a room is not in the store");
                return Ok(Filled::Unread(format!(
                    "events of room {room} between {last} and {until} are not in the store"
                )));
            };
            for event in events {
                match &event.kind {
                    EventKind::MemberJoined { user } if user == &self.identity.user => {
                        membership = Some(true);
                    }
                    EventKind::MemberLeft { user } if user == &self.identity.user => {
                        membership = Some(false);
                    }
                    _ => {}
                }
                self.send(&ServerFrame::Event { event }).await?;
            }
            self.sent.insert(room.clone(), newest);
        }
    }
}
