//! A room's lines: messages with author and time, membership changes, and
//! the delivery state of our own sends.

use crate::chat::{Delivery, Line};
use leptos::prelude::*;
use wasm_bindgen::JsValue;

/// The lines of the current room, oldest first, scrolled to the newest.
#[component]
pub fn MessageList(#[prop(into)] lines: Signal<Vec<Line>>) -> impl IntoView {
    let list = NodeRef::<leptos::html::Ol>::new();
    // Pushes the view outward only: keep the newest line in sight.
    Effect::new(move |_| {
        lines.track();
        if let Some(el) = list.get() {
            el.set_scroll_top(el.scroll_height());
        }
    });
    view! {
        <ol class="messages" node_ref=list aria-live="polite">
            <For
                each=move || lines.get()
                key=|line| line.key.clone()
                children=|line| view! { <MessageItem line /> }
            />
        </ol>
    }
}

/// One line. The body is a text node: markup in it is shown, not run.
#[component]
fn MessageItem(line: Line) -> impl IntoView {
    let Line {
        author,
        body,
        ts,
        mine,
        delivery,
        ..
    } = line;
    let system = author.is_none();
    let note = match &delivery {
        Delivery::Pending => Some("sending…".to_string()),
        Delivery::Failed(why) => Some(format!("not sent: {why}")),
        Delivery::Stored => None,
    };
    view! {
        <li
            class="msg"
            class:mine=mine
            class:system=system
            class:pending=delivery == Delivery::Pending
            class:failed=matches!(delivery, Delivery::Failed(_))
        >
            <div class="meta">
                {author.map(|a| view! { <span class="author">{a}</span> })}
                <time datetime=iso(ts)>{clock(ts)}</time>
            </div>
            <p class="body">{body}</p>
            {note.map(|n| view! { <small class="delivery">{n}</small> })}
        </li>
    }
}

/// Local `HH:MM` of a timestamp in milliseconds.
fn clock(ts: i64) -> String {
    let date = js_sys::Date::new(&JsValue::from_f64(ts as f64));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}

/// The timestamp in ISO 8601, for the `datetime` attribute.
fn iso(ts: i64) -> String {
    js_sys::Date::new(&JsValue::from_f64(ts as f64))
        .to_iso_string()
        .into()
}
