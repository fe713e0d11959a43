//! One group commit's decisions, made in memory. A batch first reads what
//! it needs ([`Needs`] → [`Reads`]: the rooms' rows, locked; the
//! memberships its writes depend on; the messages already stored under
//! its client ids; member counts where someone joins), then decides every
//! write in order as if it were alone ([`Plan::decide`]), then writes the
//! outcome in a few multi-row statements: new events, membership changes,
//! each room's counter. No database access happens in here, so both
//! drivers share it and it is tested without one.

use super::{WriteOp, Written};
use crate::store::StoreError;
use crate::store::rows::parse_id;
use natter_shared::limits::MAX_MEMBERS;
use natter_shared::text::Body;
use natter_shared::webhooks::WebhookType;
use natter_shared::{
    Attachment, ClientId, Event, EventKind, FileId, RoomId, RoomKind, Seq, SiteId, UserId,
};
use std::collections::{HashMap, HashSet};

/// The key that makes a send idempotent: room, sender (none for a system
/// message) and the client's id.
pub(super) type IdemKey = (RoomId, Option<UserId>, ClientId);

/// A room's row as the batch read (and locked) it.
#[derive(Debug, Clone)]
pub(super) struct RoomRow {
    pub site: String,
    pub kind: RoomKind,
    pub last_seq: i64,
    /// The room's site has webhooks: its events are queued for them.
    pub hooked: bool,
}

/// A membership the batch adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NewMember {
    pub room: RoomId,
    pub site: SiteId,
    pub user: UserId,
    pub joined_at: i64,
    /// Their read marker to start with: the room's seq before they joined,
    /// so what was said before is not unread for them.
    pub read_seq: i64,
}

/// What a batch must read before deciding: sorted and without repeats.
pub(super) struct Needs<'a> {
    pub rooms: Vec<&'a RoomId>,
    pub pairs: Vec<(&'a RoomId, &'a UserId)>,
    /// With each client id's text, as stored.
    pub keys: Vec<(IdemKey, String)>,
    /// Rooms someone joins: their member count is checked.
    pub joined: Vec<&'a RoomId>,
    /// Events to delete: their rows are read.
    pub targets: Vec<(&'a RoomId, Seq)>,
    /// Files messages carry: their rows are read (and locked).
    pub files: Vec<&'a FileId>,
}

impl<'a> Needs<'a> {
    pub(super) fn of(ops: &[&'a WriteOp]) -> Self {
        let mut needs = Needs {
            rooms: Vec::with_capacity(ops.len()),
            pairs: Vec::with_capacity(ops.len()),
            keys: Vec::new(),
            joined: Vec::new(),
            targets: Vec::new(),
            files: Vec::new(),
        };
        for op in ops {
            match op {
                WriteOp::Message {
                    room,
                    sender,
                    client_id,
                    files,
                    ..
                } => {
                    needs.rooms.push(room);
                    needs.files.extend(files.iter().map(|f| &f.id));
                    if let Some(sender) = sender {
                        needs.pairs.push((room, sender));
                    }
                    if let Some(client_id) = client_id {
                        let key = (room.clone(), sender.clone(), *client_id);
                        needs.keys.push((key, client_id.to_string()));
                    }
                }
                WriteOp::Join { room, user, .. } => {
                    needs.rooms.push(room);
                    needs.pairs.push((room, user));
                    needs.joined.push(room);
                }
                WriteOp::Leave { room, user, .. } => {
                    needs.rooms.push(room);
                    needs.pairs.push((room, user));
                }
                WriteOp::Delete { room, seq, .. } => {
                    needs.rooms.push(room);
                    needs.targets.push((room, *seq));
                }
            }
        }
        for list in [&mut needs.rooms, &mut needs.joined] {
            list.sort_unstable();
            list.dedup();
        }
        needs.pairs.sort_unstable();
        needs.pairs.dedup();
        needs.keys.sort_unstable();
        needs.keys.dedup();
        needs.targets.sort_unstable();
        needs.targets.dedup();
        needs.files.sort_unstable();
        needs.files.dedup();
        needs
    }
}

/// What the database answered to [`Needs`].
#[derive(Default)]
pub(super) struct Reads {
    /// The rooms that exist, by id.
    pub rooms: HashMap<RoomId, RoomRow>,
    /// Of the pairs asked, those that are memberships.
    pub members: HashSet<(RoomId, UserId)>,
    /// Of those, the members muted until a time (ms).
    pub muted: HashMap<(RoomId, UserId), i64>,
    /// Messages already stored, by idempotency key.
    pub stored: HashMap<IdemKey, Event>,
    /// Member counts of the rooms someone joins (absent: none).
    pub counts: HashMap<RoomId, i64>,
    /// The events to delete that exist, by room and seq.
    pub targets: HashMap<(RoomId, Seq), Event>,
    /// Of the files asked, those that exist, with the message holding each.
    pub files: HashMap<FileId, Holder>,
}

/// The message that holds a file: none yet, or its room and client id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Holder {
    pub room: Option<RoomId>,
    pub client_id: Option<ClientId>,
}

