//! The widget's views in a real browser: each test mounts into a scratch
//! element and checks the DOM. Run with
//! `cargo test -p natter-client --target wasm32-unknown-unknown`.
#![cfg(target_arch = "wasm32")]

use leptos::mount::mount_to;
use leptos::prelude::*;
use natter_client::chat::{Chat, Delivery, Line};
use natter_client::components::{MessageList, Reporting, RoomList};
use natter_shared::{ClientId, RoomId, ServerFrame};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{Element, HtmlElement};

wasm_bindgen_test_configure!(run_in_browser);

const XSS: &str = "<img src=x onerror=alert(1)>";

/// A fresh `<div>` in the test page's body.
fn scratch() -> HtmlElement {
    let doc = web_sys::window().unwrap().document().unwrap();
    let el = doc.create_element("div").unwrap();
    doc.body().unwrap().append_child(&el).unwrap();
    el.unchecked_into()
}

/// Lets the reactive system run its queued effects (they run as
/// microtasks; a timer fires after all of them).
async fn settle() {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        web_sys::window()
            .unwrap()
            .set_timeout_with_callback(&resolve)
            .unwrap();
    });
    JsFuture::from(promise).await.unwrap();
}

fn all(root: &Element, selector: &str) -> Vec<Element> {
    let list = root.query_selector_all(selector).unwrap();
    (0..list.length())
        .filter_map(|i| list.item(i)?.dyn_into().ok())
        .collect()
}

/// The text of each element `selector` matches, in document order.
fn texts(root: &Element, selector: &str) -> Vec<String> {
    all(root, selector)
        .iter()
        .map(|e| e.text_content().unwrap_or_default())
        .collect()
}

fn text(root: &Element, selector: &str) -> String {
    root.query_selector(selector)
        .unwrap()
        .unwrap_or_else(|| panic!("no {selector} in {}", root.inner_html()))
        .text_content()
        .unwrap_or_default()
}

fn frame(json: &str) -> ServerFrame {
    natter_client::json::parse(json).unwrap()
}

/// A stored line: `author`'s message `seq`, saying `body`.
fn stored(seq: u64, author: &str, body: &str) -> Line {
    Line {
        key: format!("s{seq}"),
        author: Some(author.into()),
        body: body.into(),
        ts: 1_764_312_000_000,
        mine: false,
        delivery: Delivery::Stored,
        client_id: None,
        files: Vec::new(),
        outgoing: Vec::new(),
        seen_by: Vec::new(),
        seq: Some(seq),
        in_group: false,
        deleted: false,
    }
}

#[wasm_bindgen_test]
async fn markup_in_names_and_bodies_is_shown_as_text() {
    let root = scratch();
    let lines = vec![stored(1, "<b>Eve</b>", XSS)];
    let _mounted = mount_to(root.clone(), move || {
        view! { <MessageList lines=Signal::stored(lines) /> }
    });
    settle().await;

    assert!(all(&root, "img").is_empty(), "{}", root.inner_html());
    assert!(all(&root, "b").is_empty(), "{}", root.inner_html());
    assert_eq!(text(&root, ".body"), XSS);
    assert_eq!(text(&root, ".author"), "<b>Eve</b>");
}

