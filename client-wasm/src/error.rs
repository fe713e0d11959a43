//! The widget's errors: what can go wrong in the browser around the chat
//! (storage, locks, channels), each with a sentence a person can read,
//! since most of them end up on screen.

use wasm_bindgen::{JsCast, JsValue};

/// Something the browser or its storage refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// No IndexedDB here (some private modes, or a browser without it).
    #[error("This browser does not let the chat keep messages on this device.")]
    NoStorage,
    /// The origin's storage quota is used up: the write did not happen.
    #[error(
        "This device is out of storage space for the chat: the message was not saved. Free some space and try again."
    )]
    Quota,
    /// Another IndexedDB failure.
    #[error("Saving on this device failed: {0}")]
    Storage(String),
    /// A stored record did not decode, or a value did not encode.
    #[error("A saved record could not be read: {0}")]
    Corrupt(String),
}

impl ClientError {
    /// Classifies a failure reported as text (rexie's errors carry the
    /// browser's exception only in their message).
    pub fn storage(text: impl Into<String>) -> Self {
        let text = text.into();
        if text.contains("QuotaExceeded") {
            ClientError::Quota
        } else {
            ClientError::Storage(text)
        }
    }

    /// Classifies an exception thrown or reported by the browser.
    pub fn from_js(value: &JsValue) -> Self {
        if let Some(ex) = value.dyn_ref::<web_sys::DomException>() {
            if ex.name() == "QuotaExceededError" {
                return ClientError::Quota;
            }
            return ClientError::Storage(format!("{}: {}", ex.name(), ex.message()));
        }
        ClientError::storage(value.as_string().unwrap_or_else(|| format!("{value:?}")))
    }
}

impl From<rexie::Error> for ClientError {
    fn from(err: rexie::Error) -> Self {
        // The display alone says "idb error"; the debug form names the
        // browser's exception (e.g. QuotaExceededError).
        ClientError::storage(format!("{err:?}"))
    }
}

impl From<serde_wasm_bindgen::Error> for ClientError {
    fn from(err: serde_wasm_bindgen::Error) -> Self {
        ClientError::Corrupt(err.to_string())
    }
}
