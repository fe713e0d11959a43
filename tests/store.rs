//! The store suite, run against SQLite and against MariaDB alike.

use natter_server::store::writer::{WriteOp, Writer};
use natter_server::store::{PageFrom, Store, StoreError};
use natter_shared::text::Body;
use natter_shared::{ClientId, Event, EventKind, Member, RoomId, ServerFrame, SiteId, UserId};
use natter_tests::*;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

struct Fixture {
    store: Store,
    writer: Writer,
    site: SiteId,
    other: SiteId,
    scratch: Scratch,
}

async fn fixture(db: Db) -> Fixture {
    let (url, scratch) = fresh_database(db).await;
    let store = Store::connect(&url, 4)
        .await
        .expect("store opens and migrates");
    let (writer, _task) = Writer::spawn(
        store.clone(),
        |_: &SiteId, _: &Event| {},
        Default::default(),
        64,
        4,
        CancellationToken::new(),
    );
    let site = store.create_site(None, "a", &[]).await.unwrap().site.id;
    let other = store.create_site(None, "b", &[]).await.unwrap().site.id;
    Fixture {
        store,
        writer,
        site,
        other,
        scratch,
    }
}

impl Fixture {
    /// A group of the site with alice alone in it.
    async fn alices_group(&self, title: &str) -> RoomId {
        let members = [member("alice")];
        let room = self.store.create_group(&self.site, title, &members);
        room.await.unwrap().id
    }
}

fn user(id: &str) -> UserId {
    UserId::parse(id).unwrap()
}

fn member(id: &str) -> Member {
    Member::new(user(id), Some(id.to_uppercase()))
}

fn msg(
    site: &SiteId,
    room: &RoomId,
    from: &str,
    body: &str,
    client_id: Option<ClientId>,
) -> WriteOp {
    WriteOp::Message {
        site: site.clone(),
        room: room.clone(),
        sender: Some(user(from)),
        client_id,
        body: Body::parse(body.into(), usize::MAX).expect("a valid body"),
        files: Vec::new(),
    }
}

async fn seqs_are_gap_free_per_room_and_retries_are_stored_once(db: Db) {
    let f = fixture(db).await;
    let a = f
        .store
        .create_group(&f.site, "A", &[member("alice"), member("bob")])
        .await
        .unwrap();
    let b = f
        .store
        .create_group(&f.site, "B", &[member("alice")])
        .await
        .unwrap();
    assert_eq!(a.last_seq, 0);
    // Many concurrent writes to two rooms: group commit takes them together.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let writer = f.writer.clone();
        let op = msg(
            &f.site,
            if i % 2 == 0 { &a.id } else { &b.id },
            "alice",
            &format!("m{i}"),
            Some(cid()),
        );
        tasks.push(tokio::spawn(async move { writer.write(op).await }));
    }
    let mut a_seqs = Vec::new();
    for t in tasks {
        let w = t.await.unwrap().unwrap();
        if w.event.room == a.id {
            a_seqs.push(w.event.seq);
        }
    }
    a_seqs.sort_unstable();
    assert_eq!(a_seqs, (1..=100).collect::<Vec<_>>());
    let info = f.store.room(&f.site, &b.id).await.unwrap().unwrap();
    assert_eq!(info.last_seq, 100);

    let id = cid();
    let first = f
        .writer
        .write(msg(&f.site, &a.id, "bob", "once", Some(id)))
        .await
        .unwrap();
    let again = f
        .writer
        .write(msg(&f.site, &a.id, "bob", "once", Some(id)))
        .await
        .unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(first.event, again.event);
    // The same client id from another sender is another message.
    let alices = f
        .writer
        .write(msg(&f.site, &a.id, "alice", "mine", Some(id)))
        .await
        .unwrap();
    assert_eq!(alices.event.seq, first.event.seq + 1);
    f.scratch.remove().await;
}

