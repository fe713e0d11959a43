//! The IndexedDB store in a real browser. Each test opens its own database
//! (a unique name) and deletes it at the end. Run with
//! `cargo test -p natter-client --target wasm32-unknown-unknown`.
#![cfg(target_arch = "wasm32")]

use natter_client::chat::RoomRecord;
use natter_client::db::{Db, SCHEMA_VERSION};
use natter_client::error::ClientError;
use natter_shared::sync::{EntryState, OutboxEntry, OutgoingFile};
use natter_shared::{ClientId, Event, EventKind, RoomId, RoomInfo, RoomKind, Seq, UserId};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

fn unique_name(test: &str) -> String {
    format!("natter-test:{test}:{}", uuid::Uuid::now_v7())
}

fn room() -> RoomId {
    RoomId::parse("r_ab").unwrap()
}

fn entry(n: u8, body: &str) -> OutboxEntry {
    OutboxEntry {
        client_id: ClientId::parse(&format!("0191e6b2-7c3a-7d4e-8f00-1234567890{n:02x}")).unwrap(),
        room: room(),
        body: body.into(),
        created_at: 1_000 + i64::from(n),
        files: Vec::new(),
    }
}

fn event(seq: Seq, body: &str) -> Event {
    Event {
        room: room(),
        seq,
        ts: 10 * seq as i64,
        sender: Some(UserId::parse("bob").unwrap()),
        kind: EventKind::Message {
            body: body.into(),
            client_id: None,
            files: Vec::new(),
        },
    }
}

fn record() -> RoomRecord {
    RoomRecord::new(RoomInfo {
        id: room(),
        kind: RoomKind::Dialog,
        title: None,
        members: vec![],
        member_count: 0,
        last_seq: 0,
        created_at: 0,
        read: 0,
        unread: 0,
    })
}

fn bodies(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Message { body, .. } => Some(body.clone()),
            _ => None,
        })
        .collect()
}

async fn cleanup(db: Db) {
    let name = db.name().to_string();
    drop(db);
    Db::delete(&name).await.unwrap();
}

#[wasm_bindgen_test]
async fn a_v1_database_upgrades_and_keeps_its_outbox() {
    let name = unique_name("upgrade");
    let v1 = Db::open_at(&name, 1).await.unwrap();
    assert_eq!(v1.version().unwrap(), 1);
    v1.compose(&entry(1, "written by v1")).await.unwrap();
    drop(v1);

    let db = Db::open(&name).await.unwrap();
    assert_eq!(db.version().unwrap(), SCHEMA_VERSION);
    let outbox = db.outbox().await.unwrap();
    assert_eq!(outbox, [(entry(1, "written by v1"), EntryState::Queued)]);
    // The index v2 added covers the entry written before it existed.
    let in_room = db.room_outbox(&room()).await.unwrap();
    assert_eq!(in_room.len(), 1);
    cleanup(db).await;
}

#[wasm_bindgen_test]
async fn a_message_on_its_way_is_one_outbox_record_written_whole_or_not_at_all() {
    let db = Db::open(&unique_name("atomic")).await.unwrap();
    db.compose(&entry(1, "kept")).await.unwrap();
    assert_eq!(
        db.outbox().await.unwrap(),
        [(entry(1, "kept"), EntryState::Queued)]
    );
    // The outbox is its only record: nothing is copied into `messages`.
    assert_eq!(db.message_records(&room()).await.unwrap(), 0);

    // A write that fails before its transaction ends leaves nothing.
    let err = db.compose_then_fail(&entry(2, "never")).await.unwrap_err();
    assert!(matches!(err, ClientError::Storage(_)), "{err:?}");
    assert_eq!(db.outbox().await.unwrap().len(), 1);
    assert_eq!(db.room_outbox(&room()).await.unwrap().len(), 1);
    cleanup(db).await;
}

#[wasm_bindgen_test]
async fn an_older_codes_pending_copy_goes_when_its_message_settles() {
    let db = Db::open(&unique_name("legacy")).await.unwrap();
    for n in [1, 2] {
        db.compose(&entry(n, "from before")).await.unwrap();
        db.put_legacy_pending_copy(&entry(n, "from before"))
            .await
            .unwrap();
    }
    assert_eq!(db.message_records(&room()).await.unwrap(), 2);
    // Never shown as an event.
    assert!(db.messages(&room(), 50).await.unwrap().is_empty());

    let sent = Event {
        room: room(),
        seq: 1,
        ts: 99,
        sender: Some(UserId::parse("alice").unwrap()),
        kind: EventKind::Message {
            body: "from before".into(),
            client_id: Some(entry(1, "").client_id),
            files: Vec::new(),
        },
    };
    db.ack(&entry(1, "from before"), &sent, None).await.unwrap();
    db.discard(&entry(2, "from before")).await.unwrap();
    // What remains is the acknowledged event alone.
    assert_eq!(db.message_records(&room()).await.unwrap(), 1);
    assert_eq!(db.messages(&room(), 50).await.unwrap(), [sent]);
    assert!(db.outbox().await.unwrap().is_empty());
    cleanup(db).await;
}

