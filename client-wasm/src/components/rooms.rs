//! The list of the user's rooms, as messengers show it: latest activity
//! first, each with an avatar (a dialog's with the other's presence), its
//! unread count, the latest message and its time.

use super::keyed::draw_keyed;
use crate::chat::RoomEntry;
use crate::components::clock;
use leptos::prelude::*;
use natter_shared::RoomId;

/// One button per room. Clicking opens it.
#[component]
pub fn RoomList(
    #[prop(into)] rooms: Signal<Vec<RoomEntry>>,
    select: WriteSignal<Option<RoomId>>,
) -> impl IntoView {
    let list = NodeRef::<leptos::html::Ul>::new();
    draw_keyed(
        list,
        rooms,
        |room| room,
        move |room| {
            let room = room.clone();
            view! { <RoomItem room select /> }.into_any()
        },
        |_, _| {},
    );
    view! {
        <nav class="rooms" aria-label="Conversations">
            <Show
                when=move || rooms.with(|r| !r.is_empty())
                fallback=|| view! { <p class="empty">"No conversations yet."</p> }
            >
                <ul node_ref=list></ul>
            </Show>
        </nav>
    }
}

#[component]
fn RoomItem(room: RoomEntry, select: WriteSignal<Option<RoomId>>) -> impl IntoView {
    let RoomEntry {
        id,
        name,
        unread,
        preview,
        last_ts,
        online,
        initials,
        tint,
        ..
    } = room;
    let presence = online.map(|on| {
        let label = if on { "online" } else { "offline" };
        view! { <span class="dot" class:online=on role="img" aria-label=label></span> }
    });
    view! {
        <li>
            <button type="button" class="room" on:click=move |_| select.set(Some(id.clone()))>
                <span class=format!("avatar tint{tint}") aria-hidden="true">
                    {initials}
                    {presence}
                </span>
                <span class="about">
                    <span class="line">
                        <span class="name">{name}</span>
                        {last_ts.map(|ts| view! { <time class="when">{clock(ts)}</time> })}
                    </span>
                    <span class="line">
                        <span class="preview">{preview}</span>
                        {(unread > 0).then(|| view! {
                            <span class="badge" aria-label=format!("{unread} unread")>{unread}</span>
                        })}
                    </span>
                </span>
            </button>
        </li>
    }
}