#[wasm_bindgen_test]
async fn own_message_shows_pending_until_the_room_confirms_it() {
    let root = scratch();
    let room = RoomId::parse("r_ab").unwrap();
    let chat = RwSignal::new(Chat::default());
    chat.update(|c| {
        c.apply(frame(
            r#"{"type":"hello","protocol":"natter.v1","site":"demo","user":"alice",
                "name":"Alice","limits":{"max_frame_bytes":65536,"max_body_bytes":16384,"page_size":200}}"#,
        ));
        c.apply(frame(
            r#"{"type":"rooms","rooms":[{"id":"r_ab","kind":"dialog","last_seq":1,"created_at":0,
                "members":[{"id":"alice","name":"Alice"},{"id":"bob","name":"Bob"}]}]}"#,
        ));
        c.apply(frame(
            r#"{"type":"page","room":"r_ab","more":false,"events":[
                {"room":"r_ab","seq":1,"ts":1,"sender":"bob","kind":"message","body":"hi Alice"}]}"#,
        ));
        c.apply(frame(r#"{"type":"synced"}"#));
    });
    let lines = {
        let room = room.clone();
        Signal::derive(move || chat.with(|c| c.lines(&room)))
    };
    let _mounted = mount_to(root.clone(), move || view! { <MessageList lines /> });
    settle().await;
    assert_eq!(all(&root, "li.msg").len(), 1);
    assert_eq!(text(&root, "li.msg .author"), "Bob");

    let client_id = ClientId::parse("0191e6b2-7c3a-7d4e-8f00-123456789abc").unwrap();
    chat.update(|c| {
        c.compose(&room, client_id, XSS.into(), Vec::new(), 2)
            .unwrap();
    });
    settle().await;
    assert_eq!(all(&root, "li.msg").len(), 2);
    assert_eq!(text(&root, "li.msg.mine.pending .delivery"), "sending…");

    chat.update(|c| {
        c.apply(frame(&format!(
            r#"{{"type":"event","event":{{"room":"r_ab","seq":2,"ts":3,"sender":"alice",
                "kind":"message","body":{XSS:?},"client_id":"{client_id}"}}}}"#
        )));
    });
    settle().await;
    assert_eq!(all(&root, "li.msg").len(), 2, "{}", root.inner_html());
    assert!(all(&root, ".pending").is_empty(), "{}", root.inner_html());
    assert_eq!(text(&root, "li.msg.mine .body"), XSS);
    assert!(all(&root, "img").is_empty());
}

#[wasm_bindgen_test]
async fn room_list_names_rooms_and_selects_on_click() {
    let root = scratch();
    let chat = RwSignal::new(Chat::default());
    chat.update(|c| {
        c.apply(frame(
            r#"{"type":"hello","protocol":"natter.v1","site":"demo","user":"alice",
                "limits":{"max_frame_bytes":65536,"max_body_bytes":16384,"page_size":200}}"#,
        ));
        c.apply(frame(
            r#"{"type":"rooms","rooms":[
                {"id":"r_ab","kind":"dialog","last_seq":0,"created_at":0,
                 "members":[{"id":"alice"},{"id":"bob","name":"Bob <Builder>"}]},
                {"id":"r_lobby","kind":"group","title":"Lobby","last_seq":0,"created_at":0,
                 "members":[{"id":"alice"}]}]}"#,
        ));
    });
    let selected = RwSignal::new(None::<RoomId>);
    let rooms = Signal::derive(move || chat.with(Chat::room_entries));
    let _mounted = mount_to(root.clone(), move || {
        view! { <RoomList rooms select=selected.write_only() /> }
    });
    settle().await;

    let names = texts(&root, "button.room .name");
    assert_eq!(names, ["Bob <Builder>", "Lobby"]);
    let avatars = texts(&root, "button.room .avatar");
    assert_eq!(avatars, ["BB", "L"], "initials, as text");
    assert!(all(&root, "b").is_empty(), "{}", root.inner_html());

    all(&root, "button.room")[1]
        .unchecked_ref::<HtmlElement>()
        .click();
    settle().await;
    assert_eq!(selected.get_untracked(), RoomId::parse("r_lobby").ok());

    // A message in the Lobby brings it to the top.
    let lobby = all(&root, "button.room")[1].clone();
    chat.update(|c| {
        c.apply(frame(
            r#"{"type":"event","event":{"room":"r_lobby","seq":1,"ts":5,"sender":"alice",
                "kind":"message","body":"hi"}}"#,
        ));
    });
    settle().await;
    let names = texts(&root, "button.room .name");
    assert_eq!(names, ["Lobby", "Bob <Builder>"]);
    assert!(
        all(&root, "button.room")[0] != lobby,
        "a changed room is drawn anew"
    );
}

#[wasm_bindgen_test]
async fn own_messages_say_sent_then_read_and_by_whom() {
    let root = scratch();
    let line = |seq: u64, seen_by: &[&str], in_group: bool| Line {
        mine: true,
        seen_by: seen_by.iter().map(|s| s.to_string()).collect(),
        in_group,
        ..stored(seq, "Alice", &format!("m{seq}"))
    };
    let lines = vec![
        line(1, &[], false),
        line(2, &["Bob"], false),
        line(3, &["Bob", "<i>Carol</i>"], true),
    ];
    let _mounted = mount_to(root.clone(), move || {
        view! { <MessageList lines=Signal::stored(lines) /> }
    });
    settle().await;
    let receipts = texts(&root, ".receipt");
    assert_eq!(receipts, ["sent", "read", "read by 2"]);
    let who = all(&root, ".receipt.read")[1].get_attribute("title");
    assert_eq!(who.as_deref(), Some("Read by Bob, <i>Carol</i>"));
    assert!(all(&root, "i").is_empty(), "{}", root.inner_html());
}

