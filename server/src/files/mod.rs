//! Files in messages: resumable uploads over HTTP (tus 1.0: core,
//! creation, termination, expiration), the bytes behind `object_store` (a
//! directory by default, shared by the nodes of a site), downloads for
//! the members of the room a file was posted in, and a sweep of uploads
//! abandoned half-way.
//!
//! An upload's bytes arrive as parts (`uploads/ID/START-END`), each stored
//! before the upload's offset moves past it, so a request cut off keeps
//! what arrived and the next one continues from there, on any node. When
//! the last byte is in, [`finish`] sniffs the type, checks the site's
//! allow-list, strips images of their metadata and writes `files/ID`; a
//! thumbnail (`thumbs/ID`) follows in the background.

pub mod auth;
mod download;
mod finish;
pub mod kinds;
pub mod links;
mod range;
mod sweep;
mod upload;

use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use auth::Caller;
pub use sweep::spawn_sweep;

/// The file store: where the bytes of uploads, files and thumbnails live.
#[derive(Clone)]
pub struct Files {
    store: Arc<dyn ObjectStore>,
    /// Uploads being finished on this node (joined, checked, cleaned):
    /// one at a time each, however many requests ask.
    finishing: Arc<Mutex<HashSet<natter_shared::FileId>>>,
}

/// An upload being finished; the mark goes when it is dropped.
pub struct Finishing {
    set: Arc<Mutex<HashSet<natter_shared::FileId>>>,
    id: natter_shared::FileId,
}

impl Drop for Finishing {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.id);
    }
}

/// Why the file store failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("file store: {0}")]
    Store(#[from] object_store::Error),
    #[error("file store: {0}")]
    Other(String),
    #[error("file store directory {path}: {source}")]
    Dir {
        path: String,
        source: std::io::Error,
    },
}

impl Files {
    /// The store in directory `dir` (created if missing).
    pub fn in_dir(dir: &Path) -> Result<Files, FilesError> {
        std::fs::create_dir_all(dir).map_err(|source| FilesError::Dir {
            path: dir.display().to_string(),
            source,
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)?.with_automatic_cleanup(true);
        Ok(Files::with_store(Arc::new(store)))
    }

    /// The store a URL names: `s3://BUCKET[/PREFIX]` (configured from the
    /// `AWS_*` environment) or `file:///DIR`.
    pub fn at_url(url: &str) -> Result<Files, FilesError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| FilesError::Other(format!("--files-url {url:?}: {e}")))?;
        let prefix = parsed.path().trim_matches('/').to_string();
        let store: Arc<dyn ObjectStore> = match parsed.scheme() {
            "s3" => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url)
                    .build()?,
            ),
            "file" => return Files::in_dir(Path::new(parsed.path())),
            other => {
                return Err(FilesError::Other(format!(
                    "--files-url {url:?}: the scheme {other:?} is not supported (s3:// or file://)"
                )));
            }
        };
        Ok(Files::with_store(if prefix.is_empty() {
            store
        } else {
            Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
        }))
    }

    /// Any other `object_store` backend (S3 and compatible stores).
    pub fn with_store(store: Arc<dyn ObjectStore>) -> Files {
        Files {
            store,
            finishing: Arc::default(),
        }
    }

    /// Marks an upload as being finished; `None` while another request
    /// finishes it.
    pub fn begin_finish(&self, id: &natter_shared::FileId) -> Option<Finishing> {
        let mut set = self
            .finishing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        set.insert(id.clone()).then(|| Finishing {
            set: Arc::clone(&self.finishing),
            id: id.clone(),
        })
    }

    fn original(id: &natter_shared::FileId) -> Key {
        Key::from(format!("files/{id}"))
    }

    fn thumb(id: &natter_shared::FileId) -> Key {
        Key::from(format!("thumbs/{id}"))
    }

    fn parts(id: &natter_shared::FileId) -> Key {
        Key::from(format!("uploads/{id}"))
    }

    fn part(id: &natter_shared::FileId, start: u64, end: u64) -> Key {
        Key::from(format!("uploads/{id}/{start:020}-{end:020}"))
    }

    /// Deletes everything stored for a file: parts, original, thumbnail.
    pub async fn remove(&self, id: &natter_shared::FileId) {
        finish::remove_parts(self, id).await;
        for key in [Files::original(id), Files::thumb(id)] {
            match self.store.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => tracing::warn!(file = %id, error = %err, "file bytes not deleted"),
            }
        }
    }
}

/// Stores a whole file for `user` at once, as a finished upload (the
/// demo's sample files): the same checks and processing as an upload.
pub async fn store_whole(
    state: &AppState,
    site: &natter_shared::SiteId,
    user: &natter_shared::UserId,
    name: &str,
    bytes: bytes::Bytes,
) -> Result<natter_shared::FileId, crate::error::ApiError> {
    let id: natter_shared::FileId = crate::store::new_id::<natter_shared::FileId, _>("f")?;
    let now = crate::store::now_ms();
    let len = bytes.len() as u64;
    state
        .store
        .create_upload(&id, site, user, &upload::clean_name(name), len, now)
        .await?;
    state
        .files
        .store
        .put(
            &Files::part(&id, 0, len),
            object_store::PutPayload::from(bytes),
        )
        .await
        .map_err(|e| upload::internal(&e))?;
    state.store.advance_upload(&id, 0, len, now).await?;
    let file = state
        .store
        .file(&id)
        .await?
        .ok_or_else(|| upload::internal(&"a file just stored is gone"))?;
    finish::finish(state, &file).await?;
    Ok(id)
}

/// The file types `site` takes: its own list, else the server's.
pub fn site_types(state: &AppState, site: &crate::store::Site) -> Vec<String> {
    site.file_types
        .as_deref()
        .and_then(|list| kinds::parse_list(list).ok())
        .unwrap_or_else(|| state.config.files.file_types.0.clone())
}

/// The routes under `/files`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/files", post(upload::create).options(upload::options))
        .route(
            "/files/{id}",
            get(download::original)
                .head(upload::head)
                .patch(upload::patch)
                .delete(upload::terminate),
        )
        .route("/files/{id}/thumb", get(download::thumb))
        .route("/files/{id}/links", post(download::links))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_finished_by_one_request_at_a_time() {
        let files = Files::with_store(Arc::new(object_store::memory::InMemory::new()));
        let (a, b) = (
            natter_shared::FileId::parse("fa").unwrap(),
            natter_shared::FileId::parse("fb").unwrap(),
        );
        let first = files
            .begin_finish(&a)
            .expect("the first request finishes it");
        assert!(files.begin_finish(&a).is_none(), "a second one waits");
        assert!(files.begin_finish(&b).is_some(), "others are not held up");
        drop(first);
        assert!(files.begin_finish(&a).is_some(), "free again once done");
    }
}
