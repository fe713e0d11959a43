//! When the widget itself fails (a panic, or a trap out of its wasm), its
//! state is half-changed: the chat stops and says so rather than going on
//! wrong, and the page says why for whoever looks (console, root element).

/// Installs the panic hook and the listener for traps.
pub fn install() {
    std::panic::set_hook(Box::new(on_panic));
    if let Some(window) = web_sys::window() {
        catch_traps(&window);
    }
}

/// The widget's panic hook: a panic leaves the app's state half-changed,
/// so the chat says it stopped instead of going on wrong.
fn on_panic(info: &std::panic::PanicHookInfo<'_>) {
    stop(&info.to_string(), &js_sys::Error::new("").into());
}

/// The page's uncaught errors (`error` and `unhandledrejection` events
/// on `window`): one that came out of the widget's wasm (a
/// trap: out of stack or memory, say) leaves its state as half-changed
/// as a panic does, and no panic hook runs for it; the chat stops the
/// same way. Any other is kept, the first of them, in `data-natter-error`
/// (the widget's page runs only the widget's scripts, so each is a
/// defect worth seeing), and the chat goes on.
pub fn catch_traps(window: &web_sys::EventTarget) {
    use wasm_bindgen::JsCast;
    for (name, field) in [("error", "error"), ("unhandledrejection", "reason")] {
        let listener = wasm_bindgen::closure::Closure::<dyn FnMut(web_sys::Event)>::new(
            move |ev: web_sys::Event| {
                let error = js_sys::Reflect::get(&ev, &field.into()).unwrap_or_default();
                let message = js_sys::Reflect::get(&error, &"message".into())
                    .ok()
                    .and_then(|m| m.as_string())
                    .or_else(|| error.as_string())
                    .unwrap_or_default();
                if error.is_instance_of::<js_sys::WebAssembly::RuntimeError>() {
                    stop(&format!("trapped: {message}"), &error);
                } else {
                    keep_first_error(&format!("{name}: {message}\n{}", stack_of(&error)));
                }
            },
        );
        let _ = window.add_event_listener_with_callback(name, listener.as_ref().unchecked_ref());
        // Lives as long as the page.
        listener.forget();
    }
}

/// Says the chat stopped: in its status line (as text), in the browser's
/// console and on the page's root element (`data-natter-stopped`, with
/// `error`'s stack). The first failure is the one that says why: later
/// ones (a task left mid-poll by the first, woken again) only add to the
/// count kept in `data-natter-failures`.
fn stop(what: &str, error: &wasm_bindgen::JsValue) {
    let why = format!("natter: the chat stopped: {what}\n{}", stack_of(error));
    web_sys::console::error_1(&why.as_str().into());
    let Some(document) = web_sys::window().and_then(|w| w.document()) else {
        return;
    };
    if let Some(root) = document.document_element() {
        let failures = root
            .get_attribute("data-natter-failures")
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0);
        let _ = root.set_attribute("data-natter-failures", &(failures + 1).to_string());
        if failures == 0 {
            let _ = root.set_attribute("data-natter-stopped", &why);
        }
    }
    if let Ok(Some(status)) = document.query_selector(".status") {
        status.set_class_name("status bad");
        status.set_text_content(Some("The chat stopped working: reload the page"));
    }
}

/// An error's stack as the browser gives it (empty if it has none).
fn stack_of(error: &wasm_bindgen::JsValue) -> String {
    js_sys::Reflect::get(error, &"stack".into())
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_default()
}

/// Keeps the page's first uncaught error (not the widget's failure), or
/// a defect the widget noticed and went on past, in `data-natter-error`,
/// and says it in the console.
pub(crate) fn keep_first_error(what: &str) {
    web_sys::console::warn_1(&format!("natter: an uncaught error: {what}").into());
    let root = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.document_element());
    if let Some(root) = root.filter(|r| !r.has_attribute("data-natter-error")) {
        let _ = root.set_attribute("data-natter-error", what);
    }
}
