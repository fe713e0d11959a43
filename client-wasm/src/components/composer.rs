//! The message input.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;

/// A one-line input and a send button. `on_send` gets the draft and says
/// why it was refused, if it was; the draft is cleared once accepted.
/// `on_typing` runs on every edit of a non-empty draft.
#[component]
pub fn Composer(
    #[prop(into)] enabled: Signal<bool>,
    on_send: impl Fn(String) -> Result<(), String> + 'static,
    #[prop(optional)] on_typing: Option<Callback<()>>,
) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match on_send(draft.get_untracked()) {
            Ok(()) => {
                draft.set(String::new());
                error.set(None);
            }
            Err(why) => error.set(Some(why)),
        }
    };
    view! {
        <form class="composer" on:submit=submit>
            <input
                type="text"
                name="body"
                aria-label="Message"
                placeholder="Write a message…"
                autocomplete="off"
                prop:value=move || draft.get()
                on:input=move |ev| {
                    let value = event_target_value(&ev);
                    if let Some(on_typing) = on_typing.filter(|_| !value.is_empty()) {
                        on_typing.run(());
                    }
                    draft.set(value);
                }
                disabled=move || !enabled.get()
            />
            <button type="submit" disabled=move || !enabled.get()>
                "Send"
            </button>
            {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
        </form>
    }
}
