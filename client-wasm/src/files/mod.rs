//! Files in messages, as the widget shows them: an image's thumbnail that
//! opens full size, a player for audio and video, a chip with the name and
//! size for anything else. Pages cannot send headers from `<img>`, so the
//! widget asks the server (with the user's token) for short-lived signed
//! links, and asks again when they run out. File names are text.
//!
//! Our own files on their way show from the device: an image from its
//! local bytes, anything else as a chip, each with its upload's progress
//! ([`OutgoingFiles`]); [`upload`] sends them.

pub mod keep;
pub mod upload;

use keep::{KEEP_SHOWN_BYTES, Keeper, download, local_url};

use leptos::prelude::*;
use natter_shared::Attachment;
use natter_shared::sync::OutgoingFile;
use serde::Deserialize;
use std::collections::HashMap;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// What the views need to ask for links: the site and the latest token.
#[derive(Clone, Copy)]
pub struct FileAccess {
    pub site: StoredValue<String>,
    pub token: RwSignal<Option<String>>,
}

/// What the views need to show our files on their way.
#[derive(Clone, Copy)]
pub struct Sending {
    /// Bytes of each file (by key) the server holds.
    pub progress: RwSignal<HashMap<String, f64>>,
    /// A local address per image (by key).
    pub previews: RwSignal<HashMap<String, String>>,
}

/// Our files on their way: a preview or a chip, and a progress bar until
/// the upload is done.
#[component]
pub fn OutgoingFiles(files: Vec<OutgoingFile>) -> impl IntoView {
    let sending = use_context::<Sending>();
    (!files.is_empty()).then(|| {
        let items = files
            .into_iter()
            .map(|file| {
                let key = file.key.clone();
                let preview =
                    move || sending.and_then(|s| s.previews.with(|p| p.get(&key).cloned()));
                let key = file.key.clone();
                let size = file.size as f64;
                let done = file.id.is_some();
                let sent = move || {
                    if done {
                        return size;
                    }
                    sending
                        .and_then(|s| s.progress.with(|p| p.get(&key).copied()))
                        .unwrap_or(0.0)
                };
                let label = format!("{} · {}", file.name, size_text(file.size));
                let name = file.name.clone();
                view! {
                    <li class="uploading">
                        {move || match preview() {
                            Some(src) => view! {
                                <img class="preview" src=src alt=name.clone() title=label.clone() />
                            }
                            .into_any(),
                            None => view! {
                                <span class="file">
                                    <span class="file-name">{name.clone()}</span>
                                    <span class="file-size">{size_text(file.size)}</span>
                                </span>
                            }
                            .into_any(),
                        }}
                        // Whole numbers: formatting an f64 would pull in
                        // the float printer, kilobytes of the widget.
                        <progress
                            max=file.size.to_string()
                            value=move || (sent() as u64).to_string()
                            aria-label="Upload"
                        ></progress>
                    </li>
                }
            })
            .collect_view();
        view! { <ul class="files">{items}</ul> }
    })
}

/// Signed links to one file, as `POST /files/ID/links` answers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Links {
    pub url: String,
    #[serde(default)]
    pub thumb: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// The headers that name the caller of the file routes: the user's token
/// (never in a URL) and the site.
pub fn caller_headers(site: &str, token: &str) -> [(&'static str, String); 2] {
    [
        ("Authorization", format!("Bearer {token}")),
        ("X-Natter-Site", site.to_string()),
    ]
}

/// `method url` on the chat server as the user of `token`, with a JSON
/// body if given; `None` when the request could not be made or got no
/// answer.
pub async fn fetch_as_user(
    method: &str,
    url: &str,
    site: &str,
    token: &str,
    json: Option<&str>,
) -> Option<web_sys::Response> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    let headers = web_sys::Headers::new().ok()?;
    for (name, value) in caller_headers(site, token) {
        headers.set(name, &value).ok()?;
    }
    if let Some(json) = json {
        headers.set("Content-Type", "application/json").ok()?;
        init.set_body(&json.into());
    }
    init.set_headers(&headers);
    let request = web_sys::Request::new_with_str_and_init(url, &init).ok()?;
    let window = web_sys::window()?;
    let response = JsFuture::from(window.fetch_with_request(&request))
        .await
        .ok()?;
    response.dyn_into().ok()
}

/// Asks the server for links to file `id`; `None` when it cannot be
/// reached or refuses (the view then shows the name only).
async fn fetch_links(site: &str, token: &str, id: &str) -> Option<Links> {
    let response = fetch_as_user("POST", &format!("/files/{id}/links"), site, token, None).await?;
    if !response.ok() {
        return None;
    }
    let json = JsFuture::from(response.json().ok()?).await.ok()?;
    crate::json::from_value(json).ok()
}

/// A size for people: bytes, KB or MB (integer arithmetic: float
/// formatting would add kilobytes to the widget).
pub fn size_text(bytes: u64) -> String {
    match bytes {
        0..1_000 => format!("{bytes} B"),
        1_000..1_000_000 => format!("{} KB", (bytes + 500) / 1_000),
        _ => {
            let tenths = (bytes + 50_000) / 100_000;
            format!("{}.{} MB", tenths / 10, tenths % 10)
        }
    }
}