/// A send stored by an earlier batch, repeated in a batch of new sends to
/// the same room and another: the repeat is answered with the stored
/// message, the new ones are stored once each, and no seq is skipped.
async fn a_repeat_among_new_sends_is_stored_once(db: Db) {
    let f = fixture(db).await;
    let (a, b) = (f.alices_group("A").await, f.alices_group("B").await);
    let first_id = cid();
    let first = f
        .writer
        .write(msg(&f.site, &a, "alice", "first", Some(first_id)))
        .await
        .unwrap();
    // Queued together, so that the repeat shares a batch with new sends.
    let mut replies = Vec::new();
    for (n, room) in [(1, &a), (2, &b), (3, &a)] {
        let op = msg(&f.site, room, "alice", &format!("new {n}"), Some(cid()));
        replies.push(f.writer.submit(op).await.unwrap());
        if n == 2 {
            let again = msg(&f.site, &a, "alice", "first", Some(first_id));
            replies.push(f.writer.submit(again).await.unwrap());
        }
    }
    let mut answers = Vec::new();
    for reply in replies {
        let written = reply.await.unwrap().unwrap();
        answers.push((written.event.room, written.event.seq, written.duplicate));
    }
    assert_eq!(
        answers,
        [
            (a.clone(), 2, false),
            (b.clone(), 1, false),
            (a.clone(), first.event.seq, true),
            (a.clone(), 3, false),
        ]
    );
    let page = (f.store)
        .events_page(&a, PageFrom::After(0), 10)
        .await
        .unwrap();
    let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3], "the repeat is not stored again");
    f.scratch.remove().await;
}

/// Many rooms written at once, through as many writer tasks as MariaDB
/// gets by default: each room's writes keep the order they were queued
/// in, and its events are published in seq order.
async fn writers_side_by_side_keep_each_rooms_order(db: Db) {
    let f = fixture(db).await;
    let published = Arc::new(std::sync::Mutex::new(Vec::<(RoomId, u64)>::new()));
    let seen = published.clone();
    let stop = CancellationToken::new();
    let (writer, task) = Writer::spawn(
        f.store.clone(),
        move |_: &SiteId, event: &Event| {
            seen.lock().unwrap().push((event.room.clone(), event.seq));
        },
        Default::default(),
        16,
        4,
        stop.clone(),
    );
    let mut rooms = Vec::new();
    for r in 0..12 {
        rooms.push(f.alices_group(&format!("R{r}")).await);
    }
    // Queued round the rooms, without waiting: batches of every writer
    // are in flight together.
    let mut replies = Vec::new();
    for n in 1..=40u64 {
        for room in &rooms {
            let op = msg(&f.site, room, "alice", &format!("{n}"), Some(cid()));
            replies.push((room.clone(), n, writer.submit(op).await.unwrap()));
        }
    }
    for (room, n, reply) in replies {
        let written = reply.await.unwrap().unwrap();
        assert_eq!((&written.event.room, written.event.seq), (&room, n));
        let EventKind::Message { body, .. } = &written.event.kind else {
            panic!("a message: {:?}", written.event);
        };
        assert_eq!(body, &n.to_string());
    }
    stop.cancel();
    task.await.unwrap();
    let published = published.lock().unwrap().clone();
    assert_eq!(published.len(), 12 * 40);
    for room in &rooms {
        let seqs: Vec<u64> = (published.iter())
            .filter(|(r, _)| r == room)
            .map(|(_, seq)| *seq)
            .collect();
        assert_eq!(seqs, (1..=40).collect::<Vec<_>>(), "published in order");
    }
    f.scratch.remove().await;
}

