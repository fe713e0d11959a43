//! The writer's own tests, against a scratch SQLite database.

use super::*;
use natter_shared::Member;
use std::sync::Mutex;

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("a user id")
}

fn message(site: &SiteId, room: &RoomId, n: u128) -> WriteOp {
    WriteOp::Message {
        site: site.clone(),
        room: room.clone(),
        sender: Some(user("a")),
        client_id: Some(ClientId::from_uuid(uuid::Uuid::from_u128(n))),
        body: Body::parse(format!("m{n}"), 100).expect("a body"),
        files: Vec::new(),
    }
}

/// One writer of batches of `batch_max` that publishes nothing, and
/// what stops it.
fn unpublished(
    store: &Store,
    batch_max: usize,
) -> (Writer, tokio::task::JoinHandle<()>, CancellationToken) {
    let stop = CancellationToken::new();
    let (writer, task) = Writer::spawn(
        store.clone(),
        |_, _| {},
        Default::default(),
        batch_max,
        1,
        stop.clone(),
    );
    (writer, task, stop)
}

/// A site with a dialog between `a` and `b`.
async fn dialog(store: &Store) -> (SiteId, natter_shared::RoomInfo) {
    let site = store
        .create_site(None, "s", &[])
        .await
        .expect("a site")
        .site
        .id;
    let member = |id: &str| Member::new(user(id), None);
    let (room, _) = store
        .open_dialog(&site, &member("a"), &member("b"))
        .await
        .expect("a dialog");
    (site, room)
}

#[test]
fn rooms_spread_over_the_writers_and_keep_theirs() {
    let rooms: Vec<RoomId> = (0..64)
        .map(|n| RoomId::parse(format!("r{n}")).expect("a room id"))
        .collect();
    let lanes: Vec<usize> = rooms.iter().map(|r| lane_of(r, 4)).collect();
    for lane in 0..4 {
        assert!(lanes.contains(&lane), "writer {lane} gets rooms");
    }
    let again: Vec<usize> = rooms.iter().map(|r| lane_of(r, 4)).collect();
    assert_eq!(lanes, again);
    assert!(rooms.iter().all(|r| lane_of(r, 1) == 0));
}

/// The database file grows only when the log is copied into it: with
/// the writer's own checkpoints far off, the checkpointer does it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_checkpointed_beside_the_writer() {
    let (store, path) = crate::store::scratch::open("checkpoint").await;
    let (site, room) = dialog(&store).await;
    let (writer, task, stop) = unpublished(&store, 64);
    let size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let before = size();
    let mut replies = Vec::new();
    for n in 1..=2000 {
        replies.push(
            writer
                .submit(message(&site, &room.id, n))
                .await
                .expect("queued"),
        );
    }
    for reply in replies {
        reply.await.expect("answered").expect("committed");
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() <= before && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(size() > before, "the log was copied into the database file");
    stop.cancel();
    task.await.expect("the writer ends");
    store.close().await;
    crate::store::scratch::remove(&path);
}

/// A file of `a`'s, uploaded and complete.
async fn file_of_a(store: &Store, site: &SiteId, name: &str) -> natter_shared::Attachment {
    let id = natter_shared::FileId::parse(format!("f{name}")).expect("a file id");
    store
        .create_upload(&id, site, &user("a"), name, 10, 1)
        .await
        .expect("an upload");
    let done = crate::store::Completed {
        mime: "application/pdf".into(),
        size: 10,
        width: None,
        height: None,
        thumb: false,
    };
    store.complete_file(&id, &done, 2).await.expect("complete");
    store
        .file(&id)
        .await
        .expect("read")
        .expect("there")
        .attachment()
}

