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

use crate::hub::Hub;
use crate::metrics::{self, Metrics};
use crate::store::Store;
use natter_shared::{RoomId, Seq};
use std::collections::HashMap;
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
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        behind = sweep(&store, &hub, &metrics, &behind).await;
    }
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
