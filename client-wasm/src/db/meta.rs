//! The `meta` store: whose database this is, its schema version, the
//! room the person left open, and the digest of the last sign-in token
//! the server accepted for it.

use super::{Db, META, META_OPEN, META_USER, done};
use crate::error::ClientError;
use natter_shared::{RoomId, UserId};
use rexie::TransactionMode;
use wasm_bindgen::JsValue;

/// Key of the SHA-256 digest (hex) of the last token the server accepted
/// for this database (see [`crate::trust`]).
const META_VERIFIED: &str = "verified";

impl Db {
    /// The digest of the last token the server accepted, if any.
    pub async fn verified(&self) -> Result<Option<String>, ClientError> {
        let tx = self.tx(&[META], TransactionMode::ReadOnly)?;
        let value = tx.store(META)?.get(META_VERIFIED.into()).await?;
        Ok(value.and_then(|v| v.as_string()))
    }

    /// Remembers the digest of a token the server accepted.
    pub async fn set_verified(&self, digest: &str) -> Result<(), ClientError> {
        self.put_meta(META_VERIFIED, &JsValue::from(digest)).await
    }

    /// The user this database belongs to, once known.
    #[cfg(feature = "testing")]
    pub async fn user(&self) -> Result<Option<UserId>, ClientError> {
        let tx = self.tx(&[META], TransactionMode::ReadOnly)?;
        let value = tx.store(META)?.get(META_USER.into()).await?;
        value
            .and_then(|v| v.as_string())
            .map(|s| UserId::parse(s).map_err(|e| ClientError::Corrupt(e.to_string())))
            .transpose()
    }

    /// Records the user this database belongs to.
    pub async fn set_user(&self, user: &UserId) -> Result<(), ClientError> {
        self.put_meta(META_USER, &JsValue::from(user.as_str()))
            .await
    }

    /// The room the person last had open, if they left one open.
    pub async fn open_room(&self) -> Result<Option<RoomId>, ClientError> {
        let tx = self.tx(&[META], TransactionMode::ReadOnly)?;
        let value = tx.store(META)?.get(META_OPEN.into()).await?;
        // A value that is not a room id is as good as none.
        Ok(value
            .and_then(|v| v.as_string())
            .and_then(|s| RoomId::parse(s).ok()))
    }

    /// Remembers the room the person has open (`None`: the room list).
    pub async fn set_open_room(&self, room: Option<&RoomId>) -> Result<(), ClientError> {
        match room {
            Some(room) => {
                self.put_meta(META_OPEN, &JsValue::from(room.as_str()))
                    .await
            }
            None => {
                let tx = self.tx(&[META], TransactionMode::ReadWrite)?;
                tx.store(META)?.delete(META_OPEN.into()).await?;
                done(tx).await
            }
        }
    }

    pub(super) async fn put_meta(&self, key: &str, value: &JsValue) -> Result<(), ClientError> {
        let tx = self.tx(&[META], TransactionMode::ReadWrite)?;
        tx.store(META)?.put(value, Some(&key.into())).await?;
        done(tx).await
    }
}