impl Reads {
    /// Keeps a membership read back, with its mute if it has one.
    pub(super) fn keep_member(&mut self, pair: (RoomId, UserId), muted_until: Option<i64>) {
        if let Some(until) = muted_until {
            self.muted.insert(pair.clone(), until);
        }
        self.members.insert(pair);
    }

    /// Keeps a file's row read back: its id, and the room and client id of
    /// the message that holds it, if one does.
    pub(super) fn keep_file(
        &mut self,
        id: String,
        room: Option<String>,
        client_id: Option<String>,
    ) -> Result<(), StoreError> {
        let holder = Holder {
            room: room.map(|r| parse_id(RoomId::parse, r)).transpose()?,
            client_id: client_id
                .map(|c| parse_id(ClientId::try_from, c))
                .transpose()?,
        };
        self.files.insert(parse_id(FileId::parse, id)?, holder);
        Ok(())
    }

    /// Keeps a stored event read back under its idempotency key, if it
    /// has one (a message, or what is left of a deleted one).
    pub(super) fn keep_stored(&mut self, event: Event) {
        let (EventKind::Message {
            client_id: Some(client_id),
            ..
        }
        | EventKind::Deleted {
            client_id: Some(client_id),
        }) = &event.kind
        else {
            return;
        };
        let key = (event.room.clone(), event.sender.clone(), *client_id);
        self.stored.insert(key, event);
    }
}

/// What a decided batch writes, owned so that its statements
/// ([`super::statements::writes`]) can borrow it.
pub(super) struct Writes {
    /// New events, each room's in seq order.
    pub events: Vec<Event>,
    /// Each new event's client id as stored, if it has one.
    pub client_ids: Vec<Option<String>>,
    /// Each new event's attachments as stored (JSON), if it has any.
    pub files: Vec<Option<String>>,
    pub added: Vec<NewMember>,
    pub removed: Vec<(RoomId, UserId)>,
    /// Each room whose counter moved, with its new value.
    pub counters: Vec<(RoomId, i64)>,
    /// Messages deleted: their rows are emptied.
    pub deleted: Vec<(RoomId, Seq)>,
    /// Files bound to the new message that holds them: file, room and
    /// the message's client id as stored.
    pub bound: Vec<(FileId, RoomId, Option<String>)>,
    /// What the site's webhooks may be told of: one per new event that
    /// has a webhook type.
    pub hooks: Vec<HookEvent>,
}

/// A new event as the webhook outbox takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HookEvent {
    pub site: String,
    pub room: RoomId,
    pub seq: i64,
    /// Its [`WebhookType`]'s bit.
    pub kind: i64,
    pub ts: i64,
}

struct PlannedRoom {
    row: RoomRow,
    /// The counter after this batch's events.
    last: i64,
}

/// The batch's decisions so far.
pub(super) struct Plan {
    rooms: HashMap<RoomId, PlannedRoom>,
    /// Memberships as they stand after the writes decided so far.
    members: HashSet<(RoomId, UserId)>,
    /// Memberships as they stood before the batch.
    members_before: HashSet<(RoomId, UserId)>,
    /// Members muted until a time (ms), as before the batch.
    muted: HashMap<(RoomId, UserId), i64>,
    counts: HashMap<RoomId, i64>,
    stored: HashMap<IdemKey, Event>,
    /// Messages new in this batch, by idempotency key: index in `events`.
    pending: HashMap<IdemKey, usize>,
    /// New events, each room's in seq order.
    events: Vec<Event>,
    /// Sites of the rooms people join, for the members' rows, and each
    /// room's seq before the join.
    joined_sites: HashMap<(RoomId, UserId), (SiteId, i64)>,
    /// The events to delete, as they stand after the writes decided so far.
    targets: HashMap<(RoomId, Seq), Event>,
    deleted: Vec<(RoomId, Seq)>,
    /// The files read, held as after the writes decided so far.
    files: HashMap<FileId, Holder>,
    /// Files the batch binds to a new message, in order.
    bound: Vec<(FileId, RoomId, Option<ClientId>)>,
    now: i64,
}

impl Plan {
    pub(super) fn new(reads: Reads, now: i64) -> Self {
        Plan {
            rooms: reads
                .rooms
                .into_iter()
                .map(|(id, row)| {
                    let last = row.last_seq;
                    (id, PlannedRoom { row, last })
                })
                .collect(),
            members_before: reads.members.clone(),
            members: reads.members,
            muted: reads.muted,
            counts: reads.counts,
            stored: reads.stored,
            pending: HashMap::new(),
            events: Vec::new(),
            joined_sites: HashMap::new(),
            targets: reads.targets,
            deleted: Vec::new(),
            files: reads.files,
            bound: Vec::new(),
            now,
        }
    }