#[wasm_bindgen_test]
async fn the_outbox_survives_closing_and_reopening() {
    let name = unique_name("reopen");
    let db = Db::open(&name).await.unwrap();
    db.compose(&entry(2, "second")).await.unwrap();
    db.compose(&entry(1, "first")).await.unwrap();
    db.set_state(
        &entry(2, "second"),
        &EntryState::Failed {
            code: natter_shared::ErrorCode::NotMember,
            message: "no".into(),
        },
    )
    .await
    .unwrap();
    drop(db);

    let db = Db::open(&name).await.unwrap();
    let outbox = db.outbox().await.unwrap();
    let bodies: Vec<_> = outbox.iter().map(|(e, _)| e.body.as_str()).collect();
    assert_eq!(bodies, ["first", "second"], "oldest first");
    assert!(matches!(outbox[1].1, EntryState::Failed { .. }));
    cleanup(db).await;
}

#[wasm_bindgen_test]
async fn catch_up_pages_advance_the_cursor() {
    let db = Db::open(&unique_name("pages")).await.unwrap();
    let mut room_record = record();
    room_record.cursor = 2;
    room_record.oldest = Some(1);
    db.store_events(&room_record, &[event(1, "one"), event(2, "two")])
        .await
        .unwrap();
    room_record.cursor = 3;
    db.store_events(&room_record, &[event(3, "three")])
        .await
        .unwrap();

    let stored = db.room(&room()).await.unwrap().unwrap();
    assert_eq!(stored.cursor, 3);
    assert_eq!(db.rooms().await.unwrap().len(), 1);
    let shown = db.messages(&room(), 50).await.unwrap();
    assert_eq!(bodies(&shown), ["one", "two", "three"]);
    let latest = db.messages(&room(), 2).await.unwrap();
    assert_eq!(bodies(&latest), ["two", "three"]);
    let older = db.messages_before(&room(), 3, 50).await.unwrap();
    assert_eq!(bodies(&older), ["one", "two"]);
    cleanup(db).await;
}

#[wasm_bindgen_test]
async fn a_room_sent_afresh_replaces_what_was_held_and_its_cursor_keeps_its_time() {
    let db = Db::open(&unique_name("reset")).await.unwrap();
    let mut room_record = record();
    room_record.cursor = 3;
    room_record.cursor_ts = Some(3_000);
    room_record.read = 3;
    db.store_events(
        &room_record,
        &[event(1, "one"), event(2, "two"), event(3, "three")],
    )
    .await
    .unwrap();
    let stored = db.room(&room()).await.unwrap().unwrap();
    assert_eq!((stored.cursor_ts, stored.read), (Some(3_000), 3));

    room_record.cursor = 2;
    room_record.cursor_ts = Some(9_000);
    db.reset_room(&room_record, &[event(1, "one"), event(2, "two again")])
        .await
        .unwrap();
    let shown = db.messages(&room(), 50).await.unwrap();
    assert_eq!(
        bodies(&shown),
        ["one", "two again"],
        "nothing of the other history"
    );
    assert_eq!(db.room(&room()).await.unwrap().unwrap().cursor, 2);
    cleanup(db).await;
}

#[wasm_bindgen_test]
async fn the_room_left_open_is_remembered() {
    let db = Db::open(&unique_name("open")).await.unwrap();
    assert_eq!(db.open_room().await.unwrap(), None);
    db.set_open_room(Some(&room())).await.unwrap();
    assert_eq!(db.open_room().await.unwrap(), Some(room()));
    db.set_open_room(None).await.unwrap();
    assert_eq!(db.open_room().await.unwrap(), None, "back to the list");
    cleanup(db).await;
}