/// The chat stops on its first failure and says why (a trap out of its
/// wasm here; a panic goes the same way); another uncaught error on the
/// page is kept (the first one) and leaves the chat going; a later
/// failure only counts.
#[wasm_bindgen_test]
fn a_trap_stops_the_chat_and_the_first_failure_says_why() {
    use js_sys::WebAssembly::RuntimeError;
    let doc = web_sys::window().unwrap().document().unwrap();
    let root = doc.document_element().unwrap();
    let mine = doc.create_element("p").unwrap();
    mine.set_class_name("status");
    doc.body().unwrap().append_child(&mine).unwrap();
    let status = doc.query_selector(".status").unwrap().unwrap();
    let before = status.text_content();
    let window = web_sys::EventTarget::new().unwrap();
    natter_client::stopped::catch_traps(&window);
    let fire = |kind: &str, field: &str, error: wasm_bindgen::JsValue| {
        let ev = web_sys::Event::new(kind).unwrap();
        js_sys::Reflect::set(&ev, &field.into(), &error).unwrap();
        window.dispatch_event(&ev).unwrap();
    };

    fire("error", "error", js_sys::Error::new("not a trap").into());
    fire("unhandledrejection", "reason", "a refused promise".into());
    let error = root.get_attribute("data-natter-error").unwrap_or_default();
    assert!(error.starts_with("error: not a trap\n"), "{error}");
    assert_eq!(root.get_attribute("data-natter-stopped"), None);
    assert_eq!(status.text_content(), before);

    fire(
        "error",
        "error",
        RuntimeError::new("memory access out of bounds").into(),
    );
    fire(
        "unhandledrejection",
        "reason",
        RuntimeError::new("unreachable").into(),
    );
    let why = root
        .get_attribute("data-natter-stopped")
        .unwrap_or_default();
    assert!(
        why.starts_with("natter: the chat stopped: trapped: memory access out of bounds"),
        "{why}"
    );
    assert_eq!(
        root.get_attribute("data-natter-failures").as_deref(),
        Some("2")
    );
    assert_eq!(
        status.text_content().as_deref(),
        Some("The chat stopped working: reload the page")
    );
    assert_eq!(status.class_name(), "status bad");

    mine.remove();
    for name in [
        "data-natter-stopped",
        "data-natter-failures",
        "data-natter-error",
    ] {
        root.remove_attribute(name).unwrap();
    }
}

/// The list follows any sequence of line lists: lines come in above and
/// below, change (a new key), go, move, or come twice (drawn once). After
/// each change the lines on screen are exactly the list's, in its order,
/// and a line that stayed is the same element (only moved).
#[wasm_bindgen_test]
async fn the_list_shows_each_list_of_lines_in_order() {
    let root = scratch();
    let line = |n: u64| stored(n, "Bob", &format!("line {n}"));
    let shown = RwSignal::new((0..40).map(line).collect::<Vec<_>>());
    let _mounted = mount_to(root.clone(), move || {
        view! { <MessageList lines=Signal::derive(move || shown.get()) /> }
    });
    // A fixed pseudo-random sequence (an LCG), so a failure repeats.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rand = move |below: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as usize) % below.max(1)
    };
    let mut next = 1000;
    let mut fresh = move || {
        next += 1;
        next
    };
    let by_seq = |root: &Element| -> Vec<(u64, Element)> {
        all(root, "li.msg")
            .into_iter()
            .map(|li| (li.get_attribute("data-seq").unwrap().parse().unwrap(), li))
            .collect()
    };
    settle().await;
    for step in 0..300 {
        let before = by_seq(&root);
        let mut lines: Vec<u64> =
            shown.with_untracked(|l| l.iter().filter_map(|l| l.seq).collect());
        for _ in 0..1 + rand(3) {
            let len = lines.len();
            match rand(8) {
                0 => {
                    let n = 1 + rand(30);
                    let block: Vec<u64> = (0..n).map(|_| fresh()).collect();
                    lines.splice(0..0, block);
                }
                1 => lines.push(fresh()),
                2 if len > 0 => {
                    let at = rand(len);
                    lines[at] = fresh();
                }
                3 if len > 0 => {
                    let at = rand(len);
                    let end = (at + 1 + rand(10)).min(len);
                    lines.drain(at..end);
                }
                4 if len > 1 => {
                    let (a, b) = (rand(len), rand(len));
                    lines.swap(a, b);
                }
                5 if len > 0 => {
                    let moved = lines.remove(rand(len));
                    lines.insert(rand(len), moved);
                }
                6 if len > 0 => {
                    let again = lines[rand(len)];
                    lines.insert(rand(len + 1), again);
                }
                _ => {
                    let at = rand(len + 1);
                    lines.insert(at, fresh());
                }
            }
        }
        shown.set(lines.iter().map(|&n| line(n)).collect());
        settle().await;
        let mut expected = Vec::new();
        for n in lines {
            if !expected.contains(&n) {
                expected.push(n);
            }
        }
        let now = by_seq(&root);
        let seqs: Vec<u64> = now.iter().map(|(n, _)| *n).collect();
        assert_eq!(seqs, expected, "step {step}");
        for (n, li) in &before {
            if let Some((_, kept)) = now.iter().find(|(m, _)| m == n) {
                assert!(kept == li, "step {step}: line {n} was drawn anew");
            }
        }
    }
}