    /// Decides one write, after the ones decided before it.
    pub(super) fn decide(&mut self, op: &WriteOp) -> Result<Written, StoreError> {
        match op {
            WriteOp::Message {
                site,
                room,
                sender,
                client_id,
                body,
                files,
            } => self.message(site, room, sender, client_id, body, files),
            WriteOp::Join { site, room, user } => {
                if self.room(site, room)? == RoomKind::Dialog {
                    return Err(StoreError::Invalid(
                        "a dialog keeps its two members; create a group room instead".into(),
                    ));
                }
                let pair = (room.clone(), user.clone());
                if self.members.contains(&pair) {
                    return Err(StoreError::Conflict);
                }
                let count = self.counts.entry(room.clone()).or_insert(0);
                if *count >= MAX_MEMBERS as i64 {
                    return Err(StoreError::Invalid(format!(
                        "the room is full: at most {MAX_MEMBERS} members"
                    )));
                }
                *count += 1;
                let before = self.rooms.get(room).map_or(0, |r| r.last);
                self.joined_sites
                    .insert(pair.clone(), (site.clone(), before));
                self.members.insert(pair);
                self.append(room, None, EventKind::MemberJoined { user: user.clone() })
            }
            WriteOp::Leave { site, room, user } => {
                if self.room(site, room)? == RoomKind::Dialog {
                    return Err(StoreError::Invalid("a dialog keeps its two members".into()));
                }
                if !self.members.remove(&(room.clone(), user.clone())) {
                    return Err(StoreError::NotFound);
                }
                if let Some(count) = self.counts.get_mut(room) {
                    *count -= 1;
                }
                self.append(room, None, EventKind::MemberLeft { user: user.clone() })
            }
            WriteOp::Delete { site, room, seq } => self.delete(site, room, *seq),
        }
    }

    /// Deletes a message: a message deleted before is answered as a
    /// repeat; any other event (or none) is not found.
    fn delete(&mut self, site: &SiteId, room: &RoomId, seq: Seq) -> Result<Written, StoreError> {
        self.room(site, room)?;
        let Some(target) = self.targets.get_mut(&(room.clone(), seq)) else {
            return Err(StoreError::NotFound);
        };
        match &target.kind {
            EventKind::Message { files, .. } => {
                let freed = files.clone();
                target.kind = target.kind.deleted();
                self.deleted.push((room.clone(), seq));
                let written = self.append(room, None, EventKind::MessageDeleted { target: seq })?;
                Ok(Written { freed, ..written })
            }
            EventKind::Deleted { .. } => Ok(Written {
                event: target.clone(),
                duplicate: true,
                freed: Vec::new(),
            }),
            _ => Err(StoreError::NotFound),
        }
    }

    /// What the decided batch writes.
    pub(super) fn into_writes(self) -> Writes {
        let (added, removed) = self.membership_changes();
        let counters = self.counters();
        let client_ids = self
            .events
            .iter()
            .map(|e| match &e.kind {
                EventKind::Message { client_id, .. } => client_id.map(|c| c.to_string()),
                _ => None,
            })
            .collect();
        let files = self
            .events
            .iter()
            .map(|e| match &e.kind {
                EventKind::Message { files, .. } if !files.is_empty() => {
                    serde_json::to_string(files).ok()
                }
                _ => None,
            })
            .collect();
        let hooks = self
            .events
            .iter()
            .filter_map(|e| {
                let kind = WebhookType::of_event(&e.kind)?;
                let room = self.rooms.get(&e.room).filter(|r| r.row.hooked)?;
                Some(HookEvent {
                    site: room.row.site.clone(),
                    room: e.room.clone(),
                    seq: i64::try_from(e.seq).ok()?,
                    kind: kind.bit(),
                    ts: e.ts,
                })
            })
            .collect();
        Writes {
            hooks,
            events: self.events,
            client_ids,
            files,
            added,
            removed,
            counters,
            deleted: self.deleted,
            bound: self
                .bound
                .into_iter()
                .map(|(file, room, client_id)| (file, room, client_id.map(|c| c.to_string())))
                .collect(),
        }
    }

    /// Memberships to add and to remove: the batch's net change.
    fn membership_changes(&self) -> (Vec<NewMember>, Vec<(RoomId, UserId)>) {
        let mut added: Vec<NewMember> = self
            .joined_sites
            .iter()
            .filter(|(pair, _)| {
                self.members.contains(*pair) && !self.members_before.contains(*pair)
            })
            .map(|((room, user), (site, before))| NewMember {
                room: room.clone(),
                site: site.clone(),
                user: user.clone(),
                joined_at: self.now,
                read_seq: *before,
            })
            .collect();
        added.sort_by(|a, b| (&a.room, &a.user).cmp(&(&b.room, &b.user)));
        let mut removed: Vec<(RoomId, UserId)> = self
            .members_before
            .difference(&self.members)
            .cloned()
            .collect();
        removed.sort_unstable();
        (added, removed)
    }

