//! Uploading the files of messages in the outbox, in the tab that owns
//! the connection: one file at a time, oldest message first. The bytes
//! come from the store (so a file attached in another tab, or before a
//! reload, uploads too); where each upload stands on the server is stored
//! beside them, so after a cut, a reload or a crash it continues from the
//! offset the server holds. A finished upload is queued as work, so its
//! message goes out in order with everything else.

use super::{Attached, Engine, Work};
use crate::files::upload::{UploadError, Uploader, file_id};
use leptos::prelude::*;
use natter_shared::FileId;
use natter_shared::sync::{OutboxEntry, OutgoingFile};
use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use wasm_bindgen::JsCast;
use web_sys::{Blob, XmlHttpRequest};

/// Longest wait between attempts after the network failed.
const MAX_BACKOFF_MS: u32 = 30_000;

/// The uploads' side of the engine.
#[derive(Default)]
pub(super) struct State {
    /// The files of the message being composed, for the store's
    /// transaction that keeps them with it.
    pub staged: RefCell<Vec<Attached>>,
    /// True while the upload loop runs.
    running: Cell<bool>,
    /// Set to end a wait early (network back, or something to cancel).
    woken: Cell<bool>,
    stopped: Cell<bool>,
    /// The file being sent, and the request that sends it.
    current: RefCell<Option<String>>,
    request: RefCell<Option<XmlHttpRequest>>,
    /// Files done in this run (their work is queued, maybe not handled).
    done: RefCell<HashSet<String>>,
}

impl State {
    /// Ends the current wait between attempts.
    pub fn wake(&self) {
        self.woken.set(true);
    }

    /// Stops uploading (the engine closes).
    pub fn stop(&self) {
        self.stopped.set(true);
        self.abort();
    }

    fn abort(&self) {
        if let Some(xhr) = self.request.borrow_mut().take() {
            // Aborting an ended request does nothing.
            let _ = xhr.abort();
        }
    }
}

impl Engine {
    fn uploader(&self) -> Uploader {
        Uploader {
            site: self.0.site.clone(),
            token: self.0.token.borrow().clone(),
        }
    }

