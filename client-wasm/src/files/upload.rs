//! Uploads from the browser, as tus 1.0 says (the server's `/files`):
//! `POST` announces the file, `HEAD` asks how much of it the server holds,
//! `PATCH` sends the rest from there. The bytes go with `XMLHttpRequest`,
//! the one browser API that reports upload progress and can be aborted;
//! the small requests go with `fetch`. The user's token travels in a
//! header, never in a URL.

use js_sys::{Function, Promise};
use natter_shared::ErrorCode;
use natter_shared::api::ErrorBody;
use natter_shared::sync::OutgoingFile;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, Headers, Request, RequestInit, Response, XmlHttpRequest};

const TUS: &str = "1.0.0";

/// Who uploads: the site and the user's current token.
#[derive(Debug, Clone)]
pub struct Uploader {
    pub site: String,
    pub token: String,
}

/// Why an upload step did not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    /// The server refused the file for good (size, type, quota).
    #[error("{message}")]
    Refused { code: ErrorCode, message: String },
    /// The server no longer knows the upload (expired or removed): it
    /// starts over.
    #[error("the upload is gone from the server")]
    Gone,
    /// No answer, or one to try again later (network, restart, overload).
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    /// The person cancelled it.
    #[error("cancelled")]
    Cancelled,
}

impl UploadError {
    fn from_js(err: JsValue) -> Self {
        UploadError::Interrupted(err.as_string().unwrap_or_else(|| format!("{err:?}")))
    }
}

impl Uploader {
    /// The caller's headers and the protocol's version: on every request.
    fn headers(&self) -> impl Iterator<Item = (&'static str, String)> {
        super::caller_headers(&self.site, &self.token)
            .into_iter()
            .chain([("Tus-Resumable", TUS.to_string())])
    }

    async fn fetch(
        &self,
        method: &str,
        url: &str,
        extra: &[(&str, &str)],
    ) -> Result<Response, UploadError> {
        let init = RequestInit::new();
        init.set_method(method);
        let headers = Headers::new().map_err(UploadError::from_js)?;
        for (name, value) in self.headers() {
            headers.set(name, &value).map_err(UploadError::from_js)?;
        }
        for (name, value) in extra {
            headers.set(name, value).map_err(UploadError::from_js)?;
        }
        init.set_headers(&headers);
        let request = Request::new_with_str_and_init(url, &init).map_err(UploadError::from_js)?;
        let window = web_sys::window().ok_or(UploadError::Interrupted("no window".into()))?;
        let response = JsFuture::from(window.fetch_with_request(&request))
            .await
            .map_err(UploadError::from_js)?;
        response.dyn_into().map_err(UploadError::from_js)
    }

    /// Announces `file`; returns the upload's address.
    pub async fn create(&self, file: &OutgoingFile) -> Result<String, UploadError> {
        let mut metadata = format!("filename {}", base64(&file.name)?);
        if !file.mime.is_empty() {
            metadata.push_str(&format!(",filetype {}", base64(&file.mime)?));
        }
        let length = file.size.to_string();
        let response = self
            .fetch(
                "POST",
                "/files",
                &[("Upload-Length", &length), ("Upload-Metadata", &metadata)],
            )
            .await?;
        if response.status() != 201 {
            return Err(refusal(&response).await);
        }
        let location = response.headers().get("Location").ok().flatten();
        location.ok_or_else(|| UploadError::Interrupted("the server gave no Location".into()))
    }

    /// How many bytes of the upload at `url` the server holds.
    pub async fn offset(&self, url: &str) -> Result<u64, UploadError> {
        let response = self.fetch("HEAD", url, &[]).await?;
        match response.status() {
            200 | 204 => offset_of(response.headers().get("Upload-Offset").ok().flatten()),
            404 | 410 => Err(UploadError::Gone),
            _ => Err(refusal(&response).await),
        }
    }

    /// Tells the server to drop the upload at `url`; failures only leave
    /// it for the server's sweep of abandoned uploads.
    pub async fn cancel(&self, url: &str) {
        let _ = self.fetch("DELETE", url, &[]).await;
    }

