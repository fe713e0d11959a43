//! Received files kept on the device, so that what was shown once opens
//! without a network, as a messenger's do. The bytes live in the Cache API
//! (`natter-files`, one entry per file and per thumbnail, under the site
//! and user); the user's database indexes them with their size and when
//! each was last shown, and evicts the least recently used once the total
//! passes the cap (`data-file-cache-mb` on the script tag; 200 MB by
//! default). Files waiting to be sent are not here: their bytes stay with
//! their message in the outbox until the server has them, whatever the cap.

use crate::db::Db;
use js_sys::Array;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, BlobPropertyBag, Cache, Response};

/// The Cache API's cache for files.
const CACHE: &str = "natter-files";
/// The cap when the page names none, in bytes.
pub const DEFAULT_CAP: f64 = 200e6;
/// Files up to this size are kept as soon as they are shown; larger ones
/// open from the server (thumbnails are always kept).
pub const KEEP_SHOWN_BYTES: u64 = 8_000_000;

/// What the views need to keep files: the user's database (once the
/// engine opened it), the site and user, and the cap.
#[derive(Clone, Copy)]
pub struct Keeper {
    pub db: StoredValue<Option<(Db, String)>, LocalStorage>,
    pub cap: f64,
}

impl Keeper {
    /// The cache key of a file or its thumbnail, for this site and user.
    fn key(prefix: &str, id: &str, thumb: bool) -> String {
        let part = if thumb { "/thumb" } else { "" };
        format!("/natter-kept/{prefix}/{id}{part}")
    }

    fn parts(&self) -> Option<(Db, String)> {
        self.db.get_value()
    }

    /// The kept bytes of a file (or its thumbnail), noted as just used.
    pub async fn open(&self, id: &str, thumb: bool) -> Option<Blob> {
        let (db, prefix) = self.parts()?;
        let key = Keeper::key(&prefix, id, thumb);
        let kept = db.kept(&key).await.ok().flatten()?;
        let cache = cache().await?;
        let found = JsFuture::from(cache.match_with_str(&key)).await.ok()?;
        let Ok(response) = found.dyn_into::<Response>() else {
            // The browser dropped it (storage pressure): forget it too.
            let _ = db.unkeep(&key).await;
            return None;
        };
        let blob = JsFuture::from(response.blob().ok()?).await.ok()?;
        let evict = db
            .keep(&key, kept.size, js_sys::Date::now(), self.cap)
            .await
            .unwrap_or_default();
        drop_all(&cache, &evict).await;
        blob.dyn_into().ok()
    }

    /// Keeps the bytes of a file (or its thumbnail); evicts the least
    /// recently used beyond the cap. Failures only mean it is not kept.
    pub async fn keep(&self, id: &str, thumb: bool, blob: &Blob) {
        let Some((db, prefix)) = self.parts() else {
            return;
        };
        let Some(cache) = cache().await else { return };
        let key = Keeper::key(&prefix, id, thumb);
        let Ok(response) = Response::new_with_opt_blob(Some(blob)) else {
            return;
        };
        if JsFuture::from(cache.put_with_str(&key, &response))
            .await
            .is_err()
        {
            return;
        }
        let evict = db
            .keep(&key, blob.size(), js_sys::Date::now(), self.cap)
            .await
            .unwrap_or_default();
        drop_all(&cache, &evict).await;
    }
}

async fn cache() -> Option<Cache> {
    let caches = web_sys::window()?.caches().ok()?;
    JsFuture::from(caches.open(CACHE))
        .await
        .ok()?
        .dyn_into()
        .ok()
}

async fn drop_all(cache: &Cache, keys: &[String]) {
    for key in keys {
        let _ = JsFuture::from(cache.delete_with_str(key)).await;
    }
}

/// Downloads a file through a signed link; `None` when it cannot.
pub async fn download(url: &str) -> Option<Blob> {
    let window = web_sys::window()?;
    let response: Response = JsFuture::from(window.fetch_with_str(url))
        .await
        .ok()?
        .dyn_into()
        .ok()?;
    if !response.ok() {
        return None;
    }
    JsFuture::from(response.blob().ok()?)
        .await
        .ok()?
        .dyn_into()
        .ok()
}

/// A local address for kept bytes. Only inert types keep their type: an
/// HTML or SVG file becomes plain bytes, so opening its address downloads
/// it rather than running it on the chat's origin.
pub fn local_url(blob: &Blob, mime: &str) -> Option<String> {
    if natter_shared::mime::inline(mime) && blob.type_() == mime {
        return web_sys::Url::create_object_url_with_blob(blob).ok();
    }
    let options = BlobPropertyBag::new();
    options.set_type("application/octet-stream");
    let parts = Array::of1(blob);
    let plain = Blob::new_with_blob_sequence_and_options(&parts, &options).ok()?;
    web_sys::Url::create_object_url_with_blob(&plain).ok()
}
