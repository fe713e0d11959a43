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
use natter_shared::{RoomId, Seq, UserId};
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
    /// The user's key ([`crate::gate::Gate::user_key`]).
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
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            noted: Vec::new(),
            fold_at: FOLD_AT,
        }
    }
}

impl Pending {
    /// Notes `seq` for (room, user). True when the list is long enough
    /// that it should be written before its time.
    fn note(&mut self, key: u64, room: &RoomId, user: &UserId, seq: Seq) -> bool {
        self.noted.push(Noted {
            key,
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

    /// True when a marker of the user with this key waits.
    fn has(&self, key: u64) -> bool {
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

    /// Notes a marker to write (the higher one wins). `key` is the
    /// user's [`crate::gate::Gate::user_key`]: the user's markers are
    /// found by it, without their ids.
    pub fn note(&self, key: u64, room: &RoomId, user: &UserId, seq: Seq) {
        if self.pending().note(key, room, user, seq) {
            self.inner.due.notify_one();
        }
    }

    /// True when markers of this user may wait to be written: noted and
    /// not yet taken, or a write is under way (it may hold theirs).
    /// `key` is the user's [`crate::gate::Gate::user_key`]; another user
    /// with the same key would only make the caller wait for a write.
    pub fn has_pending(&self, key: u64) -> bool {
        self.pending().has(key) || self.inner.writing.try_lock().is_err()
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

    /// A user's key (as the gate would make it), room and id.
    fn ids(room: &str, user: &str) -> (u64, RoomId, UserId) {
        (
            user.bytes().map(u64::from).sum(),
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
        let (key, room, user) = ids("r1", "ann");
        let (other_key, other_room, other) = ids("r2", "bob");
        pending.note(key, &room, &user, 5);
        pending.note(other_key, &other_room, &other, 2);
        pending.note(key, &room, &user, 7);
        pending.note(key, &room, &user, 3);
        pending.note(key, &other_room, &user, 1);
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
        let (key, room, user) = ids("r1", "ann");
        let (other, _, _) = ids("r1", "bob");
        pending.note(key, &room, &user, 1);
        assert!(pending.has(key));
        assert!(!pending.has(other), "another user");
        pending.take();
        assert!(!pending.has(key), "taken");
    }

    #[tokio::test]
    async fn a_write_under_way_counts_as_pending() {
        let (store, path) = crate::store::scratch::open("reads").await;
        let markers = ReadMarkers::new(store);
        let (key, room, user) = ids("r1", "ann");
        assert!(!markers.has_pending(key));
        markers.note(key, &room, &user, 3);
        assert!(markers.has_pending(key), "noted");
        // A write that has taken the marker and not yet committed it.
        let taken = markers.pending().take();
        assert_eq!(taken.markers.len(), 1);
        let writing = markers.inner.writing.lock().await;
        assert!(markers.has_pending(key), "taken, being written");
        drop(writing);
        assert!(!markers.has_pending(key), "written");
        crate::store::scratch::remove(&path);
    }

    #[test]
    fn a_failed_write_is_taken_again_unless_overtaken() {
        let mut pending = Pending::default();
        let (key, room, user) = ids("r1", "ann");
        let (_, other_room, _) = ids("r2", "ann");
        pending.note(key, &room, &user, 2);
        pending.note(key, &other_room, &user, 4);
        let taken = pending.take();
        pending.note(key, &other_room, &user, 6);
        pending.redo(&taken);
        assert!(pending.has(key));
        assert_eq!(
            markers(&pending.take()),
            vec![(room, user.clone(), 2), (other_room, user, 6)]
        );
    }

    #[test]
    fn a_flood_of_markers_is_folded_and_asks_for_a_write() {
        let mut pending = Pending::default();
        let (key, room, user) = ids("r1", "ann");
        let asked = (1..=3 * FOLD_AT as Seq)
            .filter(|&seq| pending.note(key, &room, &user, seq))
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
        let (key, _, user) = ids("r1", "ann");
        let rooms = 2 * FOLD_AT;
        for i in 0..rooms {
            let room = RoomId::parse(format!("r{i}")).expect("room id");
            pending.note(key, &room, &user, 1);
        }
        assert!(pending.fold_at > rooms, "not folded on every note");
        assert_eq!(pending.take().markers.len(), rooms);
    }
}