    /// Starts the upload loop unless it runs, in the owner tab.
    pub(super) fn upload(&self) {
        let state = &self.0.uploads;
        if self.0.closed.get() || self.0.link.borrow().is_none() || state.running.replace(true) {
            return;
        }
        state.done.borrow_mut().clear();
        let engine = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            engine.upload_all().await;
            engine.0.uploads.running.set(false);
        });
    }

    async fn upload_all(&self) {
        let state = &self.0.uploads;
        let mut backoff = 1_000;
        while !state.stopped.get() {
            let next = self.0.view.chat.with_untracked(|c| {
                c.uploads()
                    .into_iter()
                    .find(|(_, f)| !state.done.borrow().contains(&f.key))
            });
            let Some((client_id, file)) = next else { break };
            *state.current.borrow_mut() = Some(file.key.clone());
            let outcome = self.upload_one(&file).await;
            state.current.borrow_mut().take();
            match outcome {
                Ok(id) => {
                    backoff = 1_000;
                    state.done.borrow_mut().insert(file.key.clone());
                    self.push(Work::Uploaded(client_id, file.key, id));
                }
                Err(UploadError::Refused { code, message }) => {
                    state.done.borrow_mut().insert(file.key.clone());
                    self.push(Work::UploadRefused(client_id, code, message));
                }
                Err(UploadError::Cancelled) => {
                    state.done.borrow_mut().insert(file.key.clone());
                }
                Err(err) => {
                    tracing_log(&format!("upload of {} paused: {err}", file.key));
                    self.pause(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF_MS);
                }
            }
        }
    }

    /// Waits `ms`, or less if woken (the network came back).
    async fn pause(&self, ms: u32) {
        let state = &self.0.uploads;
        state.woken.set(false);
        let mut left = ms;
        while left > 0 && !state.woken.get() && !state.stopped.get() {
            let step = left.min(250);
            sleep(step).await;
            left -= step;
        }
    }

    /// Uploads one file, continuing where the server stands.
    async fn upload_one(&self, file: &OutgoingFile) -> Result<FileId, UploadError> {
        let db = &self.0.db;
        let stored = db
            .waiting(&file.key)
            .await
            .map_err(|e| UploadError::Refused {
                code: natter_shared::ErrorCode::InvalidInput,
                message: e.to_string(),
            })?;
        let Some(waiting) = stored else {
            return Err(UploadError::Refused {
                code: natter_shared::ErrorCode::InvalidInput,
                message: "the file is no longer on this device".into(),
            });
        };
        let finished = |at: &str| {
            file_id(at).ok_or_else(|| UploadError::Interrupted(format!("no file id in {at}")))
        };
        let mut url = waiting.url;
        let cancelled = || self.0.uploads.done.borrow().contains(&file.key);
        loop {
            // Cancelled meanwhile (here or in another tab): a request
            // already out is aborted; none other is begun.
            if cancelled() {
                return Err(UploadError::Cancelled);
            }
            let uploader = self.uploader();
            let at = match &url {
                Some(at) => at.clone(),
                None => {
                    let at = uploader.create(file).await?;
                    // Losing this only costs starting over.
                    let _ = db.set_upload_url(&file.key, Some(&at)).await;
                    url = Some(at.clone());
                    at
                }
            };
            let offset = match uploader.offset(&at).await {
                Ok(offset) => offset,
                Err(UploadError::Gone) => {
                    url = self.start_over(&file.key).await;
                    continue;
                }
                Err(err) => return Err(err),
            };
            self.progress(&file.key, offset as f64);
            if offset >= file.size {
                return finished(&at);
            }
            let rest = slice(&waiting.blob, offset)?;
            let progress = self.0.view.progress;
            let key = file.key.clone();
            let sent = uploader
                .send(
                    &at,
                    &rest,
                    offset,
                    move |n| {
                        progress.update(|p| {
                            p.insert(key.clone(), offset as f64 + n);
                        })
                    },
                    &self.0.uploads.request,
                )
                .await;
            match sent {
                Ok(at_end) if at_end >= file.size => return finished(&at),
                // Less than all: ask the server where it stands.
                Ok(_) => {}
                Err(UploadError::Gone) => url = self.start_over(&file.key).await,
                Err(err) => return Err(err),
            }
        }
    }

    /// The server no longer knows a file's upload (expired, or removed):
    /// forgets its address, so the next attempt creates a new one.
    async fn start_over(&self, key: &str) -> Option<String> {
        // Failing to forget it only costs asking the server again.
        let _ = self.0.db.set_upload_url(key, None).await;
        None
    }

    fn progress(&self, key: &str, at: f64) {
        self.0.view.progress.update(|p| {
            p.insert(key.to_string(), at);
        });
    }

    /// A message is cancelled: stops its file's request if it is being
    /// sent, and returns the uploads to drop on the server (read before
    /// the store forgets them).
    pub(super) async fn cancel_uploads(&self, entry: &OutboxEntry) -> Vec<String> {
        let state = &self.0.uploads;
        let sending = state.current.borrow().clone();
        if sending.is_some_and(|k| entry.files.iter().any(|f| f.key == k)) {
            state.abort();
        }
        let mut urls = Vec::new();
        for file in entry.files.iter().filter(|f| f.id.is_none()) {
            state.done.borrow_mut().insert(file.key.clone());
            if let Ok(Some(waiting)) = self.0.db.waiting(&file.key).await
                && let Some(url) = waiting.url
            {
                urls.push(url);
            }
        }
        self.forget_previews(entry);
        urls
    }

    /// Drops cancelled uploads on the server, in the background.
    pub(super) fn finish_cancel(&self, urls: Vec<String>) {
        if urls.is_empty() {
            return;
        }
        let uploader = self.uploader();
        wasm_bindgen_futures::spawn_local(async move {
            for url in urls {
                uploader.cancel(&url).await;
            }
        });
    }

    /// Local addresses to preview attached images by.
    pub(super) fn preview(&self, attached: &[Attached]) {
        for (file, blob) in attached {
            self.add_preview(file, blob);
        }
    }

    fn add_preview(&self, file: &OutgoingFile, blob: &Blob) {
        if !natter_shared::mime::inline(&file.mime) || !file.mime.starts_with("image/") {
            return;
        }
        if self
            .0
            .view
            .previews
            .with_untracked(|p| p.contains_key(&file.key))
        {
            return;
        }
        if let Ok(url) = web_sys::Url::create_object_url_with_blob(blob) {
            self.0.view.previews.update(|p| {
                p.insert(file.key.clone(), url);
            });
        }
    }

    /// Previews for the outbox's images (after a reload).
    pub(super) async fn restore_previews(&self) {
        let files: Vec<OutgoingFile> = self
            .0
            .view
            .chat
            .with_untracked(|c| c.uploads().into_iter().map(|(_, f)| f).collect());
        for file in files {
            if let Ok(Some(waiting)) = self.0.db.waiting(&file.key).await {
                self.add_preview(&file, &waiting.blob);
            }
        }
    }

    fn forget_previews(&self, entry: &OutboxEntry) {
        self.0.view.previews.update(|p| {
            for file in &entry.files {
                if let Some(url) = p.remove(file.key.as_str()) {
                    let _ = web_sys::Url::revoke_object_url(&url);
                }
            }
        });
    }
}

/// The bytes of `blob` from `offset` on.
fn slice(blob: &Blob, offset: u64) -> Result<Blob, UploadError> {
    if offset == 0 {
        return Ok(blob.clone());
    }
    blob.slice_with_f64(offset as f64)
        .map_err(|e| UploadError::Interrupted(format!("{e:?}")))
}

pub(super) async fn sleep(ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                resolve.unchecked_ref(),
                ms as i32,
            );
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

fn tracing_log(message: &str) {
    web_sys::console::info_1(&message.into());
}