#[tokio::test]
async fn a_file_goes_into_one_message_and_a_refused_one_binds_nothing() {
    let (store, path) = crate::store::scratch::open("file-holder").await;
    let (site, room) = dialog(&store).await;
    let (writer, task, stop) = unpublished(&store, 8);
    let (plan, notes) = (
        file_of_a(&store, &site, "plan").await,
        file_of_a(&store, &site, "notes").await,
    );
    let mut gone = plan.clone();
    gone.id = natter_shared::FileId::parse("fgone".to_string()).expect("a file id");
    let with = |n: u128, sender: &str, files: Vec<natter_shared::Attachment>| {
        let WriteOp::Message {
            site,
            room,
            client_id,
            body,
            ..
        } = message(&site, &room.id, n)
        else {
            unreachable!("a message")
        };
        WriteOp::Message {
            site,
            room,
            sender: Some(user(sender)),
            client_id,
            body,
            files,
        }
    };

    // Queued together, so that they share a batch: the plan goes into
    // the first message only; a stranger's refused send binds nothing;
    // a file deleted meanwhile is not carried.
    let ops = [
        with(1, "a", vec![plan.clone()]),
        with(2, "a", vec![plan.clone()]),
        with(3, "c", vec![notes.clone()]),
        with(4, "a", vec![gone.clone()]),
    ];
    let mut replies = Vec::new();
    for op in ops {
        replies.push(writer.submit(op).await.expect("queued"));
    }
    let mut results = Vec::new();
    for reply in replies {
        results.push(reply.await.expect("answered"));
    }
    let first = results[0].as_ref().expect("the first is stored").event.seq;
    assert!(
        matches!(&results[1], Err(StoreError::FileTaken(id)) if *id == plan.id),
        "{:?}",
        results[1]
    );
    assert!(
        matches!(&results[2], Err(StoreError::NotMember)),
        "{:?}",
        results[2]
    );
    assert!(
        matches!(&results[3], Err(StoreError::FileGone(id)) if *id == gone.id),
        "{:?}",
        results[3]
    );
    let held = store.file(&plan.id).await.expect("read").expect("there");
    let cid = |n: u128| ClientId::from_uuid(uuid::Uuid::from_u128(n));
    assert_eq!(
        (held.room.as_ref(), held.message),
        (Some(&room.id), Some(cid(1)))
    );
    let free = store.file(&notes.id).await.expect("read").expect("there");
    assert_eq!((free.room, free.message), (None, None));

    // A retry of the first is its repeat; the free file goes into a
    // message of its own, and then into no other.
    let again = writer
        .write(with(1, "a", vec![plan.clone()]))
        .await
        .expect("a repeat");
    assert!(again.duplicate);
    assert_eq!(again.event.seq, first);
    writer
        .write(with(5, "a", vec![notes.clone()]))
        .await
        .expect("stored");
    let taken = writer.write(with(6, "b", vec![notes.clone()])).await;
    assert!(matches!(taken, Err(StoreError::FileTaken(_))), "{taken:?}");

    // A file bound to its room before messages were recorded (no
    // client id) is taken there as it was then.
    let old = file_of_a(&store, &site, "old").await;
    sqlx::query("UPDATE files SET room_id = ? WHERE id = ?")
        .bind(room.id.as_str())
        .bind(old.id.as_str())
        .execute(store.pool())
        .await
        .expect("bound the old way");
    for n in [7, 8] {
        let written = writer.write(with(n, "a", vec![old.clone()])).await;
        assert!(written.is_ok(), "{written:?}");
    }

    // Only a file no message holds may be deleted.
    assert!(!store.delete_free_file(&plan.id).await.expect("asked"));
    let spare = file_of_a(&store, &site, "spare").await;
    assert!(store.delete_free_file(&spare.id).await.expect("asked"));

    stop.cancel();
    task.await.expect("the writer ends");
    store.close().await;
    crate::store::scratch::remove(&path);
}

#[tokio::test]
async fn events_are_published_after_commit_in_seq_order_and_repeats_again_as_stored() {
    let (store, path) = crate::store::scratch::open("writer").await;
    let (site, room) = dialog(&store).await;
    let published = Arc::new(Mutex::new(Vec::new()));
    let seen = published.clone();
    let publish = move |_: &SiteId, event: &Event| {
        seen.lock().expect("not poisoned").push(event.seq);
    };
    let stop = CancellationToken::new();
    let (writer, task) = Writer::spawn(
        store.clone(),
        publish,
        Default::default(),
        8,
        1,
        stop.clone(),
    );

    // Queued together, so that they share batches.
    let mut replies = Vec::new();
    for n in 1..=20 {
        replies.push(
            writer
                .submit(message(&site, &room.id, n))
                .await
                .expect("queued"),
        );
    }
    for (n, reply) in (1..=20).zip(replies) {
        let written = reply.await.expect("answered").expect("committed");
        assert_eq!(written.event.seq, n);
        // Answered after commit: the event is already published.
        assert!(published.lock().expect("not poisoned").contains(&n));
    }
    let again = writer
        .write(message(&site, &room.id, 5))
        .await
        .expect("committed");
    assert!(again.duplicate);
    assert_eq!(again.event.seq, 5);

    stop.cancel();
    task.await.expect("the writer ends");
    assert_eq!(
        *published.lock().expect("not poisoned"),
        (1..=20).chain([5]).collect::<Vec<u64>>(),
        "the repeat is published again as the event stored the first time"
    );
    store.close().await;
    crate::store::scratch::remove(&path);
}
