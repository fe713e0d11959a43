//! The sync state machines under every interleaving a property test can
//! think of: sends, acks, transient refusals, disconnects and reconnects
//! end with every message stored exactly once, and in order per room.

use super::*;
use crate::protocol::EventKind;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};

fn room(i: usize) -> RoomId {
    RoomId::parse(format!("r{i}")).unwrap()
}

fn entry(n: u32, room_idx: usize) -> OutboxEntry {
    OutboxEntry {
        client_id: ClientId::from_uuid(uuid::Uuid::from_u128(u128::from(n) + 1)),
        room: room(room_idx),
        body: format!("m{n}"),
        created_at: i64::from(n),
        files: Vec::new(),
    }
}

#[derive(Debug, Clone)]
enum Step {
    Write(usize),
    Connect,
    Disconnect,
    /// The server handles this many frames from the wire.
    Serve(usize),
    /// The server fails the next frame with a transient error.
    Fail,
    /// This many answers reach the client.
    Deliver(usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0usize..3).prop_map(Step::Write),
        1 => Just(Step::Connect),
        1 => Just(Step::Disconnect),
        3 => (1usize..5).prop_map(Step::Serve),
        3 => (1usize..5).prop_map(Step::Deliver),
    ]
}

/// A model server: one message per (room, client id), acks in order.
#[derive(Default)]
struct Server {
    rooms: HashMap<RoomId, Vec<ClientId>>,
    fail_next: bool,
}

enum Answer {
    Ack(ClientId, Seq),
    Error(ClientId, ErrorCode),
}

impl Server {
    fn handle(&mut self, e: &OutboxEntry) -> Answer {
        if std::mem::take(&mut self.fail_next) {
            return Answer::Error(e.client_id, ErrorCode::Internal);
        }
        let log = self.rooms.entry(e.room.clone()).or_default();
        let seq = match log.iter().position(|c| *c == e.client_id) {
            Some(i) => i + 1,
            None => {
                log.push(e.client_id);
                log.len()
            }
        };
        Answer::Ack(e.client_id, seq as Seq)
    }
}

fn run(steps: Vec<Step>, window: usize) -> (Server, Vec<OutboxEntry>, bool) {
    let mut server = Server::default();
    let mut outbox = Outbox::new(window);
    let mut written = Vec::new();
    let mut up: VecDeque<OutboxEntry> = VecDeque::new();
    let mut down: VecDeque<Answer> = VecDeque::new();
    let mut connected = false;
    let mut failures = false;
    let mut n = 0;

    let pump = |outbox: &mut Outbox, up: &mut VecDeque<OutboxEntry>, connected: bool| {
        if connected {
            up.extend(outbox.next_batch());
        }
    };
    let settle = |outbox: &mut Outbox, answer: Answer| match answer {
        Answer::Ack(c, seq) => {
            outbox.ack(&c, seq, 0);
        }
        Answer::Error(c, code) => {
            outbox.reject(&c, code, "transient");
        }
    };

    for step in steps {
        match step {
            Step::Write(r) => {
                let e = entry(n, r);
                n += 1;
                written.push(e.clone());
                outbox.push(e);
            }
            Step::Connect => connected = true,
            Step::Disconnect => {
                connected = false;
                up.clear();
                down.clear();
                outbox.on_disconnect();
            }
            Step::Serve(k) => {
                for _ in 0..k {
                    if let Some(e) = up.pop_front() {
                        down.push_back(server.handle(&e));
                    }
                }
            }
            Step::Fail => {
                failures = true;
                server.fail_next = true;
            }
            Step::Deliver(k) => {
                for _ in 0..k {
                    if let Some(a) = down.pop_front() {
                        settle(&mut outbox, a);
                    }
                }
            }
        }
        pump(&mut outbox, &mut up, connected);
    }
    // The network comes back for good: drain.
    connected = true;
    for _ in 0..10_000 {
        pump(&mut outbox, &mut up, connected);
        while let Some(e) = up.pop_front() {
            down.push_back(server.handle(&e));
        }
        while let Some(a) = down.pop_front() {
            settle(&mut outbox, a);
        }
        if outbox.is_empty() {
            break;
        }
    }
    assert!(
        outbox.is_empty(),
        "the outbox drains once the network is back"
    );
    (server, written, failures)
}