async fn membership_and_sites_are_enforced(db: Db) {
    let f = fixture(db).await;
    let room = f
        .store
        .create_group(&f.site, "A", &[member("alice")])
        .await
        .unwrap();
    let err = f
        .writer
        .write(msg(&f.site, &room.id, "mallory", "hi", None))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotMember), "{err:?}");
    let err = f
        .writer
        .write(msg(&f.other, &room.id, "alice", "hi", None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RoomNotFound),
        "another site's room does not exist: {err:?}"
    );
    assert!(f.store.room(&f.other, &room.id).await.unwrap().is_none());
    assert!(
        f.store
            .rooms_for_user(&f.other, &user("alice"), None, usize::MAX)
            .await
            .unwrap()
            .is_empty()
    );

    let joined = f
        .writer
        .write(WriteOp::Join {
            site: f.site.clone(),
            room: room.id.clone(),
            user: user("bob"),
        })
        .await
        .unwrap();
    assert!(matches!(joined.event.kind, EventKind::MemberJoined { .. }));
    let err = f
        .writer
        .write(WriteOp::Join {
            site: f.site.clone(),
            room: room.id.clone(),
            user: user("bob"),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict));
    assert!(
        f.store
            .is_member(&f.site, &room.id, &user("bob"))
            .await
            .unwrap()
    );
    f.writer
        .write(WriteOp::Leave {
            site: f.site.clone(),
            room: room.id.clone(),
            user: user("bob"),
        })
        .await
        .unwrap();
    assert!(
        !f.store
            .is_member(&f.site, &room.id, &user("bob"))
            .await
            .unwrap()
    );
    let err = f
        .writer
        .write(WriteOp::Leave {
            site: f.site.clone(),
            room: room.id.clone(),
            user: user("bob"),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound));
    let info = f.store.room(&f.site, &room.id).await.unwrap().unwrap();
    assert_eq!(info.last_seq, 2);
    f.scratch.remove().await;
}

async fn dialogs_are_unique_per_pair_and_rooms_list_members(db: Db) {
    let f = fixture(db).await;
    let (d1, created) = f
        .store
        .open_dialog(&f.site, &member("bob"), &member("alice"))
        .await
        .unwrap();
    assert!(created);
    let (d2, created) = f
        .store
        .open_dialog(&f.site, &member("alice"), &member("bob"))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(d1.id, d2.id);
    let (d3, created) = f
        .store
        .open_dialog(&f.other, &member("alice"), &member("bob"))
        .await
        .unwrap();
    assert!(created, "each site has its own alice and bob");
    assert_ne!(d1.id, d3.id);
    // Ids are case-sensitive: Alice is not alice.
    let (d4, created) = f
        .store
        .open_dialog(&f.site, &member("Alice"), &member("bob"))
        .await
        .unwrap();
    assert!(created);
    assert_ne!(d4.id, d1.id);
    let g = f
        .store
        .create_group(&f.site, "G", &[member("alice"), member("carol")])
        .await
        .unwrap();
    let rooms = f
        .store
        .rooms_for_user(&f.site, &user("alice"), None, usize::MAX)
        .await
        .unwrap();
    let mut ids: Vec<_> = rooms.iter().map(|r| r.id.clone()).collect();
    ids.sort();
    let mut want = vec![d1.id.clone(), g.id.clone()];
    want.sort();
    assert_eq!(ids, want);
    for r in &rooms {
        let names: Vec<_> = r
            .members
            .iter()
            .map(|m| m.id.as_str().to_string())
            .collect();
        if r.id == g.id {
            assert_eq!(names, ["alice", "carol"]);
            assert_eq!(r.members[0].name.as_deref(), Some("ALICE"));
        } else {
            assert_eq!(names, ["alice", "bob"]);
        }
    }
    f.scratch.remove().await;
}

