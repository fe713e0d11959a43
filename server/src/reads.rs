//! Read markers on their way to the database. People move their markers
//! many times a second between them; writing each one would cost a
//! commit per frame. Markers are noted here instead, in the order they
//! come, and written every `--read-flush-ms` in one transaction (sooner
//! when many wait), and once more on shutdown. A write takes only the
//! highest marker of each member.
//!
//! What is noted but not yet written is already shown: the marker goes
//! out to the member's devices and the room at once (`Broker::read`). A
//! sync of the same user on this node writes their pending markers
//! first, so the counts it reads are right.

use crate::store::{Store, StoreError};
use natter_shared::{RoomId, Seq, SiteId, UserId};
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Noted markers at which the list is folded (one per member kept) and
/// a write is asked for before its time: memory stays bounded under a
/// flood of frames, and so does the scan of [`ReadMarkers::has_pending`].
const FOLD_AT: usize = 8_192;

/// One noted marker.
struct Noted {
    /// The user's key ([`Pending::key`]).
    key: u64,
    room: RoomId,
    user: UserId,
    seq: Seq,
}

/// The markers noted since the last write, in the order they came.
/// Noting appends, with no lookup: a member's older markers are dropped
/// when the list is folded.
struct Pending {
    noted: Vec<Noted>,
    /// The length at which the list is next folded.
    fold_at: usize,
    keys: foldhash::fast::RandomState,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            noted: Vec::new(),
            fold_at: FOLD_AT,
            keys: foldhash::fast::RandomState::default(),
        }
    }
}

impl Pending {
    /// A key for (site, user), the same for the same pair while the
    /// server runs. Two pairs with one key only make a sync wait for a
    /// write it did not need.
    fn key(&self, site: &SiteId, user: &UserId) -> u64 {
        self.keys.hash_one((site, user))
    }

    /// Notes `seq` for (room, user). True when the list is long enough
    /// that it should be written before its time.
    fn note(&mut self, site: &SiteId, room: &RoomId, user: &UserId, seq: Seq) -> bool {
        self.noted.push(Noted {
            key: self.key(site, user),
            room: room.clone(),
            user: user.clone(),
            seq,
        });
        if self.noted.len() < self.fold_at {
            return false;
        }
        self.fold();
        // Distinct markers may outnumber the bound (a write that keeps
        // failing): fold again only once the list has doubled.
        self.fold_at = FOLD_AT.max(self.noted.len() * 2);
        true
    }

    /// Keeps only each member's highest marker, in the order of the
    /// members' primary key, so that a write walks the table's index in
    /// order. (A room belongs to one site: the same room and user make
    /// the same key.)
    fn fold(&mut self) {
        self.noted.sort_unstable_by(|a, b| {
            (&a.room, &a.user)
                .cmp(&(&b.room, &b.user))
                .then(b.seq.cmp(&a.seq))
        });
        self.noted
            .dedup_by(|next, kept| next.room == kept.room && next.user == kept.user);
    }

    /// Takes the markers for a write, each member's highest once, with
    /// their users' keys.
    fn take(&mut self) -> Taken {
        self.fold();
        self.fold_at = FOLD_AT;
        let capacity = self.noted.len().min(FOLD_AT);
        let noted = std::mem::replace(&mut self.noted, Vec::with_capacity(capacity));
        let keys = noted.iter().map(|n| n.key).collect();
        let markers = Arc::new(noted.into_iter().map(|n| (n.room, n.user, n.seq)).collect());
        Taken { keys, markers }
    }

    /// Taken markers whose write failed: noted again, for the next one
    /// (a newer marker noted meanwhile wins when the list is folded).
    fn redo(&mut self, taken: &Taken) {
        let again = taken.keys.iter().zip(taken.markers.iter());
        self.noted
            .extend(again.map(|(&key, (room, user, seq))| Noted {
                key,
                room: room.clone(),
                user: user.clone(),
                seq: *seq,
            }));
    }

    /// True when a marker of this user waits.
    fn has(&self, site: &SiteId, user: &UserId) -> bool {
        let key = self.key(site, user);
        self.noted.iter().any(|n| n.key == key)
    }
}

/// Markers taken for a write.
struct Taken {
    /// Their users' keys, in the markers' order.
    keys: Vec<u64>,
    markers: Arc<Vec<(RoomId, UserId, Seq)>>,
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
    /// Asks for a write before its time: many markers wait.
    due: Notify,
}