#[wasm_bindgen_test]
async fn an_ack_turns_the_pending_message_into_a_sent_one() {
    let db = Db::open(&unique_name("ack")).await.unwrap();
    let mine = entry(1, "hello");
    db.compose(&mine).await.unwrap();
    let sent = Event {
        room: room(),
        seq: 1,
        ts: 99,
        sender: Some(UserId::parse("alice").unwrap()),
        kind: EventKind::Message {
            body: mine.body.clone(),
            client_id: Some(mine.client_id),
            files: Vec::new(),
        },
    };
    let mut room_record = record();
    room_record.cursor = 1;
    db.ack(&mine, &sent, Some(&room_record)).await.unwrap();

    assert_eq!(db.messages(&room(), 50).await.unwrap(), [sent]);
    assert!(db.outbox().await.unwrap().is_empty());
    assert_eq!(db.room(&room()).await.unwrap().unwrap().cursor, 1);
    cleanup(db).await;
}

#[wasm_bindgen_test]
async fn each_user_has_a_database_of_their_own() {
    let site = unique_name("site");
    let alice = Db::open(&natter_client::db::db_name(&site, "alice"))
        .await
        .unwrap();
    alice
        .set_user(&UserId::parse("alice").unwrap())
        .await
        .unwrap();
    alice.compose(&entry(1, "alice's")).await.unwrap();
    let bob = Db::open(&natter_client::db::db_name(&site, "bob"))
        .await
        .unwrap();
    assert_eq!(bob.user().await.unwrap(), None);
    assert!(bob.outbox().await.unwrap().is_empty());
    assert_eq!(
        alice.user().await.unwrap(),
        Some(UserId::parse("alice").unwrap())
    );
    cleanup(alice).await;
    cleanup(bob).await;
}

fn blob(text: &str) -> web_sys::Blob {
    let parts = js_sys::Array::of1(&text.into());
    web_sys::Blob::new_with_str_sequence(&parts).unwrap()
}

fn with_files(n: u8, keys: &[&str]) -> OutboxEntry {
    let mut e = entry(n, "caption");
    e.files = keys
        .iter()
        .map(|k| OutgoingFile {
            key: k.to_string(),
            name: format!("{k}.txt"),
            size: 5,
            mime: "text/plain".into(),
            id: None,
        })
        .collect();
    e
}

async fn text_of(blob: &web_sys::Blob) -> String {
    let text = wasm_bindgen_futures::JsFuture::from(blob.text())
        .await
        .unwrap();
    text.as_string().unwrap()
}

#[wasm_bindgen_test]
async fn a_message_with_files_keeps_their_bytes_until_it_is_acked_or_discarded() {
    let db = Db::open(&unique_name("files")).await.unwrap();
    let first = with_files(1, &["a", "b"]);
    db.compose_with_files(
        &first,
        &[("a".into(), blob("aaaaa")), ("b".into(), blob("bbbbb"))],
    )
    .await
    .unwrap();
    let second = with_files(2, &["c"]);
    db.compose_with_files(&second, &[("c".into(), blob("ccccc"))])
        .await
        .unwrap();
    assert_eq!(db.waiting_count().await.unwrap(), 3);
    assert_eq!(db.outbox().await.unwrap().len(), 2);

    // Where an upload stands survives a reopen.
    db.set_upload_url("a", Some("/files/f_1")).await.unwrap();
    let name = db.name().to_string();
    drop(db);
    let db = Db::open(&name).await.unwrap();
    let a = db.waiting("a").await.unwrap().expect("kept");
    assert_eq!(a.url.as_deref(), Some("/files/f_1"));
    assert_eq!(text_of(&a.blob).await, "aaaaa");
    assert!(db.waiting("b").await.unwrap().unwrap().url.is_none());

    let sent = event(1, "caption");
    db.ack(&first, &sent, None).await.unwrap();
    assert_eq!(db.waiting_count().await.unwrap(), 1);
    db.discard(&second).await.unwrap();
    assert_eq!(db.waiting_count().await.unwrap(), 0);
    assert!(db.outbox().await.unwrap().is_empty());
    cleanup(db).await;
}

#[wasm_bindgen_test]
async fn kept_files_are_evicted_least_recently_used_first() {
    let db = Db::open(&unique_name("kept")).await.unwrap();
    assert!(db.keep("x", 40.0, 1.0, 100.0).await.unwrap().is_empty());
    assert!(db.keep("y", 40.0, 2.0, 100.0).await.unwrap().is_empty());
    // x opened again: now y is the oldest.
    assert!(db.keep("x", 40.0, 3.0, 100.0).await.unwrap().is_empty());
    assert_eq!(db.keep("z", 40.0, 4.0, 100.0).await.unwrap(), ["y"]);
    assert!(db.kept("y").await.unwrap().is_none());
    assert_eq!(db.kept("x").await.unwrap().unwrap().used, 3.0);
    // One larger than the cap is kept alone.
    assert_eq!(db.keep("big", 500.0, 5.0, 100.0).await.unwrap(), ["x", "z"]);
    cleanup(db).await;
}
