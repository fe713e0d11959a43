//! The list of the user's rooms.

use crate::chat::RoomEntry;
use leptos::prelude::*;
use natter_shared::RoomId;

/// One button per room; the current one is marked. Clicking selects.
#[component]
pub fn RoomList(
    #[prop(into)] rooms: Signal<Vec<RoomEntry>>,
    #[prop(into)] current: Signal<Option<RoomId>>,
    select: WriteSignal<Option<RoomId>>,
) -> impl IntoView {
    view! {
        <nav class="rooms" aria-label="Conversations">
            <Show
                when=move || rooms.with(|r| !r.is_empty())
                fallback=|| view! { <p class="empty">"No conversations yet."</p> }
            >
                <ul>
                    <For
                        each=move || rooms.get()
                        key=|room| (room.id.clone(), room.name.clone(), room.unread, room.preview.clone())
                        children=move |room| {
                            let id = room.id.clone();
                            let is_current = {
                                let id = id.clone();
                                move || current.with(|c| c.as_ref() == Some(&id))
                            };
                            view! {
                                <li>
                                    <button
                                        type="button"
                                        class="room"
                                        class:current=is_current.clone()
                                        aria-pressed=move || is_current().to_string()
                                        on:click=move |_| select.set(Some(id.clone()))
                                    >
                                        <span class="name">{room.name}</span>
                                        {(room.unread > 0).then(|| view! {
                                            <span class="badge" aria-label=format!("{} unread", room.unread)>
                                                {room.unread}
                                            </span>
                                        })}
                                        {room.preview.map(|p| view! { <span class="preview">{p}</span> })}
                                    </button>
                                </li>
                            }
                        }
                    />
                </ul>
            </Show>
        </nav>
    }
}
