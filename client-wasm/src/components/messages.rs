//! A room's lines: messages with author and time, membership changes, and
//! the delivery state of our own sends.

use super::keyed::draw_keyed;
use crate::chat::{Delivery, Line};
use crate::files::{Attachments, OutgoingFiles};
use crate::time::{in_date_range, iso_8601};
use leptos::prelude::*;
use natter_shared::{ClientId, Seq};
use wasm_bindgen::JsValue;

/// The lines of the current room, oldest first, scrolled to the newest.
/// Scrolling to the top calls `on_top` (to load older messages); a failed
/// message of ours has a retry button that calls `on_retry` and a discard
/// button that calls `on_discard`. `at_end` says whether the newest line
/// is in sight; scrolled back, `on_seen` gets the seq of the last line
/// wholly in sight.
#[component]
pub fn MessageList(
    #[prop(into)] lines: Signal<Vec<Line>>,
    #[prop(optional)] on_retry: Option<Callback<ClientId>>,
    #[prop(optional)] on_discard: Option<Callback<ClientId>>,
    #[prop(optional)] on_top: Option<Callback<()>>,
    #[prop(optional)] at_end: Option<RwSignal<bool>>,
    #[prop(optional)] on_seen: Option<Callback<Seq>>,
    #[prop(optional)] on_report: Option<OnReport>,
) -> impl IntoView {
    let list = NodeRef::<leptos::html::Ol>::new();
    // Pushes the view outward only: keep the newest line in sight, unless
    // older lines were added on top (the person is reading back): then
    // the line they were reading stays where it was (browsers do not
    // anchor a list scrolled to its very top).
    let newest = StoredValue::new(None::<String>);
    let seen = StoredValue::new(Shape::default());
    draw_keyed(
        list,
        lines,
        |line| &line.key,
        move |line| {
            let line = line.clone();
            view! { <MessageItem line on_retry on_discard on_report /> }.into_any()
        },
        move |el, lines| {
            let first = lines.first().map(|l| l.key.clone());
            let last = lines.last().map(|l| l.key.clone());
            if newest.get_value().is_none() && last.is_some() {
                mark_first_paint();
            }
            if newest.get_value() != last {
                el.set_scroll_top(el.scroll_height());
                if let Some(at_end) = at_end {
                    at_end.set(true);
                }
            } else {
                let before = seen.get_value();
                if before.first.is_some() && before.first != first && el.scroll_top() == before.top
                {
                    el.set_scroll_top(before.top + el.scroll_height() - before.height);
                }
            }
            seen.set_value(Shape::of(first, el));
            newest.set_value(last);
        },
    );
    let on_scroll = move |_| {
        let Some(el) = list.get_untracked() else {
            return;
        };
        seen.update_value(|s| *s = Shape::of(s.first.take(), &el));
        if let Some(on_top) = on_top.filter(|_| el.scroll_top() <= 0) {
            on_top.run(());
        }
        let end = el.scroll_top() + el.client_height() >= el.scroll_height() - END_SLACK_PX;
        if let Some(at_end) = at_end.filter(|a| a.get_untracked() != end) {
            at_end.set(end);
        }
        if let Some(on_seen) = on_seen.filter(|_| !end)
            && let Some(seq) = last_in_sight(&el)
        {
            on_seen.run(seq);
        }
    };
    view! {
        <ol class="messages" node_ref=list aria-live="polite" aria-label="Messages" tabindex="0" on:scroll=on_scroll>
        </ol>
    }
}

/// The list as last drawn or scrolled: its first line's key, its height
/// and how far it was scrolled.
#[derive(Debug, Clone, Default)]
struct Shape {
    first: Option<String>,
    height: i32,
    top: i32,
}

impl Shape {
    fn of(first: Option<String>, el: &web_sys::Element) -> Self {
        Self {
            first,
            height: el.scroll_height(),
            top: el.scroll_top(),
        }
    }
}

/// How close to the end (in pixels) still counts as at the end.
const END_SLACK_PX: i32 = 24;

