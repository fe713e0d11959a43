//! Files in the store: the bytes of files attached to messages not yet
//! sent (`blobs`, written in one transaction with the message's outbox
//! entry, and deleted with it), and the index of files kept to open
//! offline (`cached`: the bytes are in the Cache API, the index says how
//! large each is and when it was last opened, for least-recently-used
//! eviction).

use super::{BLOBS, CACHED, Db, done};
use crate::error::ClientError;
use js_sys::{Object, Reflect};
use natter_shared::sync::OutboxEntry;
use rexie::{Direction, TransactionMode};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, IdbTransaction};

/// The bytes of a file waiting to be uploaded, and where its upload is.
#[derive(Debug, Clone)]
pub struct Waiting {
    pub blob: Blob,
    /// The upload's address on the server, once created.
    pub url: Option<String>,
}

/// One file kept for offline use, as the index has it.
#[derive(Debug, Clone, PartialEq)]
pub struct Kept {
    /// The key of the bytes in the Cache API.
    pub key: String,
    pub size: f64,
    /// When it was last shown or opened, ms since the epoch.
    pub used: f64,
}

fn get(obj: &JsValue, field: &str) -> JsValue {
    Reflect::get(obj, &field.into()).unwrap_or(JsValue::UNDEFINED)
}

fn record(fields: &[(&str, JsValue)]) -> Result<JsValue, ClientError> {
    let obj = Object::new();
    for (name, value) in fields {
        Reflect::set(&obj, &(*name).into(), value).map_err(|e| ClientError::from_js(&e))?;
    }
    Ok(obj.into())
}

/// The writes that put a message's file bytes beside its outbox entry.
pub(super) fn blob_writes(
    entry: &OutboxEntry,
    blobs: &[(String, Blob)],
) -> Result<Vec<JsValue>, ClientError> {
    blobs
        .iter()
        .map(|(key, blob)| {
            record(&[
                ("key", key.as_str().into()),
                ("client_id", entry.client_id.to_string().into()),
                ("blob", blob.into()),
            ])
        })
        .collect()
}

/// Deletes the bytes of a message's files (once sent, or given up).
pub(super) fn delete_blobs(tx: &IdbTransaction, entry: &OutboxEntry) -> Result<(), JsValue> {
    let store = tx.object_store(BLOBS)?;
    for file in &entry.files {
        store.delete(&file.key.as_str().into())?;
    }
    Ok(())
}

impl Db {
    /// The bytes of a file waiting to be uploaded, and its upload.
    pub async fn waiting(&self, key: &str) -> Result<Option<Waiting>, ClientError> {
        let tx = self.tx(&[BLOBS], TransactionMode::ReadOnly)?;
        let Some(value) = tx.store(BLOBS)?.get(key.into()).await? else {
            return Ok(None);
        };
        let blob = get(&value, "blob")
            .dyn_into::<Blob>()
            .map_err(|_| ClientError::Corrupt(format!("the file {key} has no bytes")))?;
        Ok(Some(Waiting {
            blob,
            url: get(&value, "url").as_string(),
        }))
    }

    /// Records where a file's upload is on the server (`None`: start over).
    pub async fn set_upload_url(&self, key: &str, url: Option<&str>) -> Result<(), ClientError> {
        let tx = self.tx(&[BLOBS], TransactionMode::ReadWrite)?;
        let store = tx.store(BLOBS)?;
        let Some(value) = store.get(key.into()).await? else {
            return Ok(());
        };
        let url = url.map_or(JsValue::UNDEFINED, JsValue::from);
        Reflect::set(&value, &"url".into(), &url).map_err(|e| ClientError::from_js(&e))?;
        store.put(&value, None).await?;
        done(tx).await
    }

    /// How many files' bytes wait to be uploaded.
    #[cfg(feature = "testing")]
    pub async fn waiting_count(&self) -> Result<u32, ClientError> {
        let tx = self.tx(&[BLOBS], TransactionMode::ReadOnly)?;
        Ok(tx.store(BLOBS)?.count(None).await?)
    }

    /// Notes a file kept for offline use (or opened again), and returns
    /// those to evict so that all kept stay within `cap` bytes, least
    /// recently used first. The one just noted is never among them.
    pub async fn keep(
        &self,
        key: &str,
        size: f64,
        now: f64,
        cap: f64,
    ) -> Result<Vec<String>, ClientError> {
        let tx = self.tx(&[CACHED], TransactionMode::ReadWrite)?;
        let store = tx.store(CACHED)?;
        let kept = record(&[
            ("key", key.into()),
            ("size", size.into()),
            ("used", now.into()),
        ])?;
        store.put(&kept, None).await?;
        let all = store
            .index("used")?
            .scan(None, None, None, Some(Direction::Next))
            .await?;
        let mut total: f64 = all
            .iter()
            .map(|(_, v)| get(v, "size").as_f64().unwrap_or(0.0))
            .sum();
        let mut evict = Vec::new();
        for (_, value) in all {
            if total <= cap {
                break;
            }
            let Some(old) = get(&value, "key").as_string() else {
                continue;
            };
            if old == key {
                continue;
            }
            total -= get(&value, "size").as_f64().unwrap_or(0.0);
            store.delete(old.as_str().into()).await?;
            evict.push(old);
        }
        done(tx).await?;
        Ok(evict)
    }

    /// The index entry of a kept file.
    pub async fn kept(&self, key: &str) -> Result<Option<Kept>, ClientError> {
        let tx = self.tx(&[CACHED], TransactionMode::ReadOnly)?;
        let Some(value) = tx.store(CACHED)?.get(key.into()).await? else {
            return Ok(None);
        };
        Ok(Some(Kept {
            key: key.to_string(),
            size: get(&value, "size").as_f64().unwrap_or(0.0),
            used: get(&value, "used").as_f64().unwrap_or(0.0),
        }))
    }

    /// Forgets a kept file whose bytes are gone.
    pub async fn unkeep(&self, key: &str) -> Result<(), ClientError> {
        let tx = self.tx(&[CACHED], TransactionMode::ReadWrite)?;
        tx.store(CACHED)?.delete(key.into()).await?;
        done(tx).await
    }
}
