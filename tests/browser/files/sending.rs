//! Sending files: attached offline and sent after a reload, an upload cut
//! halfway and resumed, refusals, and cancelling.

use super::*;
use crate::harness::World;
use natter_tests::Db;
use serde_json::json;

/// Scenario 1: files attached offline (one dropped, one pasted) survive a
/// reload and are sent once the network returns, once, with the same
/// bytes.
pub async fn files_attached_offline_are_sent_after_a_reload(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    alice.wait_shell_kept().await;
    // The chat's server is out of reach (the host page is not: the page
    // reloads, the chat opens from its cache).
    alice.proxy.set(crate::harness::Link::Down);
    alice.wait_offline().await;

    let pdf = pdf_bytes(3 * 1024 * 1024, 7);
    let image = png(640, 480);
    // The PDF dropped on the conversation, the photo pasted.
    let dropped = [spec("certificate.pdf", "application/pdf", pdf.len(), 7)];
    attach_by(&alice, Hand::Drop, &dropped, 1).await;
    let pasted = [spec_of("photo.png", "image/png", &image)];
    attach_by(&alice, Hand::Paste, &pasted, 2).await;
    alice.type_and_send("The certificate and a photo").await;
    let shown = "var m = [...document.querySelectorAll('.msg.pending')];
         var last = m[m.length - 1];
         var img = last && last.querySelector('.uploading img.preview');
         return !!last && last.querySelectorAll('.uploading').length === 2
           && !!img && img.complete && img.naturalWidth === 640
           && last.querySelector('.uploading .file-name').textContent === 'certificate.pdf';";
    alice
        .wait("the message with its two files, the photo previewed", shown)
        .await;

    alice.reload().await;
    alice.open_chat().await;
    alice.choose("Bob").await;
    alice.wait("the same after the reload", shown).await;
    assert!(world.rows(&room).await.is_empty(), "nothing sent offline");

    alice.proxy.set(crate::harness::Link::Up);
    bob.wait(
        "the photo's thumbnail and the PDF's chip",
        "var i = document.querySelector('.files .file-image img');
         var c = document.querySelector('.files .file .file-name');
         return !!i && i.complete && i.naturalWidth > 0 && !!c && c.textContent === 'certificate.pdf';",
    )
    .await;
    alice.wait_pending(0, "her message sent").await;
    crate::offline::assert_delivered_once(
        &world,
        &room,
        &["The certificate and a photo".to_string()],
    )
    .await;
    let messages = stored(&world, &room).await;
    assert_eq!(messages.len(), 1, "{messages:?}");
    let files = &messages[0].1;
    assert_eq!(files.len(), 2, "both files, once: {files:?}");
    assert_eq!(files[0]["name"], "certificate.pdf");
    assert_eq!(files[1]["name"], "photo.png");
    assert_eq!(
        (files[1]["width"].clone(), files[1]["height"].clone()),
        (json!(640), json!(480))
    );
    let got = download(&world, files[0]["id"].as_str().expect("id")).await;
    assert_eq!(
        digest(&got),
        digest(&pdf),
        "the PDF arrives with the same bytes"
    );
    world.finish(vec![alice, bob]).await;
}

