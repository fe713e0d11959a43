//! Read markers on their way to the database. People move their markers
//! many times a second between them; writing each one would cost a
//! commit per frame. Markers are noted here instead (a newer one for the
//! same member replaces the older), and written every `--read-flush-ms`
//! in one transaction, and once more on shutdown.
//!
//! What is noted but not yet written is already shown: the marker goes
//! out to the member's devices and the room at once (`Broker::read`). A
//! sync of the same user on this node writes their pending markers
//! first, so the counts it reads are right.

use crate::store::{Store, StoreError};
use natter_shared::{RoomId, Seq, SiteId, UserId};
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Markers noted per user, by room.
/// Markers to write: by site, then user, then room. Nested so that noting
/// one more marker of a known site or user clones none of their ids.
type Pending = HashMap<SiteId, HashMap<UserId, BTreeMap<RoomId, Seq>>>;

/// The value under `key`, made empty first if there is none: the key is
/// cloned only then.
fn slot<'m, K: Eq + Hash + Clone, V: Default>(
    map: &'m mut HashMap<K, V>,
    key: &K,
) -> Option<&'m mut V> {
    if !map.contains_key(key) {
        map.insert(key.clone(), V::default());
    }
    map.get_mut(key)
}

/// The markers waiting to be written; cheap to clone.
#[derive(Clone)]
pub struct ReadMarkers {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    pending: Mutex<Pending>,
    /// Held while writing, so a caller who waits for its markers to be
    /// written sees them committed, whoever took them.
    writing: tokio::sync::Mutex<()>,
}

impl ReadMarkers {
    /// Markers written to `store`.
    pub fn new(store: Store) -> Self {
        ReadMarkers {
            inner: Arc::new(Inner {
                store,
                pending: Mutex::new(HashMap::new()),
                writing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.inner.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a marker to write (the higher one wins).
    pub fn note(&self, site: &SiteId, room: &RoomId, user: &UserId, seq: Seq) {
        let mut pending = self.pending();
        let Some(rooms) = slot(&mut pending, site).and_then(|users| slot(users, user)) else {
            return;
        };
        match rooms.get_mut(room) {
            Some(marker) => *marker = (*marker).max(seq),
            None => {
                rooms.insert(room.clone(), seq);
            }
        }
    }

    /// True when markers of this user wait to be written.
    pub fn has_pending(&self, site: &SiteId, user: &UserId) -> bool {
        self.pending()
            .get(site)
            .is_some_and(|users| users.contains_key(user))
    }

    /// Writes every marker noted so far. On failure they are noted again,
    /// for the next try.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _writing = self.inner.writing.lock().await;
        let taken = std::mem::take(&mut *self.pending());
        if taken.is_empty() {
            return Ok(());
        }
        let markers: Vec<(RoomId, UserId, Seq)> = taken
            .values()
            .flat_map(|users| users.iter())
            .flat_map(|(user, rooms)| {
                rooms
                    .iter()
                    .map(|(room, seq)| (room.clone(), user.clone(), *seq))
            })
            .collect();
        let written = self.inner.store.advance_read_markers(&markers).await;
        if written.is_err() {
            for (site, users) in taken {
                for (user, rooms) in users {
                    for (room, seq) in rooms {
                        self.note(&site, &room, &user, seq);
                    }
                }
            }
        }
        written
    }

    /// Writes the markers every `every` until `stop`, then once more.
    pub fn spawn(&self, every: Duration, stop: CancellationToken) -> JoinHandle<()> {
        let markers = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.cancelled() => break,
                }
                if let Err(err) = markers.flush().await {
                    tracing::warn!(error = %err, "could not write read markers; will retry");
                }
            }
            if let Err(err) = markers.flush().await {
                tracing::error!(error = %err, "could not write the last read markers");
            }
        })
    }
}