async fn history_pages_both_ways(db: Db) {
    let f = fixture(db).await;
    let room = f
        .store
        .create_group(&f.site, "H", &[member("alice")])
        .await
        .unwrap();
    for i in 1..=30 {
        f.writer
            .write(msg(&f.site, &room.id, "alice", &format!("m{i}"), None))
            .await
            .unwrap();
    }
    let seqs = |evs: Vec<natter_shared::Event>| evs.into_iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(
        seqs(f.store.events_after(&room.id, 0, 5).await.unwrap()),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(
        seqs(f.store.events_after(&room.id, 28, 5).await.unwrap()),
        [29, 30]
    );
    assert_eq!(
        seqs(f.store.events_before(&room.id, u64::MAX, 3).await.unwrap()),
        [28, 29, 30]
    );
    assert_eq!(
        seqs(f.store.events_before(&room.id, 3, 10).await.unwrap()),
        [1, 2]
    );
    let e = &f.store.events_after(&room.id, 9, 1).await.unwrap()[0];
    assert!(matches!(&e.kind, EventKind::Message { body, .. } if body == "m10"));
    assert_eq!(e.sender.as_ref().map(|s| s.as_str()), Some("alice"));
    f.scratch.remove().await;
}

async fn events_are_read_by_place_in_one_go(db: Db) {
    let f = fixture(db).await;
    let mut rooms = Vec::new();
    for name in ["P", "Q"] {
        let room = f
            .store
            .create_group(&f.site, name, &[member("alice")])
            .await
            .unwrap();
        for i in 1..=3 {
            f.writer
                .write(msg(&f.site, &room.id, "alice", &format!("{name}{i}"), None))
                .await
                .unwrap();
        }
        rooms.push(room.id);
    }
    let (p, q) = (&rooms[0], &rooms[1]);
    let places = [
        (q.clone(), 3),
        (p.clone(), 2),
        (p.clone(), 99),
        (q.clone(), 1),
    ];
    let mut found: Vec<(RoomId, u64, String)> = f
        .store
        .events_at(&places)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            let body = match e.kind {
                EventKind::Message { body, .. } => body,
                other => panic!("expected a message, got {other:?}"),
            };
            (e.room, e.seq, body)
        })
        .collect();
    found.sort();
    let mut expected = vec![
        (p.clone(), 2, "P2".to_string()),
        (q.clone(), 1, "Q1".to_string()),
        (q.clone(), 3, "Q3".to_string()),
    ];
    expected.sort();
    assert_eq!(found, expected, "the place without an event is left out");
    assert!(f.store.events_at(&[]).await.unwrap().is_empty());
    // More places than one query takes.
    let many: Vec<(RoomId, u64)> = (1..=250).map(|s| (p.clone(), s)).collect();
    assert_eq!(f.store.events_at(&many).await.unwrap().len(), 3);
    f.scratch.remove().await;
}

async fn sites_are_found_by_hashed_api_key(db: Db) {
    let f = fixture(db).await;
    let new = f
        .store
        .create_site(None, "c", &["https://c.example".into()])
        .await
        .unwrap();
    let found = f
        .store
        .site_by_api_key(new.api_key.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.id, new.site.id);
    assert_eq!(found.origins, ["https://c.example"]);
    assert!(f.store.site_by_api_key("nk_wrong").await.unwrap().is_none());
    let rotated = f.store.rotate_api_key(&new.site.id).await.unwrap();
    assert!(
        f.store
            .site_by_api_key(new.api_key.expose())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        f.store
            .site_by_api_key(rotated.expose())
            .await
            .unwrap()
            .is_some()
    );
    f.scratch.remove().await;
}

