//! What the hub knows of each followed room: its latest seq, and the
//! authors of the events just before it, so that a receipt goes only to
//! those whose messages it passes.

use natter_shared::{Seq, UserId};
use std::collections::VecDeque;

/// How many of a room's latest events the hub keeps the authors of.
pub(super) const AUTHORS_KEPT: usize = 32;

/// A key for a user to match authors with: a fixed hash of their id,
/// never 0 (which stands for an event without a sender). Two users with
/// the same key would only mean one more receipt sent than needed.
pub(super) fn user_key(user: &UserId) -> u64 {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut hasher = DefaultHasher::new();
    user.hash(&mut hasher);
    hasher.finish() | 1
}

/// What the hub knows of a followed room: its latest seq, and who wrote
/// the events just before it, so that a receipt goes only to those whose
/// messages it passes.
#[derive(Default)]
pub(super) struct Head {
    /// The latest seq known to have reached this hub.
    pub(super) seq: Seq,
    /// The authors (`user_key`, 0 for none) of the events up to `seq`,
    /// without a gap: the last is `seq`'s.
    authors: VecDeque<u64>,
}

impl Head {
    /// An event published here.
    pub(super) fn published(&mut self, seq: Seq, author: u64) {
        if seq <= self.seq {
            return;
        }
        if seq != self.seq.saturating_add(1) {
            // Past a gap: what came before is not known.
            self.authors.clear();
        }
        if self.authors.len() >= AUTHORS_KEPT {
            self.authors.pop_front();
        }
        self.authors.push_back(author);
        self.seq = seq;
    }

    /// A sync read the room up to `seq` from the store: the authors of
    /// what this hub did not see are not known.
    pub(super) fn synced(&mut self, seq: Seq) {
        if seq > self.seq {
            self.authors.clear();
            self.seq = seq;
        }
    }

    /// The authors of the events after `after` up to `upto`, if all are
    /// known.
    pub(super) fn authors_between(
        &self,
        after: Seq,
        upto: Seq,
    ) -> Option<std::collections::vec_deque::Iter<'_, u64>> {
        let kept = self.authors.len() as Seq;
        let first = self.seq.saturating_add(1).saturating_sub(kept);
        if upto > self.seq || after.saturating_add(1) < first || after >= upto {
            return None;
        }
        let from = usize::try_from(after + 1 - first).ok()?;
        let to = usize::try_from(upto + 1 - first).ok()?;
        Some(self.authors.range(from..to))
    }
}
