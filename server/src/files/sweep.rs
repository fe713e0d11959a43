//! Uploads abandoned half-way (nothing received for
//! `--upload-expiry-secs`) are deleted, parts and row, by a sweep that
//! every node runs; deleting twice is harmless.

use super::finish::remove_parts;
use crate::state::AppState;
use crate::store::now_ms;
use std::time::Duration;

/// Starts the sweep; it ends with the server.
pub fn spawn_sweep(state: AppState) -> tokio::task::JoinHandle<()> {
    let expiry = Duration::from_secs(state.config.files.upload_expiry_secs.max(1));
    let every = (expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(600));
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = state.shutdown.cancelled() => return,
            }
            let before = now_ms() - i64::try_from(expiry.as_millis()).unwrap_or(i64::MAX);
            match state.store.stale_uploads(before).await {
                Ok(ids) => {
                    for id in ids {
                        remove_parts(&state.files, &id).await;
                        if let Err(err) = state.store.delete_file(&id).await {
                            tracing::warn!(file = %id, error = %err, "abandoned upload kept");
                        } else {
                            crate::metrics::inc(&state.metrics.uploads_abandoned);
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "upload sweep failed"),
            }
        }
    })
}
