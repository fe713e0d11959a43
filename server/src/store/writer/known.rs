//! What the writer already knows of rooms and memberships, so that a batch
//! need not read it again. Only with SQLite: the embedded database has one
//! process, and in it the writer is the only one that changes a room's
//! counter or a membership of an existing room, so what it remembers of
//! committed transactions stays true. With MySQL other nodes write too, and
//! every batch reads (and locks) what it needs.

use super::sql::RoomRow;
use crate::store::Backend;
use natter_shared::{RoomId, UserId};
use std::collections::{HashMap, HashSet};

/// Past this many entries a map is cleared and refilled from the database
/// as batches need it, so memory stays bounded.
const MAX_ENTRIES: usize = 100_000;

pub(super) struct Known {
    enabled: bool,
    rooms: HashMap<RoomId, RoomRow>,
    /// Memberships known to exist; absence means "ask the database".
    members: HashSet<(RoomId, UserId)>,
}

impl Known {
    pub(super) fn for_backend(backend: Backend) -> Self {
        Known {
            enabled: backend == Backend::Sqlite,
            rooms: HashMap::new(),
            members: HashSet::new(),
        }
    }

    pub(super) fn room(&self, room: &RoomId) -> Option<&RoomRow> {
        self.rooms.get(room)
    }

    pub(super) fn is_member(&self, room: &RoomId, user: &UserId) -> bool {
        self.members.contains(&(room.clone(), user.clone()))
    }

    /// Records what a committed batch left behind.
    pub(super) fn committed(
        &mut self,
        rooms: impl IntoIterator<Item = (RoomId, RoomRow)>,
        joined: impl IntoIterator<Item = (RoomId, UserId)>,
        left: impl IntoIterator<Item = (RoomId, UserId)>,
    ) {
        if !self.enabled {
            return;
        }
        if self.rooms.len() > MAX_ENTRIES {
            self.rooms.clear();
        }
        if self.members.len() > MAX_ENTRIES {
            self.members.clear();
        }
        self.rooms.extend(rooms);
        for gone in left {
            self.members.remove(&gone);
        }
        self.members.extend(joined);
    }
}
