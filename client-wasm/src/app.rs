//! The root component: wires the link to the chat state and the state to
//! the views.
//!
//! Data flows one way: the [`Link`] hands server frames to
//! [`Chat::apply`] inside a signal update, the views read memos derived
//! from that signal, and the composer's sends go through
//! [`Chat::compose`] before they reach the socket.

use crate::chat::Chat;
use crate::components::{Composer, ConnectionStatus, MessageList, RoomList, Status};
use crate::embed::{self, Location};
use crate::net::{self, Incoming, Link, LinkState};
use leptos::prelude::*;
use natter_shared::{ClientId, RoomId};

/// The widget, or an explanation when it was opened without a site.
#[component]
pub fn App() -> impl IntoView {
    match embed::location() {
        Some(location) => view! { <ChatWidget location /> }.into_any(),
        None => view! {
            <p class="fatal">"This chat needs a site: open it as /widget/?site=SITE_ID."</p>
        }
        .into_any(),
    }
}

/// The chat for one site: connection line, room list, current room.
#[component]
fn ChatWidget(location: Location) -> impl IntoView {
    let chat = RwSignal::new(Chat::default());
    let link_state = RwSignal::new(LinkState::WaitingForToken);
    let selected = RwSignal::new(None::<RoomId>);

    let url = net::ws_url(location.secure, &location.host, location.site.as_str());
    let link = Link::new(url, move |link, incoming| match incoming {
        Incoming::State(state) => {
            if state != LinkState::Open {
                chat.update(Chat::on_disconnect);
            }
            link_state.set(state);
        }
        Incoming::Frame(frame) => {
            for reply in chat.try_update(|c| c.apply(frame)).unwrap_or_default() {
                // A reply that cannot go out now is not lost: the next
                // connection syncs from the cursors and resends the outbox.
                link.send(&reply);
            }
        }
    });
    embed::listen_for_tokens({
        let link = link.clone();
        move |token| link.set_token(token)
    });
    // The link is not Send; a local stored value lets the cleanup reach it.
    let stored = StoredValue::new_local(link.clone());
    on_cleanup(move || {
        stored.try_with_value(Link::close);
    });

    let rooms = Memo::new(move |_| chat.with(Chat::room_entries));
    // The chosen room, or the first while none is chosen (or it went away).
    let current = Memo::new(move |_| {
        rooms.with(|rooms| {
            selected
                .get()
                .filter(|id| rooms.iter().any(|r| r.id == *id))
                .or_else(|| rooms.first().map(|r| r.id.clone()))
        })
    });
    let title = Memo::new(move |_| {
        let id = current.get()?;
        rooms.with(|rooms| rooms.iter().find(|r| r.id == id).map(|r| r.name.clone()))
    });
    let lines = Memo::new(move |_| {
        current
            .get()
            .map(|id| chat.with(|c| c.lines(&id)))
            .unwrap_or_default()
    });
    let status = Memo::new(move |_| Status::new(&link_state.get(), chat.with(Chat::is_live)));
    let notice = Memo::new(move |_| chat.with(|c| c.notice().map(str::to_owned)));
    let me = Memo::new(move |_| {
        chat.with(|c| {
            c.me()
                .map(|m| m.name.clone().unwrap_or_else(|| m.id.to_string()))
        })
    });

    let send = move |body: String| -> Result<(), String> {
        let room = current
            .get_untracked()
            .ok_or("Pick a conversation first.")?;
        let client_id = ClientId::from_uuid(uuid::Uuid::now_v7());
        let now = js_sys::Date::now() as i64;
        let frames = chat
            .try_update(|c| c.compose(&room, client_id, body, now))
            .ok_or("The chat has closed.")?
            .map_err(|e| e.to_string())?;
        // Offline there are none: the outbox goes out after the next
        // `synced`. A frame the socket drops is resent the same way.
        for frame in &frames {
            link.send(frame);
        }
        Ok(())
    };

    view! {
        <div class="natter">
            <header class="bar">
                <span class="me">{move || me.get()}</span>
                <ConnectionStatus status notice />
            </header>
            <RoomList rooms current select=selected.write_only() />
            <section class="pane" aria-label=move || title.get()>
                <h2>{move || title.get()}</h2>
                <MessageList lines />
                <Composer enabled=Signal::derive(move || current.with(Option::is_some)) on_send=send />
            </section>
        </div>
    }
}