/// The seq of the last stored line wholly in sight in the list.
fn last_in_sight(list: &web_sys::HtmlOListElement) -> Option<Seq> {
    use wasm_bindgen::JsCast;
    let bottom = list.get_bounding_client_rect().bottom();
    let items = list.query_selector_all("li[data-seq]").ok()?;
    (0..items.length())
        .rev()
        .filter_map(|i| items.item(i)?.dyn_into::<web_sys::Element>().ok())
        .find(|li| li.get_bounding_client_rect().bottom() <= bottom + 1.0)
        .and_then(|li| li.get_attribute("data-seq")?.parse().ok())
}

/// Reports a message: its seq, the reporter's note, and where the report
/// stands (for the caller to set once it knows).
pub type OnReport = Callback<(Seq, Option<String>, RwSignal<Reporting>)>;

/// Where a report of someone else's message stands, as its button says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reporting {
    Idle,
    Sending,
    Done,
    /// Why it did not go.
    Failed(String),
}

/// A "Report" button for someone else's message: asks why in the
/// browser's own prompt (its answer is text, never markup), then hands
/// seq and note to `on_report`, which says how it went.
#[component]
fn ReportButton(seq: Seq, on_report: OnReport) -> impl IntoView {
    let state = RwSignal::new(Reporting::Idle);
    let click = move |_| {
        let asked = web_sys::window().map(|w| {
            w.prompt_with_message("Report this message to the site's moderators. Why? (optional)")
        });
        // Cancelled, or no window to ask in: nothing is reported.
        let Some(Ok(Some(note))) = asked else {
            return;
        };
        let note = Some(note.trim().to_string()).filter(|n| !n.is_empty());
        state.set(Reporting::Sending);
        on_report.run((seq, note, state));
    };
    view! {
        <button
            type="button"
            class="report"
            disabled=move || matches!(state.get(), Reporting::Sending | Reporting::Done)
            title=move || match state.get() {
                Reporting::Failed(why) => Some(format!("Not reported: {why}")),
                _ => None,
            }
            on:click=click
        >
            {move || match state.get() {
                Reporting::Idle => "Report",
                Reporting::Sending => "Reporting…",
                Reporting::Done => "Reported",
                Reporting::Failed(_) => "Report again",
            }}
        </button>
    }
}

