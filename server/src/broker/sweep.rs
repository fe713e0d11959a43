//! The last line of defence against a broker that lost something without
//! anyone noticing — typically the last events of a node killed right
//! after committing them, before it could publish them: no later event
//! reveals the gap, and no link dropped on this node.
//!
//! Every sweep compares, for each room followed on this node, the latest
//! seq that reached the hub with the one stored. A room still behind at
//! the next sweep (not merely in flight) gets its latest event from the
//! store put into the hub; each connection following it fills the gap
//! from the store before delivering it (`ws::deliver`), and skips what it
//! already has. One query per sweep (per 500 rooms) when nothing is amiss.
//!
//! A room created (or joined) on a node killed before it announced it is
//! lost the same way, and no event of the room reaches a node none of
//! whose connections follow it. So each sweep also reads the memberships
//! begun lately (since a while before the last sweep that could read
//! them), and a member connected here whose connections still do
//! not follow the room a sweep later is told of it (`room`), as the
//! announcement would have.

use crate::hub::Hub;
use crate::metrics::{self, Metrics};
use crate::store::Store;
use natter_shared::{RoomId, Seq, SiteId, UserId};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// Runs a sweep every `every` until `stop` fires.
pub(super) async fn run(
    store: Store,
    hub: Hub,
    every: Duration,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Rooms found behind at the last sweep, with the seq stored then.
    let mut behind: HashMap<RoomId, Seq> = HashMap::new();
    // Memberships not announced here at the last sweep.
    let mut unannounced: HashSet<Joined> = HashSet::new();
    let window =
        i64::try_from(every.saturating_mul(4).max(JOINED_WINDOW).as_millis()).unwrap_or(i64::MAX);
    // When the memberships were last read (ms since the Unix epoch).
    let mut read_at: Option<i64> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        behind = sweep(&store, &hub, &metrics, &behind).await;
        let now = crate::store::now_ms();
        let since = look_back_from(now, read_at, window);
        let read;
        (unannounced, read) = announce(&store, &hub, &metrics, since, &unannounced).await;
        if read {
            read_at = Some(now);
        }
    }
}

/// Where a sweep at `now` starts reading memberships: a `window` before
/// the last sweep that read them, so that none begun while the store could
/// not be read (or sweeps were late) is passed over.
fn look_back_from(now: i64, read_at: Option<i64>, window: i64) -> i64 {
    read_at.unwrap_or(now).min(now).saturating_sub(window)
}

/// A membership: (site, room, user).
type Joined = (SiteId, RoomId, UserId);

/// How far back each sweep looks for memberships begun (at least; four
/// sweeps when they are further apart): wide enough for a batch's commit
/// after its time was taken, and for clocks of nodes a little apart.
const JOINED_WINDOW: Duration = Duration::from_secs(60);

/// The most memberships one sweep reads.
const JOINED_PER_SWEEP: u32 = 10_000;

/// Tells the members connected here of the rooms they joined since `since`
/// whose announcement never came; returns the memberships still not
/// announced, to act on at the next sweep (unless it came by then), and
/// whether the memberships could be read (with no one connected here,
/// none need be).
async fn announce(
    store: &Store,
    hub: &Hub,
    metrics: &Metrics,
    since: i64,
    before: &HashSet<Joined>,
) -> (HashSet<Joined>, bool) {
    if hub.connection_count() == 0 {
        return (HashSet::new(), true);
    }
    let joined = match store.joined_since(since, JOINED_PER_SWEEP).await {
        Ok(joined) => joined,
        Err(err) => {
            tracing::debug!(error = %err, "sweep: could not read the memberships begun lately");
            return (before.clone(), false);
        }
    };
    let mut unannounced = HashSet::new();
    for (site, room, user) in joined {
        let key = (site, room, user);
        let (site, room, user) = &key;
        // Not announced a whole sweep ago either: it is not coming.
        let act = before.contains(&key);
        if !hub.unannounced(site, room, user, act) {
            continue;
        }
        if act {
            metrics::inc(&metrics.sweep_announcements);
            tracing::info!(%room, %user, "sweep: a room the broker never announced; announced from the store");
        } else {
            unannounced.insert(key);
        }
    }
    (unannounced, true)
}

/// One sweep; returns the rooms behind, to look at again next time.
async fn sweep(
    store: &Store,
    hub: &Hub,
    metrics: &Metrics,
    before: &HashMap<RoomId, Seq>,
) -> HashMap<RoomId, Seq> {
    let heads = hub.heads();
    if heads.is_empty() {
        return HashMap::new();
    }
    let rooms: Vec<RoomId> = heads.iter().map(|(room, _)| room.clone()).collect();
    let stored = match store.last_seqs(&rooms).await {
        Ok(stored) => stored,
        Err(err) => {
            tracing::debug!(error = %err, "sweep: could not read the rooms' seqs");
            // Keep what was found: the next sweep that reads acts on it.
            return before.clone();
        }
    };
    let mut behind = HashMap::new();
    for (room, head) in heads {
        let Some((site, last)) = stored.get(&room) else {
            continue;
        };
        if *last <= head {
            continue;
        }
        match before.get(&room) {
            // Stored a whole sweep ago and still not here: not coming.
            Some(&was) if was > head => {
                let latest = store.events_after(&room, last.saturating_sub(1), 1).await;
                match latest {
                    Ok(events) => {
                        for event in events {
                            metrics::inc(&metrics.sweep_fills);
                            tracing::info!(%room, seq = event.seq, head, "sweep: events the broker never brought; filling from the store");
                            hub.publish_event(site, &event);
                        }
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, %room, "sweep: could not read the latest event");
                        behind.insert(room, was);
                    }
                }
            }
            // Maybe still on its way: look again next time.
            _ => {
                behind.insert(room, *last);
            }
        }
    }
    behind
}

#[cfg(test)]
mod tests {
    use super::look_back_from;

    #[test]
    fn memberships_are_read_from_a_window_before_the_last_read() {
        // The first sweep, and one right after the last: a window back.
        assert_eq!(look_back_from(100_000, None, 60_000), 40_000);
        assert_eq!(look_back_from(100_000, Some(95_000), 60_000), 35_000);
        // After five minutes without a read, back to before the last one.
        assert_eq!(look_back_from(400_000, Some(100_000), 60_000), 40_000);
        // A clock stepped back never looks ahead of now.
        assert_eq!(look_back_from(100_000, Some(200_000), 60_000), 40_000);
    }
}