impl ReadMarkers {
    /// Markers written to `store`.
    pub fn new(store: Store) -> Self {
        ReadMarkers {
            inner: Arc::new(Inner {
                store,
                pending: Mutex::new(Pending::default()),
                writing: tokio::sync::Mutex::new(()),
                due: Notify::new(),
            }),
        }
    }

    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.inner.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a marker to write (the higher one wins).
    pub fn note(&self, site: &SiteId, room: &RoomId, user: &UserId, seq: Seq) {
        if self.pending().note(site, room, user, seq) {
            self.inner.due.notify_one();
        }
    }

    /// True when markers of this user may wait to be written: noted and
    /// not yet taken, or a write is under way (it may hold theirs).
    pub fn has_pending(&self, site: &SiteId, user: &UserId) -> bool {
        self.pending().has(site, user) || self.inner.writing.try_lock().is_err()
    }

    /// Writes every marker noted so far. On failure they are noted again,
    /// for the next try.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let _writing = self.inner.writing.lock().await;
        let taken = self.pending().take();
        if taken.markers.is_empty() {
            return Ok(());
        }
        let written = self
            .inner
            .store
            .advance_read_markers(Arc::clone(&taken.markers))
            .await;
        if written.is_err() {
            self.pending().redo(&taken);
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
                    _ = markers.inner.due.notified() => {}
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

    /// What a write takes, in the order it writes them.
    fn markers(taken: &Taken) -> Vec<(RoomId, UserId, Seq)> {
        taken.markers.to_vec()
    }

    #[test]
    fn a_members_highest_marker_is_taken_once_in_key_order() {
        let mut pending = Pending::default();
        let (site, room, user) = ids("r1", "ann");
        let (_, other_room, other) = ids("r2", "bob");
        pending.note(&site, &room, &user, 5);
        pending.note(&site, &other_room, &other, 2);
        pending.note(&site, &room, &user, 7);
        pending.note(&site, &room, &user, 3);
        pending.note(&site, &other_room, &user, 1);
        assert_eq!(
            markers(&pending.take()),
            vec![
                (room, user.clone(), 7),
                (other_room.clone(), user, 1),
                (other_room, other, 2),
            ]
        );
        assert!(pending.take().markers.is_empty(), "nothing new was noted");
    }

    #[test]
    fn pending_says_whose_markers_wait() {
        let mut pending = Pending::default();
        let (site, room, user) = ids("r1", "ann");
        let (other_site, _, other) = ids("r1", "bob");
        let other_site = SiteId::parse(format!("{}2", other_site.as_str())).expect("site id");
        pending.note(&site, &room, &user, 1);
        assert!(pending.has(&site, &user));
        assert!(!pending.has(&site, &other), "another user");
        assert!(
            !pending.has(&other_site, &user),
            "the same id on another site"
        );
        pending.take();
        assert!(!pending.has(&site, &user), "taken");
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
        assert_eq!(taken.markers.len(), 1);
        let writing = markers.inner.writing.lock().await;
        assert!(markers.has_pending(&site, &user), "taken, being written");
        drop(writing);
        assert!(!markers.has_pending(&site, &user), "written");
        crate::store::scratch::remove(&path);
    }

    #[test]
    fn a_failed_write_is_taken_again_unless_overtaken() {
        let mut pending = Pending::default();
        let (site, room, user) = ids("r1", "ann");
        let (_, other_room, _) = ids("r2", "ann");
        pending.note(&site, &room, &user, 2);
        pending.note(&site, &other_room, &user, 4);
        let taken = pending.take();
        pending.note(&site, &other_room, &user, 6);
        pending.redo(&taken);
        assert!(pending.has(&site, &user));
        assert_eq!(
            markers(&pending.take()),
            vec![(room, user.clone(), 2), (other_room, user, 6)]
        );
    }

    #[test]
    fn a_flood_of_markers_is_folded_and_asks_for_a_write() {
        let mut pending = Pending::default();
        let (site, room, user) = ids("r1", "ann");
        let asked = (1..=3 * FOLD_AT as Seq)
            .filter(|&seq| pending.note(&site, &room, &user, seq))
            .count();
        assert_eq!(asked, 3, "once each time the list reached the bound");
        assert!(
            pending.noted.len() < FOLD_AT,
            "folded: {}",
            pending.noted.len()
        );
        assert_eq!(
            markers(&pending.take()),
            vec![(room, user, 3 * FOLD_AT as Seq)]
        );
    }

    #[test]
    fn distinct_markers_past_the_bound_are_all_kept() {
        let mut pending = Pending::default();
        let (site, _, user) = ids("r1", "ann");
        let rooms = 2 * FOLD_AT;
        for i in 0..rooms {
            let room = RoomId::parse(format!("r{i}")).expect("room id");
            pending.note(&site, &room, &user, 1);
        }
        assert!(pending.fold_at > rooms, "not folded on every note");
        assert_eq!(pending.take().markers.len(), rooms);
    }
}