fn check(server: &Server, written: &[OutboxEntry], ordered: bool) {
    let mut seen = HashSet::new();
    for log in server.rooms.values() {
        for c in log {
            assert!(seen.insert(*c), "stored twice: {c:?}");
        }
    }
    assert_eq!(seen.len(), written.len(), "every message stored");
    if ordered {
        for (r, log) in &server.rooms {
            let want: Vec<ClientId> = written
                .iter()
                .filter(|e| &e.room == r)
                .map(|e| e.client_id)
                .collect();
            assert_eq!(log, &want, "room {r} keeps the order of writing");
        }
    }
}

proptest! {
    #[test]
    fn any_interleaving_delivers_every_message_once_and_in_order(
        steps in proptest::collection::vec(step(), 0..200),
        window in 1usize..6,
    ) {
        let (server, written, _) = run(steps, window);
        check(&server, &written, true);
    }

    #[test]
    fn transient_refusals_never_lose_or_duplicate(
        steps in proptest::collection::vec(prop_oneof![4 => step(), 1 => Just(Step::Fail)], 0..200),
        window in 1usize..6,
    ) {
        let (server, written, failures) = run(steps, window);
        // A transient refusal can let a later message overtake; with a
        // window of one, order survives that too.
        check(&server, &written, !failures || window == 1);
    }

    #[test]
    fn cursors_recover_every_event_through_gaps_and_repeats(
        deliveries in proptest::collection::vec((0u64..40, any::<bool>()), 0..120),
        total in 1u64..40,
    ) {
        let r = room(0);
        let event = |seq: Seq| Event {
            room: r.clone(),
            seq,
            ts: 0,
            sender: None,
            kind: EventKind::Message { body: format!("e{seq}"), client_id: None, files: Vec::new() },
        };
        let mut cursors = Cursors::from_stored([(r.clone(), 0, None)]);
        let mut stored: Vec<Seq> = Vec::new();
        let resync = |cursors: &mut Cursors, stored: &mut Vec<Seq>| {
            let from = cursors.get(&r).unwrap_or(0);
            let page: Vec<Event> = (from + 1..=total).map(event).collect();
            let (fresh, gap) = cursors.apply_page(&r, &page);
            assert!(!gap);
            stored.extend(fresh.iter().map(|e| e.seq));
        };
        for (seq, dup) in deliveries {
            let seq = seq % total + 1;
            for _ in 0..if dup { 2 } else { 1 } {
                match cursors.apply_event(&event(seq)) {
                    Incoming::Next => stored.push(seq),
                    Incoming::Duplicate => {}
                    Incoming::Gap { .. } => resync(&mut cursors, &mut stored),
                }
            }
        }
        resync(&mut cursors, &mut stored);
        prop_assert_eq!(stored, (1..=total).collect::<Vec<_>>());
        prop_assert_eq!(cursors.get(&r), Some(total));
    }
}

#[test]
fn a_restored_outbox_resends_what_was_in_flight_and_keeps_failures() {
    let a = entry(1, 0);
    let b = entry(2, 0);
    let failed = EntryState::Failed {
        code: ErrorCode::NotMember,
        message: "gone".into(),
    };
    let mut outbox = Outbox::restore(8, [(a.clone(), EntryState::InFlight), (b.clone(), failed)]);
    assert_eq!(outbox.next_batch(), vec![a.clone()]);
    assert!(outbox.retry(&b.client_id));
    assert_eq!(outbox.next_batch(), vec![b.clone()]);
    assert!(matches!(
        outbox.ack(&a.client_id, 1, 5),
        Settled::Acked { seq: 1, .. }
    ));
    assert_eq!(
        outbox.ack(&a.client_id, 1, 5),
        Settled::Unknown,
        "an ack settles once"
    );
}