/// Writes queued together share one transaction: each is still decided
/// as if it were alone, in order, against what the earlier ones did.
async fn one_batch_decides_each_write_in_order(db: Db) {
    let f = fixture(db).await;
    let group = f
        .store
        .create_group(&f.site, "G", &[member("alice")])
        .await
        .unwrap();
    let (dialog, _) = f
        .store
        .open_dialog(&f.site, &member("alice"), &member("bob"))
        .await
        .unwrap();
    let stored = cid();
    f.writer
        .write(msg(&f.site, &dialog.id, "alice", "before", Some(stored)))
        .await
        .unwrap();
    let join = |who: &str| WriteOp::Join {
        site: f.site.clone(),
        room: group.id.clone(),
        user: user(who),
    };
    let leave = |who: &str| WriteOp::Leave {
        site: f.site.clone(),
        room: group.id.clone(),
        user: user(who),
    };
    let again = cid();
    let ops = vec![
        // Not yet a member, then a member, then gone again.
        msg(&f.site, &group.id, "carol", "too early", None),
        join("carol"),
        msg(&f.site, &group.id, "carol", "hello", Some(again)),
        msg(&f.site, &group.id, "carol", "hello", Some(again)),
        join("carol"),
        leave("carol"),
        msg(&f.site, &group.id, "carol", "too late", None),
        leave("carol"),
        // A retry of a message an earlier batch stored.
        msg(&f.site, &dialog.id, "alice", "before", Some(stored)),
        msg(&f.site, &dialog.id, "bob", "reply", Some(cid())),
        // Another site's writer cannot see this room.
        msg(&f.other, &dialog.id, "alice", "elsewhere", None),
        WriteOp::Join {
            site: f.site.clone(),
            room: dialog.id.clone(),
            user: user("carol"),
        },
    ];
    // Submitted before any is awaited, so they queue up for one batch.
    let mut replies = Vec::new();
    for op in ops {
        replies.push(f.writer.submit(op).await.unwrap());
    }
    let mut results = Vec::new();
    for reply in replies {
        results.push(reply.await.unwrap());
    }
    let seq = |i: usize| match &results[i] {
        Ok(w) => (w.event.seq, w.duplicate),
        Err(err) => panic!("write {i} failed: {err:?}"),
    };
    let err = |i: usize| match &results[i] {
        Ok(w) => panic!("write {i} was stored: {w:?}"),
        Err(err) => format!("{err:?}"),
    };
    assert_eq!(err(0), "NotMember");
    assert_eq!(seq(1), (1, false));
    assert_eq!(seq(2), (2, false));
    assert_eq!(
        seq(3),
        (2, true),
        "a retry in the same batch is the same message"
    );
    assert_eq!(err(4), "Conflict");
    assert_eq!(seq(5), (3, false));
    assert_eq!(err(6), "NotMember");
    assert_eq!(err(7), "NotFound");
    assert_eq!(seq(8), (1, true), "a retry of an earlier batch's message");
    assert_eq!(seq(9), (2, false));
    assert_eq!(err(10), "RoomNotFound");
    assert!(err(11).starts_with("Invalid"), "{}", err(11));

    let stored_group = f.store.events_after(&group.id, 0, 100).await.unwrap();
    let kinds: Vec<&str> = stored_group.iter().map(|e| e.kind.name()).collect();
    assert_eq!(kinds, ["member_joined", "message", "member_left"]);
    assert_eq!(
        f.store
            .room(&f.site, &group.id)
            .await
            .unwrap()
            .unwrap()
            .last_seq,
        3
    );
    let stored_dialog = f.store.events_after(&dialog.id, 0, 100).await.unwrap();
    assert_eq!(stored_dialog.len(), 2);
    assert_eq!(
        f.store
            .room(&f.site, &dialog.id)
            .await
            .unwrap()
            .unwrap()
            .last_seq,
        2
    );
    assert!(
        !f.store
            .is_member(&f.site, &group.id, &user("carol"))
            .await
            .unwrap()
    );
    f.scratch.remove().await;
}

async fn a_removed_site_is_seen_through_the_cache(db: Db) {
    let f = fixture(db).await;
    assert!(f.store.site_exists_cached(&f.site).await.unwrap());
    // Cached now: still there from the cache, then gone once removed
    // (removing forgets the cached copy).
    assert!(f.store.site_exists_cached(&f.site).await.unwrap());
    f.store.remove_site(&f.site).await.unwrap();
    assert!(!f.store.site_exists_cached(&f.site).await.unwrap());
    assert!(!f.store.site_exists_cached(&f.site).await.unwrap());
    assert!(f.store.site_exists_cached(&f.other).await.unwrap());
    let never = SiteId::parse("never-made").unwrap();
    assert!(!f.store.site_exists_cached(&never).await.unwrap());
    f.scratch.remove().await;
}