    /// Sends `blob` (the file from `offset` on) to the upload at `url`;
    /// `progress` hears how many bytes of this request went out. Returns
    /// the server's new offset. `abort` is filled with what cancels it.
    pub async fn send(
        &self,
        url: &str,
        blob: &Blob,
        offset: u64,
        progress: impl Fn(f64) + 'static,
        abort: &RefCell<Option<XmlHttpRequest>>,
    ) -> Result<u64, UploadError> {
        let xhr = XmlHttpRequest::new().map_err(UploadError::from_js)?;
        xhr.open("PATCH", url).map_err(UploadError::from_js)?;
        let this_request = [
            ("Upload-Offset", offset.to_string()),
            (
                "Content-Type",
                "application/offset+octet-stream".to_string(),
            ),
        ];
        for (name, value) in self.headers().chain(this_request) {
            xhr.set_request_header(name, &value)
                .map_err(UploadError::from_js)?;
        }
        let on_progress =
            Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |ev: web_sys::ProgressEvent| {
                progress(ev.loaded())
            });
        let upload = xhr.upload().map_err(UploadError::from_js)?;
        upload.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
        let outcome = Rc::new(RefCell::new(None::<&'static str>));
        let mut held = Vec::new();
        let promise = Promise::new(&mut |resolve: Function, _reject: Function| {
            for (event, name) in [
                ("load", "load"),
                ("error", "error"),
                ("abort", "abort"),
                ("timeout", "error"),
            ] {
                let (resolve, outcome) = (resolve.clone(), outcome.clone());
                let done = Closure::<dyn FnMut()>::new(move || {
                    outcome.borrow_mut().get_or_insert(name);
                    let _ = resolve.call0(&JsValue::UNDEFINED);
                });
                let _ = xhr.add_event_listener_with_callback(event, done.as_ref().unchecked_ref());
                held.push(done);
            }
        });
        *abort.borrow_mut() = Some(xhr.clone());
        let sent = xhr.send_with_opt_blob(Some(blob));
        if let Err(err) = sent {
            abort.borrow_mut().take();
            return Err(UploadError::from_js(err));
        }
        let _ = JsFuture::from(promise).await;
        abort.borrow_mut().take();
        upload.set_onprogress(None);
        drop(held);
        drop(on_progress);
        let outcome = *outcome.borrow();
        match outcome {
            Some("load") => {}
            Some("abort") => return Err(UploadError::Cancelled),
            _ => return Err(UploadError::Interrupted("the connection was cut".into())),
        }
        let status = xhr.status().unwrap_or(0);
        match status {
            204 | 200 => offset_of(xhr.get_response_header("Upload-Offset").ok().flatten()),
            404 | 410 => Err(UploadError::Gone),
            // Another request moved the offset (or the last answer was
            // lost): ask again where it stands.
            409 => Err(UploadError::Interrupted("the offset moved".into())),
            _ => {
                let text = xhr.response_text().ok().flatten().unwrap_or_default();
                Err(classify(status, &text))
            }
        }
    }
}

/// Base64 of a text's UTF-8 bytes, by the browser's `btoa` (which takes
/// one character per byte).
fn base64(text: &str) -> Result<String, UploadError> {
    let bytes: String = text.bytes().map(char::from).collect();
    web_sys::window()
        .ok_or(UploadError::Interrupted("no window".into()))?
        .btoa(&bytes)
        .map_err(UploadError::from_js)
}

/// The file id in an upload's address (`/files/ID`).
pub fn file_id(url: &str) -> Option<natter_shared::FileId> {
    let id = url.trim_end_matches('/').rsplit('/').next()?;
    natter_shared::FileId::parse(id).ok()
}

/// The server's offset, from its `Upload-Offset` header.
fn offset_of(header: Option<String>) -> Result<u64, UploadError> {
    header
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| UploadError::Interrupted("the server gave no Upload-Offset".into()))
}

async fn refusal(response: &Response) -> UploadError {
    let text = match response.text() {
        Ok(promise) => JsFuture::from(promise)
            .await
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    classify(response.status(), &text)
}

/// What an HTTP error means for an upload: the server's own refusals (4xx
/// with its JSON body) are for good, except a rate limit and a token that
/// ran out (the page hands a fresh one); everything else is tried again.
fn classify(status: u16, body: &str) -> UploadError {
    let parsed = crate::json::parse::<ErrorBody>(body).ok();
    let later = |code: ErrorCode| {
        matches!(
            code,
            ErrorCode::TooManyRequests | ErrorCode::TokenExpired | ErrorCode::TokenNotYetValid
        )
    };
    match (status, parsed) {
        (400..=499, Some(ErrorBody { error })) if !later(error.code) => UploadError::Refused {
            code: error.code,
            message: error.message,
        },
        (_, Some(ErrorBody { error })) => UploadError::Interrupted(error.message),
        _ => UploadError::Interrupted(format!("HTTP {status}")),
    }
}
