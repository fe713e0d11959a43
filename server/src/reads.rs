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

use crate::maps::FastMap;
use crate::store::{Store, StoreError};
use natter_shared::{RoomId, Seq, SiteId, UserId};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How many writes a marker is kept after it was last noted. A member's
/// entries stay while they keep reading, so that noting their next
/// marker allocates nothing; then they go.
const KEEP_WRITES: u64 = 60;

/// A member's marker as noted.
struct Mark {
    seq: Seq,
    /// Noted since the last write took it.
    dirty: bool,
    /// The number of the write it was last noted before.
    noted: u64,
}

/// One user's markers, by room.
type UserMarks = FastMap<RoomId, Mark>;

/// How many of a user's markers wait for a write.
fn dirty(marks: &UserMarks) -> usize {
    marks.values().filter(|mark| mark.dirty).count()
}

/// Markers by site, then user, then room. Nested so that noting one more
/// marker of a known site or user clones none of their ids.
#[derive(Default)]
struct Pending {
    sites: FastMap<SiteId, FastMap<UserId, UserMarks>>,
    /// Writes taken so far.
    writes: u64,
}

impl Pending {
    /// Notes `seq` for (room, user) unless a higher marker is noted.
    fn note(&mut self, site: &SiteId, room: &RoomId, user: &UserId, seq: Seq) {
        let writes = self.writes;
        let Some(marks) = slot(&mut self.sites, site).and_then(|users| slot(users, user)) else {
            return;
        };
        let mark = match marks.get_mut(room) {
            Some(mark) => mark,
            None => marks.entry(room.clone()).or_insert(Mark {
                seq: 0,
                dirty: false,
                noted: writes,
            }),
        };
        if seq <= mark.seq {
            return;
        }
        mark.seq = seq;
        mark.noted = writes;
        mark.dirty = true;
    }

    /// Takes the dirty markers for a write, and lets go of those not
    /// noted for [`KEEP_WRITES`] writes (one taken now stays until the
    /// next, in case its write fails).
    fn take(&mut self) -> Vec<(RoomId, UserId, Seq)> {
        self.writes += 1;
        let now = self.writes;
        let mut taken = Vec::new();
        self.sites.retain(|_, users| {
            users.retain(|user, marks| {
                marks.retain(|room, mark| {
                    if mark.dirty {
                        mark.dirty = false;
                        taken.push((room.clone(), user.clone(), mark.seq));
                        return true;
                    }
                    now.saturating_sub(mark.noted) <= KEEP_WRITES
                });
                !marks.is_empty()
            });
            !users.is_empty()
        });
        taken
    }

    /// A taken marker whose write failed: dirty again, for the next one.
    fn redo(&mut self, room: &RoomId, user: &UserId) {
        for users in self.sites.values_mut() {
            if let Some(mark) = users.get_mut(user).and_then(|marks| marks.get_mut(room)) {
                mark.dirty = true;
            }
        }
    }
}

/// The value under `key`, made empty first if there is none: the key is
/// cloned only then.
fn slot<'m, K: Eq + Hash + Clone, V: Default>(
    map: &'m mut FastMap<K, V>,
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
                pending: Mutex::new(Pending::default()),
                writing: tokio::sync::Mutex::new(()),
            }),
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.inner.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a marker to write (the higher one wins).
    pub fn note(&self, site: &SiteId, room: &RoomId, user: &UserId, seq: Seq) {
        self.pending().note(site, room, user, seq);
    }

    /// True when markers of this user may wait to be written: noted and
    /// not yet taken, or a write is under way (it may hold theirs).
    pub fn has_pending(&self, site: &SiteId, user: &UserId) -> bool {
        let noted = self
            .pending()
            .sites
            .get(site)
            .and_then(|users| users.get(user))
            .is_some_and(|marks| dirty(marks) > 0);
        noted || self.inner.writing.try_lock().is_err()
    }

    /// Writes every marker noted so far. On failure they are noted again,
    /// for the next try.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _writing = self.inner.writing.lock().await;
        let taken = Arc::new(self.pending().take());
        if taken.is_empty() {
            return Ok(());
        }
        let written = self
            .inner
            .store
            .advance_read_markers(Arc::clone(&taken))
            .await;
        if written.is_err() {
            let mut pending = self.pending();
            for (room, user, _) in taken.iter() {
                pending.redo(room, user);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(room: &str, user: &str) -> (SiteId, RoomId, UserId) {
        (
            SiteId::parse("site").expect("site id"),
            RoomId::parse(room).expect("room id"),
            UserId::parse(user).expect("user id"),
        )
    }

    #[test]
    fn a_marker_is_taken_once_and_only_forward() {
        let mut pending = Pending::default();
        let (site, room, user) = ids("r1", "ann");
        pending.note(&site, &room, &user, 5);
        pending.note(&site, &room, &user, 3);
        pending.note(&site, &room, &user, 7);
        assert_eq!(pending.take(), vec![(room.clone(), user.clone(), 7)]);
        assert!(pending.take().is_empty(), "nothing new was noted");
        pending.note(&site, &room, &user, 6);
        assert!(pending.take().is_empty(), "a marker never goes back");
        pending.note(&site, &room, &user, 8);
        assert_eq!(pending.take(), vec![(room, user, 8)]);
    }

    #[tokio::test]
    async fn a_write_under_way_counts_as_pending() {
        let (store, path) = crate::store::scratch::open("reads").await;
        let markers = ReadMarkers::new(store);
        let (site, room, user) = ids("r1", "ann");
        assert!(!markers.has_pending(&site, &user));
        markers.note(&site, &room, &user, 3);
        assert!(markers.has_pending(&site, &user), "noted");
        // A write that has taken the marker and not yet committed it.
        let taken = markers.pending().take();
        assert_eq!(taken.len(), 1);
        let writing = markers.inner.writing.lock().await;
        assert!(markers.has_pending(&site, &user), "taken, being written");
        drop(writing);
        assert!(!markers.has_pending(&site, &user), "written");
        crate::store::scratch::remove(&path);
    }

    #[test]
    fn a_failed_write_is_taken_again() {
        let mut pending = Pending::default();
        let (site, room, user) = ids("r1", "ann");
        pending.note(&site, &room, &user, 2);
        let taken = pending.take();
        assert_eq!(taken.len(), 1);
        pending.redo(&room, &user);
        assert_eq!(pending.take(), taken);
    }

    #[test]
    fn idle_markers_go_after_a_while_and_pending_says_who_waits() {
        let mut pending = Pending::default();
        let (site, room, user) = ids("r1", "ann");
        let (_, other_room, other) = ids("r2", "bob");
        pending.note(&site, &room, &user, 1);
        pending.note(&site, &other_room, &other, 1);
        pending.take();
        for _ in 0..KEEP_WRITES {
            pending.note(&site, &other_room, &other, pending.writes + 2);
            pending.take();
        }
        let users = pending.sites.get(&site).expect("the site's users");
        assert!(users.contains_key(&other), "bob keeps reading");
        assert!(!users.contains_key(&user), "ann stopped long ago");
        assert!(users.get(&other).is_some_and(|m| dirty(m) == 0));
        pending.note(&site, &other_room, &other, 1_000);
        assert_eq!(dirty(&pending.sites[&site][&other]), 1);
    }
}