/// The batched writes of read markers move each one only forward: a lower
/// marker written after a higher one (another device's, an older batch
/// retried) changes nothing, nor does one for someone not in the room.
async fn read_markers_move_only_forward(db: Db) {
    let f = fixture(db).await;
    let room = f
        .store
        .create_group(&f.site, "R", &[member("alice"), member("bob")])
        .await
        .unwrap();
    for i in 0..3 {
        let op = msg(&f.site, &room.id, "alice", &format!("m{i}"), Some(cid()));
        f.writer.write(op).await.unwrap();
    }
    let marker = |who: &str, seq| (room.id.clone(), user(who), seq);
    f.store
        .advance_read_markers(Arc::new(vec![marker("bob", 3), marker("carol", 2)]))
        .await
        .unwrap();
    f.store
        .advance_read_markers(Arc::new(vec![marker("bob", 2)]))
        .await
        .unwrap();
    let bob = f.store.room_for_user(&f.site, &room.id, &user("bob")).await;
    let bob = bob.unwrap().expect("bob is a member");
    assert_eq!((bob.read, bob.unread), (3, 0), "never back");
    let carol = f
        .store
        .room_for_user(&f.site, &room.id, &user("carol"))
        .await;
    assert!(carol.unwrap().is_none(), "no member row made for carol");
    f.scratch.remove().await;
}

/// Pages written as JSON straight from the rows (SQLite) are the pages
/// of events as serde writes them, whichever way and however far.
async fn pages_in_wire_form_match_the_events(db: Db) {
    let f = fixture(db).await;
    let room = f.alices_group("Wire").await;
    let (site, id) = (&f.site, &room);
    for i in 1..=6 {
        let body = format!("m{i} \"quoted\" \u{e9}");
        let op = msg(site, id, "alice", &body, (i % 2 == 0).then(cid));
        f.writer.write(op).await.unwrap();
    }
    let (join, leave) = (
        WriteOp::Join {
            site: site.clone(),
            room: id.clone(),
            user: user("bob"),
        },
        WriteOp::Leave {
            site: site.clone(),
            room: id.clone(),
            user: user("bob"),
        },
    );
    f.writer.write(join).await.unwrap();
    let delete = WriteOp::Delete {
        site: site.clone(),
        room: id.clone(),
        seq: 3,
    };
    f.writer.write(delete).await.unwrap();
    f.writer.write(leave).await.unwrap();
    let newest = f.store.events_before(id, u64::MAX, 1).await.unwrap()[0].seq;
    let kinds = f.store.events_after(id, 0, 100).await.unwrap();
    assert!(
        kinds
            .iter()
            .any(|e| matches!(e.kind, EventKind::Deleted { .. }))
    );
    assert!(
        kinds
            .iter()
            .any(|e| matches!(e.kind, EventKind::MessageDeleted { .. }))
    );
    let froms = [0, 1, 4, newest - 1, newest, newest + 5];
    let froms = froms
        .iter()
        .flat_map(|&s| [PageFrom::After(s), PageFrom::Before(s)])
        .chain([PageFrom::Before(u64::MAX)]);
    for from in froms {
        for limit in [1, 3, 200] {
            let page = f.store.events_page(id, from, limit).await.unwrap();
            let json = f.store.events_page_json(id, from, limit).await.unwrap();
            assert_eq!(json.len(), page.events.len());
            assert_eq!(json.more, page.more, "{from:?} {limit}");
            let expected = serde_json::to_string(&ServerFrame::History {
                room: id.clone(),
                events: page.events,
                more: page.more,
            })
            .unwrap();
            let frame = json.frame("history", id, false).unwrap();
            assert_eq!(frame, expected, "{from:?} {limit}");
        }
    }
    f.scratch.remove().await;
}

on_both!(
    pages_in_wire_form_match_the_events,
    read_markers_move_only_forward,
    a_removed_site_is_seen_through_the_cache,
    one_batch_decides_each_write_in_order,
    seqs_are_gap_free_per_room_and_retries_are_stored_once,
    writers_side_by_side_keep_each_rooms_order,
    a_repeat_among_new_sends_is_stored_once,
    membership_and_sites_are_enforced,
    dialogs_are_unique_per_pair_and_rooms_list_members,
    history_pages_both_ways,
    events_are_read_by_place_in_one_go,
    sites_are_found_by_hashed_api_key,
);
