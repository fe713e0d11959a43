//! The message input, with files: an attach button, files dropped on the
//! conversation or pasted, shown as chips (each can be taken off) until
//! the message is sent with them; the text is then their caption.

use crate::files::size_text;
use crate::sync::Attached;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use natter_shared::sync::OutgoingFile;
use web_sys::FileList;

/// The files attached to the draft.
pub type Draft = RwSignal<Vec<Attached>, LocalStorage>;

/// Adds the files of a picker, a drop or a paste to the draft.
pub fn attach(draft: Draft, list: Option<FileList>) {
    let Some(list) = list else { return };
    let picked: Vec<Attached> = (0..list.length())
        .filter_map(|i| list.get(i))
        .map(|file| {
            let outgoing = OutgoingFile {
                key: uuid::Uuid::now_v7().to_string(),
                name: file.name(),
                size: file.size() as u64,
                mime: file.type_(),
                id: None,
            };
            (outgoing, web_sys::Blob::from(file))
        })
        .collect();
    if !picked.is_empty() {
        draft.update(|d| d.extend(picked));
    }
}

/// A one-line input, an attach button and a send button. `on_send` gets
/// the text and the files and says why they were refused, if they were;
/// the draft is cleared once accepted. `on_typing` runs on every edit of
/// a non-empty text. `accept` lists the file types the site takes.
#[component]
pub fn Composer(
    #[prop(into)] enabled: Signal<bool>,
    on_send: impl Fn(String, Vec<Attached>) -> Result<(), String> + 'static,
    files: Draft,
    #[prop(into)] accept: Signal<String>,
    #[prop(optional)] on_typing: Option<Callback<()>>,
) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let picker = NodeRef::<leptos::html::Input>::new();
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let attached = files.get_untracked();
        match on_send(draft.get_untracked(), attached) {
            Ok(()) => {
                draft.set(String::new());
                files.set(Vec::new());
                error.set(None);
            }
            Err(why) => error.set(Some(why)),
        }
    };
    let on_pick = move |_| {
        if let Some(input) = picker.get_untracked() {
            attach(files, input.files());
            // The same file may be picked again.
            input.set_value("");
        }
    };
    let on_paste = move |ev: web_sys::ClipboardEvent| {
        let list = ev.clipboard_data().and_then(|d| d.files());
        if list.as_ref().is_some_and(|l| l.length() > 0) {
            ev.prevent_default();
            attach(files, list);
        }
    };
    let chips = move || {
        files
            .get()
            .into_iter()
            .map(|(file, _)| {
                let key = file.key.clone();
                let remove = move |_| files.update(|d| d.retain(|(f, _)| f.key != key));
                let label = format!("Remove {}", file.name);
                view! {
                    <li class="chip">
                        <span class="file-name">{file.name}</span>
                        <span class="file-size">{size_text(file.size)}</span>
                        <button type="button" class="remove" aria-label=label on:click=remove>"×"</button>
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <form class="composer" on:submit=submit>
            <ul class="attached" aria-label="Attached files">{chips}</ul>
            <div class="row">
                <label class="attach" title="Attach files">
                    <span class="visually-hidden">"Attach files"</span>
                    // Drawn: an emoji would need a font the device may lack.
                    <svg viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
                        <path
                            fill="none"
                            stroke="currentColor"
                            stroke-width="2"
                            stroke-linecap="round"
                            d="M21 11.5l-8.5 8.5a5 5 0 0 1-7-7l9-9a3.3 3.3 0 0 1 4.7 4.7l-9 9a1.7 1.7 0 0 1-2.4-2.4L16 7.5"
                        />
                    </svg>
                    <input
                        type="file"
                        name="files"
                        multiple
                        node_ref=picker
                        accept=move || accept.get()
                        on:change=on_pick
                        disabled=move || !enabled.get()
                    />
                </label>
                <input
                    type="text"
                    name="body"
                    aria-label="Message"
                    placeholder=move || {
                        if files.with(Vec::is_empty) { "Write a message…" } else { "Add a caption…" }
                    }
                    autocomplete="off"
                    prop:value=move || draft.get()
                    on:input=move |ev| {
                        let value = event_target_value(&ev);
                        if let Some(on_typing) = on_typing.filter(|_| !value.is_empty()) {
                            on_typing.run(());
                        }
                        draft.set(value);
                    }
                    on:paste=on_paste
                    disabled=move || !enabled.get()
                />
                <button type="submit" disabled=move || !enabled.get()>
                    "Send"
                </button>
            </div>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </form>
    }
}