/// The files of one message.
#[component]
pub fn Attachments(files: Vec<Attachment>) -> impl IntoView {
    (!files.is_empty()).then(|| {
        view! {
            <ul class="files">
                {files.into_iter().map(|file| view! { <li><AttachmentView file /></li> }).collect_view()}
            </ul>
        }
    })
}

/// One file: what the device kept shows first, without the network;
/// links are fetched when something is missing (and again after they
/// expire), and what is shown is kept ([`keep`]).
#[component]
fn AttachmentView(file: Attachment) -> impl IntoView {
    let links = RwSignal::new(None::<Links>);
    // Local addresses of the kept file and thumbnail.
    let local = RwSignal::new(None::<String>);
    let local_thumb = RwSignal::new(None::<String>);
    // True once the kept copies were looked up.
    let looked = RwSignal::new(false);
    let keeper = use_context::<Keeper>();
    let id = file.id.to_string();
    let has_thumb = file.thumb && file.mime.starts_with("image/");
    let keep_file = file.size <= KEEP_SHOWN_BYTES;
    {
        let (id, mime) = (id.clone(), file.mime.clone());
        leptos::task::spawn_local(async move {
            if let Some(keeper) = keeper {
                if has_thumb && let Some(blob) = keeper.open(&id, true).await {
                    local_thumb.try_set(local_url(&blob, &blob.type_()));
                }
                if let Some(blob) = keeper.open(&id, false).await {
                    local.try_set(local_url(&blob, &mime));
                }
            }
            looked.try_set(true);
        });
    }
    let missing =
        move || (has_thumb && local_thumb.with(Option::is_none)) || local.with(Option::is_none);
    if let Some(access) = use_context::<FileAccess>() {
        let id = id.clone();
        Effect::new(move |_| {
            let Some(token) = access.token.get() else {
                return;
            };
            if !looked.get() || !missing() {
                return;
            }
            let now = (js_sys::Date::now() / 1000.0) as i64;
            if links.with_untracked(|l| l.as_ref().is_some_and(|l| l.expires_at > now + 30)) {
                return;
            }
            let (site, id) = (access.site.get_value(), id.clone());
            leptos::task::spawn_local(async move {
                if let Some(got) = fetch_links(&site, &token, &id).await {
                    links.try_set(Some(got));
                }
            });
        });
    }
    // What is shown is kept.
    if let Some(keeper) = keeper {
        let (id, mime) = (id.clone(), file.mime.clone());
        Effect::new(move |_| {
            let Some(got) = links.get() else { return };
            let (id, mime) = (id.clone(), mime.clone());
            let want_thumb = has_thumb && local_thumb.with_untracked(Option::is_none);
            let want_file = keep_file && local.with_untracked(Option::is_none);
            leptos::task::spawn_local(async move {
                if want_thumb
                    && let Some(url) = &got.thumb
                    && let Some(blob) = download(url).await
                {
                    keeper.keep(&id, true, &blob).await;
                    local_thumb.try_set(local_url(&blob, &blob.type_()));
                }
                if want_file && let Some(blob) = download(&got.url).await {
                    keeper.keep(&id, false, &blob).await;
                    local.try_set(local_url(&blob, &mime));
                }
            });
        });
    }
    on_cleanup(move || {
        for url in [local, local_thumb]
            .iter()
            .filter_map(|s| s.try_get_untracked().flatten())
        {
            let _ = web_sys::Url::revoke_object_url(&url);
        }
    });
    let Attachment {
        name,
        size,
        mime,
        width,
        height,
        thumb,
        ..
    } = file;
    let label = format!("{name} · {}", size_text(size));
    let url = move || {
        local
            .get()
            .or_else(|| links.with(|l| l.as_ref().map(|l| l.url.clone())))
    };
    if mime.starts_with("image/") && thumb {
        let src = move || {
            local_thumb
                .get()
                .or_else(|| links.with(|l| l.as_ref().and_then(|l| l.thumb.clone())))
        };
        // The box keeps the image's shape before it loads.
        let (w, h) = fit(width.unwrap_or(320), height.unwrap_or(240));
        view! {
            <a class="file-image" href=url target="_blank" rel="noopener" title=label.clone()>
                <img src=src alt=name width=w height=h />
            </a>
        }
        .into_any()
    } else if mime.starts_with("audio/") {
        view! {
            <figure class="file-audio">
                <audio controls preload="none" src=url></audio>
                <figcaption>{label}</figcaption>
            </figure>
        }
        .into_any()
    } else if mime.starts_with("video/") {
        view! {
            <figure class="file-video">
                <video controls preload="metadata" src=url></video>
                <figcaption>{label}</figcaption>
            </figure>
        }
        .into_any()
    } else {
        let download = name.clone();
        view! {
            <a class="file" href=url download=download rel="noopener">
                <span class="file-name">{name}</span>
                <span class="file-size">{size_text(size)}</span>
            </a>
        }
        .into_any()
    }
}

/// An image's shown size: at most 240 × 240, in its proportions.
fn fit(w: u32, h: u32) -> (u32, u32) {
    let (w, h) = (w.max(1), h.max(1));
    let scale = (240.0 / f64::from(w.max(h))).min(1.0);
    (
        ((f64::from(w) * scale).round() as u32).max(1),
        ((f64::from(h) * scale).round() as u32).max(1),
    )
}