/// One line. The body is a text node: markup in it is shown, not run.
#[component]
fn MessageItem(
    line: Line,
    on_retry: Option<Callback<ClientId>>,
    on_discard: Option<Callback<ClientId>>,
    on_report: Option<OnReport>,
) -> impl IntoView {
    let datetime = iso(&line);
    let Line {
        author,
        body,
        ts,
        mine,
        delivery,
        client_id,
        files,
        outgoing,
        seen_by,
        seq,
        in_group,
        deleted,
        ..
    } = line;
    let uploading = outgoing.iter().any(|f| f.id.is_none());
    let retry = match (&delivery, client_id, on_retry) {
        (Delivery::Failed(_), Some(id), Some(on_retry)) => Some(view! {
            <button type="button" class="retry" on:click=move |_| on_retry.run(id)>"Retry"</button>
        }),
        _ => None,
    };
    let discard = match (&delivery, client_id, on_discard) {
        (Delivery::Failed(_), Some(id), Some(on_discard)) => Some(view! {
            <button type="button" class="discard" on:click=move |_| on_discard.run(id)>"Discard"</button>
        }.into_any()),
        // Nothing of it was sent while its files upload: it may go.
        (Delivery::Pending, Some(id), Some(on_discard)) if uploading => Some(view! {
            <button type="button" class="cancel" on:click=move |_| on_discard.run(id)>"Cancel"</button>
        }.into_any()),
        _ => None,
    };
    let system = author.is_none();
    // Someone else's message, as stored: it may be reported.
    let report = match (mine || system || deleted, seq, on_report) {
        (false, Some(seq), Some(on_report)) => Some(view! { <ReportButton seq on_report /> }),
        _ => None,
    };
    let note = match &delivery {
        Delivery::Pending if uploading => Some("uploading…".to_string()),
        Delivery::Pending => Some("sending…".to_string()),
        Delivery::Failed(why) => Some(format!("not sent: {why}")),
        Delivery::Stored => None,
    };
    // Our stored messages: sent, then read (who, on hover or tap).
    let receipt = (mine && delivery == Delivery::Stored && !deleted).then(|| {
        let label = match (seen_by.len(), in_group) {
            (0, _) => "sent".to_string(),
            (_, false) => "read".to_string(),
            (n, true) => format!("read by {n}"),
        };
        let who = (!seen_by.is_empty()).then(|| format!("Read by {}", seen_by.join(", ")));
        match who {
            // A group's readers: named on hover, and listed on a tap (a
            // touch screen has no hover).
            Some(who) if in_group => {
                let open = RwSignal::new(false);
                view! {
                    <button
                        type="button"
                        class="receipt read"
                        title=who.clone()
                        aria-expanded=move || open.get().to_string()
                        on:click=move |_| open.update(|o| *o = !*o)
                    >
                        {label}
                    </button>
                    <Show when=move || open.get()>
                        <small class="readers">{who.clone()}</small>
                    </Show>
                }
                .into_any()
            }
            who => view! {
                <small class="receipt" class:read=who.is_some() title=who.clone() aria-label=who>
                    {label}
                </small>
            }
            .into_any(),
        }
    });
    view! {
        <li
            data-seq=seq.map(|s| s.to_string())
            class="msg"
            class:mine=mine
            class:system=system
            class:deleted=deleted
            class:pending=delivery == Delivery::Pending
            class:failed=matches!(delivery, Delivery::Failed(_))
        >
            <div class="meta">
                {author.map(|a| view! { <span class="author">{a}</span> })}
                <time datetime=datetime>{clock(ts)}</time>
            </div>
            {(!body.is_empty()).then(|| view! { <p class="body">{body}</p> })}
            <Attachments files />
            <OutgoingFiles files=outgoing />
            {note.map(|n| view! { <small class="delivery">{n}</small> })}
            {receipt}
            {retry}
            {discard}
            {report}
        </li>
    }
}

/// The User Timing mark [`FIRST_PAINT_MARK`]: when the list first showed
/// messages after the page loaded, for the site's own performance
/// monitoring (and the end-to-end tests).
fn mark_first_paint() {
    thread_local! {
        static MARKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if MARKED.with(|m| m.replace(true)) {
        return;
    }
    if let Some(performance) = web_sys::window().and_then(|w| w.performance()) {
        // Only a measurement is lost if the browser refuses it.
        let _ = performance.mark(FIRST_PAINT_MARK);
    }
}

/// The name of the mark set when messages first appear.
pub const FIRST_PAINT_MARK: &str = "natter:first-messages";

/// Local `HH:MM` of a timestamp in milliseconds, with the date when it
/// is not today; nothing for a time no date can hold.
pub fn clock(ts: i64) -> String {
    if !in_date_range(ts) {
        return String::new();
    }
    let date = js_sys::Date::new(&JsValue::from_f64(ts as f64));
    let time = format!("{:02}:{:02}", date.get_hours(), date.get_minutes());
    let today = js_sys::Date::new_0();
    let same_day = (date.get_full_year(), date.get_month(), date.get_date())
        == (today.get_full_year(), today.get_month(), today.get_date());
    if same_day {
        time
    } else {
        format!(
            "{}-{:02}-{:02} {time}",
            date.get_full_year(),
            date.get_month() + 1,
            date.get_date()
        )
    }
}

/// A line's time in ISO 8601, for the `datetime` attribute. A time no
/// date can hold (where the browser's `toISOString` would throw) gets
/// none, and is kept as the page's first error: no line the chat makes
/// or receives should carry one.
fn iso(line: &Line) -> String {
    iso_8601(line.ts).unwrap_or_else(|| {
        crate::stopped::keep_first_error(&format!(
            "a line's time is out of range: {} at {}",
            line.key, line.ts
        ));
        String::new()
    })
}
