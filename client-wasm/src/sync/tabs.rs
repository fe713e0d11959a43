//! What the engine says to and hears from the user's other tabs: who
//! types (the owner hears it, followers show it and ask the owner to say
//! it), how the owner's connection stands, who is online, and how far the
//! person read in a follower tab (the owner tells the server).

use super::{Engine, Work};
use crate::chat::Chat;
use crate::leader::News;
use crate::typing::SHOWN_MS;
use leptos::prelude::*;
use natter_shared::{ClientFrame, RoomId, ServerFrame, UserId};

impl Engine {
    /// The person is typing in `room`: the others are told, at most every
    /// few seconds, by the tab that holds the connection (a follower asks
    /// it to).
    pub fn typing(&self, room: RoomId) {
        let now = js_sys::Date::now() as i64;
        let say = (self.0.view.typing)
            .try_update_untracked(|t| t.should_say(&room, now))
            .unwrap_or(false);
        if !say {
            return;
        }
        if self.0.link.borrow().is_some() {
            self.say_typing(room);
        } else {
            self.0.tabs.say(News::SayTyping { room });
        }
    }

    /// Someone else typed (`typing` frame) or wrote (a message, which ends
    /// their typing). The owner tab tells the followers who types.
    pub(super) fn heard(&self, frame: &ServerFrame) {
        let typing = self.0.view.typing;
        match frame {
            ServerFrame::Typing { room, user } => {
                self.show_typing(room.clone(), user.clone());
                self.0.tabs.say(News::Typing {
                    room: room.clone(),
                    user: user.clone(),
                });
            }
            ServerFrame::Presence { users } => {
                self.0.tabs.say(News::Presence {
                    users: users.clone(),
                });
            }
            ServerFrame::Event { event } => {
                if let Some(sender) = &event.sender
                    && typing.try_update_untracked(|t| t.wrote(&event.room, sender)) == Some(true)
                {
                    typing.notify();
                }
            }
            _ => {}
        }
    }

    /// Shows `user` typing in `room` until it goes stale.
    pub(super) fn show_typing(&self, room: RoomId, user: UserId) {
        let typing = self.0.view.typing;
        let now = js_sys::Date::now() as i64;
        typing.update(|t| t.heard(room, user, now));
        // Forget it once it is stale.
        set_timeout(
            move || {
                let now = js_sys::Date::now() as i64;
                if typing.try_update_untracked(|t| t.expire(now)) == Some(true) {
                    typing.notify();
                }
            },
            std::time::Duration::from_millis(SHOWN_MS as u64 + 50),
        );
    }

    /// What another tab said.
    pub(super) fn hear_tab(&self, news: News) {
        let owner = self.0.link.borrow().is_some();
        // Before the server took this tab's token, only a sign-out counts.
        if !self.0.trusted.get() && !matches!(news, News::SignedOut) {
            return;
        }
        match news {
            News::Room => self.push(Work::Reload),
            News::Outbox => self.push(Work::OutboxChanged),
            News::Typing { room, user } if !owner => self.show_typing(room, user),
            News::SayTyping { room } if owner => self.say_typing(room),
            News::Link { live } if !owner => self.0.view.owner_live.set(Some(live)),
            News::SignedOut => self.0.view.signed_out.update(|n| *n += 1),
            News::Ask if owner => {
                self.announce_link();
                let users = self.0.view.chat.with_untracked(Chat::presences);
                self.0.tabs.say(News::Presence { users });
            }
            News::Read { room, seq } if owner => self.push(Work::ReadTo(room, seq)),
            News::Presence { users } if !owner => {
                self.0.view.chat.update(|c| c.take_presence(users));
            }
            _ => {}
        }
    }

    /// The owner tells the followers whether its connection is live.
    pub(super) fn announce_link(&self) {
        let live = self.0.view.chat.with_untracked(Chat::is_live);
        self.0.tabs.say(News::Link { live });
    }

    /// Sends `typing` on the connection, if it is synced.
    pub(super) fn say_typing(&self, room: RoomId) {
        if self.0.synced_on.get() == self.0.socket.get()
            && let Some(link) = self.0.link.borrow().as_ref()
        {
            link.send(&ClientFrame::Typing { room });
        }
    }

    /// In a follower: tells the owner how far the person read the open
    /// room (the owner's connection tells the server).
    pub(super) fn share_read(&self) {
        if self.0.link.borrow().is_some() {
            return;
        }
        let open = self.0.view.open.get_untracked();
        let read = open.and_then(|room| {
            let seq = self.0.view.chat.with_untracked(|c| c.read_of(&room))?;
            Some((room, seq))
        });
        if let Some((room, seq)) = read.filter(|(_, seq)| *seq > 0) {
            self.0.tabs.say(News::Read { room, seq });
        }
    }
}
