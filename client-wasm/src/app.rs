//! The root component: wires the sync engine to the views.
//!
//! Data flows one way: the [`Engine`] writes what happens to IndexedDB and
//! then updates the [`View`] signals; the views read memos derived from
//! them; the person's actions (send, retry, open a room, scroll up) go to
//! the engine. A token from the host page picks the user and so the
//! database; a token for another user starts another engine.

use crate::chat::Chat;
use crate::components::{
    Composer, ConnectionStatus, Draft, MessageList, Reporting, RoomList, Status, attach,
};
use crate::embed::{self, Location};
use crate::net::LinkState;
use crate::sync::{Engine, View};
use crate::trust;
use crate::typing::Typing;
use leptos::prelude::*;
use natter_shared::{ClientId, RoomId, Seq};

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
    let view = View {
        chat: RwSignal::new(Chat::default()),
        link: RwSignal::new(None),
        error: RwSignal::new(None),
        open: RwSignal::new(None),
        typing: RwSignal::new(Typing::default()),
        owner_live: RwSignal::new(None),
        progress: RwSignal::new(Default::default()),
        previews: RwSignal::new(Default::default()),
        signed_out: RwSignal::new(0),
    };
    provide_context(crate::files::Sending {
        progress: view.progress,
        previews: view.previews,
    });
    let chat = view.chat;
    let browser_online = RwSignal::new(web_sys::window().is_none_or(|w| w.navigator().on_line()));
    let has_token = RwSignal::new(false);
    let files = crate::files::FileAccess {
        site: StoredValue::new(location.site.to_string()),
        token: RwSignal::new(None),
    };
    provide_context(files);
    let keeper = crate::files::keep::Keeper {
        db: StoredValue::new_local(None),
        cap: location
            .file_cache_mb
            .map_or(crate::files::keep::DEFAULT_CAP, |mb| f64::from(mb) * 1e6),
    };
    provide_context(keeper);
    // The engine is not Send; a local stored value lets callbacks reach it.
    let engine = StoredValue::new_local(None::<Engine>);
    // Counts engines started, so effects that tell the engine re-run.
    let engines = RwSignal::new(0u32);

    let url = crate::link::ws_url(location.secure, &location.host, location.site.as_str());
    let site = location.site.to_string();
    let on_open = move |room: RoomId| view.open.set(Some(room));
    // Whether the person can see the chat: in a frame, the host page says
    // (the panel open, the page visible); as a page of its own, it can.
    let shown = RwSignal::new(!embed::framed());
    let at_end = RwSignal::new(true);
    // The user of the latest token and that token, set at once: an engine
    // takes a moment to start and tokens come in twice (load and ready).
    let wanted = StoredValue::new(None::<(natter_shared::UserId, String)>);
    // Drops the user's session: the connection closes, nothing of them
    // stays on screen or open in the store (so it can be deleted).
    let drop_session = move || {
        if let Some(old) = engine.try_update_value(Option::take).flatten() {
            old.close();
        }
        chat.set(Chat::default());
        keeper.db.set_value(None);
        view.link.set(None);
        view.open.set(None);
    };
    // Signed out: the session, and the token it came with.
    let end_session = move || {
        drop_session();
        wanted.set_value(None);
        has_token.set(false);
        files.token.set(None);
    };
    // Another tab signed out: this one ends too.
    Effect::new(move |seen: Option<u32>| {
        let now = view.signed_out.get();
        if seen.is_some_and(|seen| seen != now) {
            end_session();
        }
        now
    });
    let logout_site = site.clone();
    let on_logout = move |force: bool| {
        let unsent = chat.with_untracked(Chat::unsent);
        if unsent > 0 && !force {
            embed::post_unsent(unsent);
            return;
        }
        let user = wanted.get_value().map(|(user, _)| user);
        end_session();
        let site = logout_site.clone();
        leptos::task::spawn_local(async move {
            if let Err(err) = crate::sync::sign_out(&site, user.as_ref()).await {
                view.error.set(Some(err.to_string()));
            }
            embed::post_logged_out();
        });
    };
    embed::listen_for_tokens(
        move |token| {
            has_token.set(true);
            files.token.set(Some(token.clone()));
            // Unverified: it only picks the local database; the server
            // confirms the same user in `hello`, or refuses the token.
            let Some(user) = trust::claims(&token).and_then(|c| c.subject()) else {
                view.error
                    .set(Some("The sign-in token is not readable.".into()));
                return;
            };
            let same = wanted.with_value(|w| w.as_ref().is_some_and(|(u, _)| *u == user));
            wanted.set_value(Some((user.clone(), token.clone())));
            if same {
                // Still starting: it picks the latest token up when it is up.
                engine.with_value(|e| e.as_ref().map(|e| e.set_token(token)));
                return;
            }
            // Another user: nothing of the previous one may show or be sent.
            drop_session();
            let (site, url) = (site.clone(), url.clone());
            leptos::task::spawn_local(async move {
                match Engine::start(&site, user.clone(), url, token, view).await {
                    Ok(started) => match wanted.get_value() {
                        Some((u, latest)) if u == user => {
                            started.set_token(latest);
                            keeper
                                .db
                                .set_value(Some((started.db().clone(), format!("{site}/{user}"))));
                            engine.set_value(Some(started));
                            engines.update(|n| *n += 1);
                        }
                        // Another user signed in meanwhile.
                        _ => started.close(),
                    },
                    Err(err) => view.error.set(Some(err.to_string())),
                }
            });
        },
        on_open,
        move |now_shown| shown.set(now_shown),
        on_logout,
    );
    on_network_change(move |online| {
        browser_online.set(online);
        if online {
            engine.with_value(|e| e.as_ref().map(Engine::online));
        }
    });
    on_cleanup(move || {
        if let Some(e) = engine.try_update_value(Option::take).flatten() {
            e.close();
        }
    });

    let rooms = Memo::new(move |_| chat.with(Chat::room_entries));
    // The chosen room; with a single room and none chosen, that one. No
    // room: the room list shows.
    let current = Memo::new(move |_| {
        rooms.with(|rooms| match view.open.get() {
            Some(id) => rooms.iter().any(|r| r.id == id).then_some(id),
            None if rooms.len() == 1 => rooms.first().map(|r| r.id.clone()),
            None => None,
        })
    });
    // Opening a room (also one shown by itself) loads it from the store;
    // leaving it is remembered too.
    Effect::new(move |prev: Option<Option<RoomId>>| {
        engines.track();
        let now = current.get();
        let prev = prev.flatten();
        match &now {
            Some(room) if prev.as_ref() != Some(room) => {
                engine.with_value(|e| e.as_ref().map(|e| e.open(room.clone())));
            }
            None if prev.is_some() => {
                engine.with_value(|e| e.as_ref().map(Engine::close_room));
            }
            _ => {}
        }
        now
    });
    let several = Memo::new(move |_| rooms.with(|r| r.len() > 1));
    // The open room's end in sight: what is there, and what comes, is read.
    // A closed panel or a hidden page reads nothing.
    let reading = Memo::new(move |_| shown.get() && at_end.get() && current.with(Option::is_some));
    Effect::new(move |_| {
        engines.track();
        let reading = reading.get();
        engine.with_value(|e| e.as_ref().map(|e| e.reading(reading)));
    });
    let on_seen = move |seq: natter_shared::Seq| {
        if let Some(room) = current.get_untracked().filter(|_| shown.get_untracked()) {
            engine.with_value(|e| e.as_ref().map(|e| e.read_to(room, seq)));
        }
    };
    let title = Memo::new(move |_| {
        let id = current.get()?;
        rooms.with(|rooms| rooms.iter().find(|r| r.id == id).map(|r| r.name.clone()))
    });
    // A dialog's other member: online, or when last seen.
    let presence = Memo::new(move |_| {
        let room = current.get()?;
        let (online, last_seen) = chat.with(|c| c.dialog_presence(&room))?;
        Some(match (online, last_seen) {
            (true, _) => "online".to_string(),
            (false, Some(ts)) => format!("last seen {}", crate::components::clock(ts)),
            (false, None) => "offline".to_string(),
        })
    });
    // A group's members: how many, who is online.
    let group = Memo::new(move |_| {
        let room = current.get()?;
        chat.with(|c| c.group_members(&room))
    });
    let lines = Memo::new(move |_| {
        current
            .get()
            .map(|id| chat.with(|c| c.lines(&id)))
            .unwrap_or_default()
    });
    let status = Memo::new(move |_| {
        let link = view.link.get();
        let live = chat.with(Chat::is_live);
        if !browser_online.get() {
            return Status::Offline { retry_secs: 0 };
        }
        match link {
            Some(link) => Status::new(&link, live),
            None if has_token.get() => Status::Follower {
                live: view.owner_live.get(),
            },
            None => Status::new(&LinkState::WaitingForToken, false),
        }
    });
    let notice = Memo::new(move |_| {
        view.error
            .get()
            .or_else(|| chat.with(|c| c.notice().map(str::to_owned)))
    });
    let me = Memo::new(move |_| {
        chat.with(|c| {
            c.me()
                .map(|m| m.name.clone().unwrap_or_else(|| m.id.to_string()))
        })
    });

    let send = move |body: String, files: Vec<crate::sync::Attached>| -> Result<(), String> {
        let room = current
            .get_untracked()
            .ok_or("Pick a conversation first.")?;
        let outgoing: Vec<_> = files.iter().map(|(f, _)| f.clone()).collect();
        let ok = chat.with_untracked(|c| {
            if files.is_empty() {
                c.check(&room, &body)
            } else {
                c.check_files(&outgoing)
            }
        });
        ok.map_err(|e| e.to_string())?;
        engine
            .with_value(|e| e.as_ref().map(|e| e.compose(room, body, files)))
            .ok_or_else(|| "Not signed in yet.".to_string())
    };
    // The file picker offers the types the site takes.
    let accept = Memo::new(move |_| {
        chat.with(|c| {
            let types = &c.limits().file_types;
            if types.iter().any(|t| t == "*") {
                String::new()
            } else {
                types.join(",")
            }
        })
    });
    let draft: Draft = RwSignal::new_local(Vec::new());
    let dropping = RwSignal::new(false);
    let on_drop = move |ev: web_sys::DragEvent| {
        ev.prevent_default();
        dropping.set(false);
        if current.get_untracked().is_some() {
            attach(draft, ev.data_transfer().and_then(|d| d.files()));
        }
    };
    let on_drag_over = move |ev: web_sys::DragEvent| {
        let carries_files = ev
            .data_transfer()
            .is_some_and(|d| d.types().includes(&"Files".into(), 0));
        if carries_files {
            ev.prevent_default();
            dropping.set(true);
        }
    };
    let retry = move |client_id: ClientId| {
        engine.with_value(|e| e.as_ref().map(|e| e.retry(client_id)));
    };
    // "Bob is typing…" in the open room.
    let typing = Memo::new(move |_| {
        let room = current.get()?;
        let now = js_sys::Date::now() as i64;
        let me = chat.with(|c| c.me().map(|m| m.id.clone()));
        let typists = view.typing.with(|t| t.in_room(&room, me.as_ref(), now));
        let names: Vec<String> = typists
            .iter()
            .map(|user| chat.with(|c| c.name_in(&room, user)))
            .collect();
        crate::typing::sentence(&names)
    });
    let on_typing = move || {
        if let Some(room) = current.get_untracked() {
            engine.with_value(|e| e.as_ref().map(|e| e.typing(room)));
        }
    };
    let discard = move |client_id: ClientId| {
        engine.with_value(|e| e.as_ref().map(|e| e.discard(client_id)));
    };
    let report = move |(seq, note, state): (Seq, Option<String>, RwSignal<Reporting>)| {
        let (Some(room), Some(engine)) = (current.get_untracked(), engine.get_value()) else {
            return;
        };
        leptos::task::spawn_local(async move {
            state.set(match engine.report(room, seq, note).await {
                Ok(()) => Reporting::Done,
                Err(why) => Reporting::Failed(why),
            });
        });
    };
    let older = move || {
        if let Some(room) = current.get_untracked() {
            engine.with_value(|e| e.as_ref().map(|e| e.older(room)));
        }
    };

    view! {
        <div class="natter">
            <header class="bar">
                <span class="me">{move || me.get()}</span>
                <ConnectionStatus status notice />
            </header>
            <div class="views" class:talking=move || current.with(Option::is_some)>
            <RoomList rooms select=view.open.write_only() />
            <section
                class="pane"
                class:dropping=move || dropping.get()
                aria-label=move || title.get()
                on:dragover=on_drag_over
                on:dragleave=move |_| dropping.set(false)
                on:drop=on_drop
            >
                <h2>
                    <Show when=move || several.get()>
                        <button
                            type="button"
                            class="back"
                            aria-label="All conversations"
                            on:click=move |_| view.open.set(None)
                        >
                            "‹"
                        </button>
                    </Show>
                    <span class="title">{move || title.get()}</span>
                    {move || presence.get().map(|p| view! { <small class="presence">{p}</small> })}
                    {move || group.get().map(|(count, members)| view! { <GroupMembers count members /> })}
                </h2>
                <MessageList
                    lines
                    on_retry=Callback::new(retry)
                    on_discard=Callback::new(discard)
                    on_top=Callback::new(move |()| older())
                    at_end
                    on_seen=Callback::new(on_seen)
                    on_report=Callback::new(report)
                />
                <p class="typing" aria-live="polite">{move || typing.get()}</p>
                <Composer
                    enabled=Signal::derive(move || current.with(Option::is_some))
                    on_send=send
                    files=draft
                    accept=accept
                    on_typing=Callback::new(move |()| on_typing())
                />
            </section>
            </div>
        </div>
    }
}