/// Scenario 2: a 20 MiB upload cut at about half, then the page reloaded,
/// continues from where the server stands once the link returns.
pub async fn an_upload_cut_halfway_continues(db: Db) {
    const SIZE: usize = 20 * 1024 * 1024;
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    alice.wait_shell_kept().await;
    let metric = "natter_upload_bytes_received_total";
    let before = received(&world, metric).await;
    alice.proxy.cut_after(SIZE as u64 / 2);
    attach(&alice, &[spec("slides.pdf", "application/pdf", SIZE, 3)]).await;
    alice.type_and_send("The slides").await;
    let deadline = std::time::Instant::now() + crate::harness::PATIENCE;
    while !alice.proxy.is_down() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never got halfway"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The bar shows what went up, and the message is not sent.
    alice
        .wait(
            "the progress bar part way",
            "var p = document.querySelector('.msg.pending .uploading progress');
             return !!p && p.value > 0 && p.value < p.max;",
        )
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let at_cut = received(&world, metric).await - before;
    assert!(
        world.rows(&room).await.is_empty(),
        "nothing sent before the file is up"
    );
    // The page is reloaded before the link returns: the upload continues
    // from what the store kept of it.
    alice.reload().await;
    alice.open_chat().await;
    alice.choose("Bob").await;
    alice
        .wait(
            "the message still uploading after the reload",
            "return document.querySelectorAll('.msg.pending .uploading').length === 1;",
        )
        .await;
    alice.proxy.set(crate::harness::Link::Up);

    bob.wait_message("The slides", crate::harness::PATIENCE)
        .await;
    bob.wait(
        "the slides' chip",
        "var c = document.querySelector('.files .file .file-name'); return !!c && c.textContent === 'slides.pdf';",
    )
    .await;
    let total = received(&world, metric).await - before;
    assert!(
        at_cut > 0 && at_cut < SIZE as u64,
        "the server held part of the file at the cut: {at_cut}"
    );
    assert!(
        (total as f64) < 1.5 * SIZE as f64,
        "the upload continued rather than starting over: {total} bytes received for {SIZE}"
    );
    let messages = stored(&world, &room).await;
    let id = messages[0].1[0]["id"].as_str().expect("id").to_string();
    assert_eq!(
        digest(&download(&world, &id).await),
        digest(&pdf_bytes(SIZE, 3))
    );
    world.finish(vec![alice, bob]).await;
}

/// Scenario 6, as the person sees it: a file over the size limit is
/// refused in the composer before anything is kept; one whose bytes are
/// of a type the site does not take (whatever it claims) is refused by the
/// server, and the message says so; nothing reaches the room.
pub async fn refused_files_say_why(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    let max = natter_shared::limits::MAX_FILE_BYTES as usize;
    attach(&alice, &[spec("huge.pdf", "application/pdf", max + 1, 1)]).await;
    alice.press_send().await;
    alice
        .wait(
            "the composer to say the file is too large",
            "var e = document.querySelector('form.composer .error');
             return !!e && e.textContent.includes('huge.pdf') && e.textContent.includes('too large');",
        )
        .await;
    alice
        .js(
            "document.querySelector('.attached .chip .remove').click();",
            vec![],
        )
        .await;
    // An executable that declares no type: only its bytes tell.
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.extend([0u8; 4096]);
    attach(&alice, &[spec_of("tool", "", &elf)]).await;
    alice.type_and_send("try this").await;
    alice
        .wait(
            "the message marked not sent, with the reason",
            "var m = document.querySelector('.msg.failed');
             return !!m && m.textContent.includes('file_type_refused') && !!m.querySelector('.retry');",
        )
        .await;
    assert!(
        world.rows(&room).await.is_empty(),
        "nothing reached the room"
    );
    assert_eq!(bob.bodies().await, Vec::<String>::new());
    world.finish(vec![alice, bob]).await;
}

/// A message whose file is uploading can be cancelled: it leaves the
/// conversation, its upload stops, and nothing reaches the room.
pub async fn an_upload_can_be_cancelled(db: Db) {
    const SIZE: usize = 20 * 1024 * 1024;
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    let metric = "natter_upload_bytes_received_total";
    alice.proxy.cut_after(SIZE as u64 / 4);
    attach(&alice, &[spec("draft.pdf", "application/pdf", SIZE, 5)]).await;
    alice.type_and_send("not this one").await;
    let deadline = std::time::Instant::now() + crate::harness::PATIENCE;
    while !alice.proxy.is_down() {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never started"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    alice
        .js(
            "document.querySelector('.msg.pending .cancel').click();",
            vec![],
        )
        .await;
    alice.wait_pending(0, "the cancelled message gone").await;
    alice.proxy.set(crate::harness::Link::Up);
    let at_cancel = received(&world, metric).await;
    // An absence is no condition to wait for: the upload gets a moment to
    // (wrongly) go on.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        received(&world, metric).await,
        at_cancel,
        "nothing more went up"
    );
    assert!(
        world.rows(&room).await.is_empty(),
        "nothing reached the room"
    );
    assert!(!alice.bodies().await.contains(&"not this one".to_string()));
    assert!(bob.bodies().await.is_empty());
    world.finish(vec![alice, bob]).await;
}
