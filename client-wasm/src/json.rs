//! JSON text, read and written by the browser (`JSON.parse`,
//! `JSON.stringify`) and turned into Rust values by the same decoder the
//! store uses (`serde-wasm-bindgen`). One decoder per type instead of two
//! (a JSON text one and a JS value one) keeps the widget small.

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};

/// Why a JSON text did not become a value.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON at all.
    #[error("not JSON: {0}")]
    Syntax(String),
    /// JSON, but not of the expected shape.
    #[error("{0}")]
    Shape(#[from] serde_wasm_bindgen::Error),
}

/// Reads `text` as a `T`.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, JsonError> {
    let value = js_sys::JSON::parse(text).map_err(|e| {
        JsonError::Syntax(
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
                .unwrap_or_default(),
        )
    })?;
    from_value(value)
}

/// Reads a value the browser already parsed (a `Response`'s `json()`, a
/// channel's message) as a `T`.
pub fn from_value<T: DeserializeOwned>(value: JsValue) -> Result<T, JsonError> {
    Ok(serde_wasm_bindgen::from_value(value)?)
}

/// `value` as JSON text, as `serde_json` would write it (`None` as
/// `null`, maps as objects); `None` when it cannot be (a number past
/// JavaScript's safe integers).
pub fn stringify<T: Serialize>(value: &T) -> Option<String> {
    let js = value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .ok()?;
    js_sys::JSON::stringify(&js).ok()?.as_string()
}