/// A group's members in its header: "N members, M online", opening to the
/// listed names (online ones marked) and how many more there are.
#[component]
fn GroupMembers(count: u32, members: Vec<(String, bool)>) -> impl IntoView {
    let online = members.iter().filter(|(_, on)| *on).count();
    let more = (count as usize).saturating_sub(members.len());
    view! {
        <details class="members">
            <summary>{format!("{count} members, {online} online")}</summary>
            <ul>
                {members
                    .into_iter()
                    .map(|(name, on)| view! { <li class:online=on>{name}</li> })
                    .collect_view()}
                {(more > 0).then(|| view! { <li class="more">{format!("and {more} more")}</li> })}
            </ul>
        </details>
    }
}

/// Calls `on_change(true)` on the window's `online` event and
/// `on_change(false)` on `offline`, for the page's lifetime.
fn on_network_change(on_change: impl Fn(bool) + Clone + 'static) {
    let Some(window) = web_sys::window() else {
        return;
    };
    for (name, online) in [("online", true), ("offline", false)] {
        let on_change = on_change.clone();
        let listener =
            wasm_bindgen::closure::Closure::<dyn FnMut()>::new(move || on_change(online));
        use wasm_bindgen::JsCast;
        // Without the event the status only learns from the socket.
        let _ = window.add_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
        // Lives as long as the page.
        listener.forget();
    }
}