/// Someone else's message can be reported: the button asks why (the
/// browser's prompt), says it is sending, then that it was reported; it
/// keeps saying so as other lines come and go.
#[wasm_bindgen_test]
async fn a_reported_message_says_so() {
    let root = scratch();
    let shown = RwSignal::new(vec![stored(1, "Bob", "buy pills")]);
    let asked = RwSignal::new(None::<(u64, Option<String>)>);
    let on_report = Callback::new(
        move |(seq, note, state): (u64, Option<String>, RwSignal<Reporting>)| {
            asked.set(Some((seq, note)));
            leptos::task::spawn_local(async move {
                settle().await;
                state.set(Reporting::Done);
            });
        },
    );
    let _mounted = mount_to(root.clone(), move || {
        view! { <MessageList lines=Signal::derive(move || shown.get()) on_report /> }
    });
    settle().await;
    // The list is drawn again (a new line) before the report.
    shown.update(|l| l.push(stored(2, "Bob", "sorry")));
    settle().await;
    let window = web_sys::window().unwrap();
    let prompt = js_sys::Function::new_no_args("return 'spam';");
    js_sys::Reflect::set(&window, &"prompt".into(), &prompt).unwrap();
    all(&root, ".report")[0]
        .unchecked_ref::<HtmlElement>()
        .click();
    settle().await;
    settle().await;
    assert_eq!(asked.get_untracked(), Some((1, Some("spam".into()))));
    assert_eq!(text(&root, ".report"), "Reported");
    shown.update(|l| l.push(stored(3, "Bob", "again")));
    settle().await;
    assert_eq!(text(&root, ".report"), "Reported", "{}", root.inner_html());
}

#[wasm_bindgen_test]
async fn a_line_whose_time_no_date_holds_is_drawn_without_it() {
    let root = scratch();
    let mut far = stored(2, "Bob", "from far away");
    far.ts = i64::MAX;
    let mut kept = stored(1, "Bob", "kept");
    kept.ts = 0;
    let lines = vec![kept, far, stored(3, "Bob", "after")];
    let _mounted = mount_to(root.clone(), move || {
        view! { <MessageList lines=Signal::stored(lines) /> }
    });
    settle().await;

    assert_eq!(texts(&root, ".body"), ["kept", "from far away", "after"]);
    let times: Vec<String> = all(&root, "time")
        .iter()
        .map(|t| t.get_attribute("datetime").unwrap_or_default())
        .collect();
    assert_eq!(
        times,
        ["1970-01-01T00:00:00.000Z", "", "2025-11-28T06:40:00.000Z"]
    );
    let page = web_sys::window().unwrap().document().unwrap();
    let page = page.document_element().unwrap();
    let error = page.get_attribute("data-natter-error").unwrap_or_default();
    assert_eq!(
        error,
        format!("a line's time is out of range: s2 at {}", i64::MAX)
    );
    page.remove_attribute("data-natter-error").unwrap();
}