    /// Each room whose counter moved, with its new value.
    fn counters(&self) -> Vec<(RoomId, i64)> {
        let mut counters: Vec<(RoomId, i64)> = self
            .rooms
            .iter()
            .filter(|(_, room)| room.last != room.row.last_seq)
            .map(|(id, room)| (id.clone(), room.last))
            .collect();
        counters.sort_unstable();
        counters
    }

    /// The room's kind, if it exists on this site.
    fn room(&self, site: &SiteId, room: &RoomId) -> Result<RoomKind, StoreError> {
        match self.rooms.get(room) {
            Some(planned) if planned.row.site == site.as_str() => Ok(planned.row.kind),
            _ => Err(StoreError::RoomNotFound),
        }
    }

    /// Takes the room's next seq for a new event.
    fn append(
        &mut self,
        room: &RoomId,
        sender: Option<UserId>,
        kind: EventKind,
    ) -> Result<Written, StoreError> {
        let planned = self
            .rooms
            .get_mut(room)
            .ok_or_else(|| StoreError::Corrupt("append to a room not read".into()))?;
        planned.last += 1;
        let seq = u64::try_from(planned.last)
            .map_err(|_| StoreError::Corrupt(format!("seq {}", planned.last)))?;
        let event = Event {
            room: room.clone(),
            seq,
            ts: self.now,
            sender,
            kind,
        };
        self.events.push(event.clone());
        Ok(Written {
            event,
            duplicate: false,
            freed: Vec::new(),
        })
    }

    fn message(
        &mut self,
        site: &SiteId,
        room: &RoomId,
        sender: &Option<UserId>,
        client_id: &Option<ClientId>,
        body: &Body,
        files: &[Attachment],
    ) -> Result<Written, StoreError> {
        self.room(site, room)?;
        if let Some(sender) = sender {
            let pair = (room.clone(), sender.clone());
            if !self.members.contains(&pair) {
                return Err(StoreError::NotMember);
            }
            // A member who left and joined again in this batch starts unmuted.
            if let Some(&until) = self.muted.get(&pair)
                && until > self.now
                && self.members_before.contains(&pair)
                && !self.joined_sites.contains_key(&pair)
            {
                return Err(StoreError::Muted(until));
            }
        }
        let kind = EventKind::Message {
            body: body.as_str().to_owned(),
            client_id: *client_id,
            files: files.to_vec(),
        };
        let Some(client_id) = client_id else {
            self.hold(room, None, files)?;
            return self.append(room, sender.clone(), kind);
        };
        // A retry is answered with the message stored the first time,
        // whether by an earlier batch or earlier in this one.
        let key = (room.clone(), sender.clone(), *client_id);
        let earlier = self
            .stored
            .get(&key)
            .or_else(|| self.pending.get(&key).and_then(|&i| self.events.get(i)));
        if let Some(event) = earlier {
            return Ok(Written {
                event: event.clone(),
                duplicate: true,
                freed: Vec::new(),
            });
        }
        self.hold(room, Some(*client_id), files)?;
        let written = self.append(room, sender.clone(), kind)?;
        self.pending.insert(key, self.events.len() - 1);
        Ok(written)
    }

    /// Binds a new message's files to it: each must still exist and be
    /// held by no other message. One that already names this message (a
    /// retried send, written before its repeat was looked up) stays as it
    /// is: the stored message's unique key then answers for the repeat.
    fn hold(
        &mut self,
        room: &RoomId,
        client_id: Option<ClientId>,
        files: &[Attachment],
    ) -> Result<(), StoreError> {
        let mut fresh = Vec::with_capacity(files.len());
        for file in files {
            let Some(holder) = self.files.get(&file.id) else {
                return Err(StoreError::FileGone(file.id.clone()));
            };
            match (&holder.room, holder.client_id) {
                (None, _) if !fresh.contains(&&file.id) => fresh.push(&file.id),
                (Some(r), Some(c)) if r == room && Some(c) == client_id => {}
                // Bound to its room before messages were recorded (before
                // migration 0011, or by an older node): taken there as then.
                (Some(r), None) if r == room => {}
                _ => return Err(StoreError::FileTaken(file.id.clone())),
            }
        }
        for id in fresh {
            let holder = Holder {
                room: Some(room.clone()),
                client_id,
            };
            self.files.insert(id.clone(), holder);
            self.bound.push((id.clone(), room.clone(), client_id));
        }
        Ok(())
    }
}