#[test]
fn permanent_refusals_fail_and_transient_ones_requeue() {
    let mut outbox = Outbox::new(4);
    let a = entry(1, 0);
    let b = entry(2, 1);
    outbox.push(a.clone());
    outbox.push(b.clone());
    outbox.push(a.clone()); // pushing the same id twice keeps one
    assert_eq!(outbox.next_batch().len(), 2);
    assert!(matches!(
        outbox.reject(&a.client_id, ErrorCode::NotMember, "no"),
        Settled::Failed { .. }
    ));
    assert!(matches!(
        outbox.reject(&b.client_id, ErrorCode::Internal, "oops"),
        Settled::Requeued { .. }
    ));
    assert_eq!(
        outbox.next_batch(),
        vec![b],
        "only the transient one is resent"
    );
    assert_eq!(outbox.len(), 2);
    assert!(outbox.discard(&a.client_id).is_some());
}

#[test]
fn a_page_for_a_new_room_starts_its_cursor_and_sync_lists_known_rooms() {
    let mut cursors = Cursors::default();
    let r = room(1);
    let ev = |seq| Event {
        room: r.clone(),
        seq,
        ts: 0,
        sender: None,
        kind: EventKind::Message {
            body: String::new(),
            client_id: None,
            files: Vec::new(),
        },
    };
    let (fresh, gap) = cursors.apply_page(&r, &[ev(40), ev(41)]);
    assert_eq!((fresh.len(), gap), (2, false));
    assert_eq!(cursors.get(&r), Some(41));
    assert!(cursors.apply_ack(&r, 42, 7));
    assert_eq!(cursors.apply_event(&ev(42)), Incoming::Duplicate);
    assert_eq!(cursors.apply_event(&ev(44)), Incoming::Gap { cursor: 42 });
    match cursors.sync_frame() {
        ClientFrame::Sync { cursors } => assert_eq!(
            cursors,
            vec![Cursor {
                room: r.clone(),
                seq: 42,
                ts: Some(7),
            }]
        ),
        other => panic!("{other:?}"),
    }
}

fn with_file(mut e: OutboxEntry, key: &str) -> OutboxEntry {
    e.files.push(OutgoingFile {
        key: key.to_string(),
        name: format!("{key}.pdf"),
        size: 10,
        mime: "application/pdf".to_string(),
        id: None,
    });
    e
}

#[test]
fn a_message_uploading_files_holds_back_its_room_only() {
    let mut outbox = Outbox::new(16);
    outbox.push(with_file(entry(1, 0), "a"));
    outbox.push(entry(2, 0));
    outbox.push(entry(3, 1));
    // Room 0 waits for its file; room 1 goes.
    let sent: Vec<_> = outbox.next_batch().iter().map(|e| e.body.clone()).collect();
    assert_eq!(sent, ["m3"]);
    assert_eq!(outbox.uploads().len(), 1);
    let id = FileId::parse("f1").unwrap();
    let changed = outbox.uploaded(&entry(1, 0).client_id, "a", id.clone());
    assert!(changed.is_some_and(|e| e.ready()));
    assert!(
        outbox
            .uploaded(&entry(1, 0).client_id, "a", id.clone())
            .is_none()
    );
    assert!(outbox.uploads().is_empty());
    let batch = outbox.next_batch();
    let sent: Vec<_> = batch.iter().map(|e| e.body.clone()).collect();
    assert_eq!(sent, ["m1", "m2"]);
    match batch[0].frame() {
        ClientFrame::Send { files, .. } => assert_eq!(files, [id]),
        other => panic!("not a send: {other:?}"),
    }
}

#[test]
fn a_refused_message_uploads_nothing_until_retried() {
    let mut outbox = Outbox::new(16);
    let e = with_file(entry(1, 0), "a");
    outbox.push(e.clone());
    outbox.reject(&e.client_id, ErrorCode::FileTooLarge, "too big");
    assert!(outbox.uploads().is_empty());
    assert!(outbox.retry(&e.client_id));
    assert_eq!(outbox.uploads().len(), 1);
}

#[test]
fn entry_states_read_back_as_written() {
    let states = [
        EntryState::Queued,
        EntryState::InFlight,
        EntryState::Failed {
            code: ErrorCode::NotMember,
            message: "gone".into(),
        },
    ];
    for state in states {
        let json = serde_json::to_string(&state).expect("encode");
        assert_eq!(
            serde_json::from_str::<EntryState>(&json).expect("decode"),
            state
        );
    }
    let err = serde_json::from_str::<EntryState>(r#"{"state":"failed","message":"x"}"#)
        .expect_err("no code");
    assert!(err.to_string().contains("missing field `code`"), "{err}");
}
