//! The chat opens without its server: the loader from the browser's copy
//! (used stale while the browser asks again) or from the site's own files,
//! and the widget from its service worker's cache, with the link to the
//! chat server fully down; a new build deployed under an open chat.

use crate::harness::{Engine, Link, PATIENCE, Page, World};
use natter_tests::Db;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Scenario 1 in Chromium.
pub async fn the_chat_opens_from_the_cache_with_the_server_down(db: Db) {
    the_chat_opens_from_the_cache_in(db, Engine::Chromium).await;
}

/// Scenario 1: Alice opened the chat once; the chat server becomes
/// unreachable (no page, no script, no socket); she reloads the host page
/// and the chat opens from her browser with her rooms and the last 1,000
/// messages; she writes five messages, and they arrive once, in order,
/// when the server is back, without a reload. Run in every engine; says
/// which of the widget's fallbacks ran in each.
pub async fn the_chat_opens_from_the_cache_in(db: Db, engine: Engine) {
    let world = World::new(db).await;
    let team = world
        .group("Team", &[("alice", "Alice"), ("bob", "Bob")])
        .await;
    let dialog = world.dialog("alice", "bob").await;
    world.post(&team, "bob", "welcome to the team").await;
    let history: Vec<String> = (1..=1000).map(|i| format!("history {i}")).collect();
    world.post_many(&dialog, "bob", &history).await;
    let stored: Vec<String> = world
        .rows(&dialog)
        .await
        .into_iter()
        .map(|r| r.body)
        .collect();

    // The loader comes from the chat server's `widget.js`, which the
    // browser's HTTP cache keeps and uses stale; except in WebKitGTK's
    // MiniBrowser, whose automation sessions keep no HTTP cache between
    // loads: there the site hosts its own copy, as the README offers.
    let page = match engine {
        Engine::WebKit => Page::SelfHosted,
        Engine::Chromium | Engine::Firefox => Page::Plain,
    };
    let alice = world.person_in("alice", engine).await;
    alice.visit_page(page).await;
    alice.wait_status("Online").await;
    alice.choose("Bob").await;
    alice.scroll_to_start(&stored[0]).await;
    alice.wait_message(&stored[999], PATIENCE).await;
    let shell = alice.wait_shell_kept().await;
    let fallbacks = alice
        .js(
            "return {
               storage: document.documentElement.getAttribute('data-storage'),
               locks: !!(navigator.locks && navigator.locks.request),
             };",
            vec![],
        )
        .await;
    eprintln!(
        "{engine:?}: the loader from {}; the offline shell: {shell}; storage: {}; \
         tabs coordinate with {}",
        if page == Page::Plain {
            "the chat server, kept by the HTTP cache"
        } else {
            "the site's own copy (no HTTP cache between loads in this browser's automation)"
        },
        fallbacks["storage"],
        if fallbacks["locks"] == true {
            "Web Locks"
        } else {
            "the fallback without Web Locks (each tab on its own)"
        }
    );
    assert_eq!(
        shell, "service-worker",
        "{engine:?} has service workers in the chat's frame"
    );

    // The loader's copy is stale after a second: only
    // stale-while-revalidate lets the browser use it now.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    alice.proxy.set(Link::Down);
    alice.reload().await;
    alice.open_chat().await;
    alice.wait_offline().await;
    alice.choose("Bob").await;
    alice.wait_message(&stored[999], PATIENCE).await;
    let first_paint = alice.first_paint().await;
    alice.scroll_to_start(&stored[0]).await;
    assert_eq!(
        alice.bodies().await,
        stored,
        "Alice should see all 1,000 messages from her browser, in order"
    );
    alice.choose("Team").await;
    alice.wait_message("welcome to the team", PATIENCE).await;
    alice.choose("Bob").await;

    let mine: Vec<String> = (1..=5)
        .map(|i| format!("written with the server down #{i}"))
        .collect();
    alice.send_all(&mine).await;
    alice
        .wait_pending(5, "her five messages shown as sending")
        .await;
    assert_eq!(world.rows(&dialog).await.len(), 1000, "nothing sent yet");

    alice.proxy.set(Link::Up);
    alice.wait_status("Online").await;
    alice.wait_pending(0, "her messages to be sent").await;
    // Late duplicates would come with the next drain: a window to see
    // that none comes (an absence is no condition to wait for).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = world.rows(&dialog).await;
    let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
    let mut expected: Vec<&str> = stored.iter().map(String::as_str).collect();
    expected.extend(mine.iter().map(String::as_str));
    assert_eq!(
        bodies, expected,
        "the server should hold the history, then Alice's five messages once each, in order"
    );
    let ids: std::collections::HashSet<_> = rows[1000..]
        .iter()
        .filter_map(|r| r.client_id.clone())
        .collect();
    assert_eq!(ids.len(), 5, "each of her messages has its own client id");
    eprintln!(
        "{engine:?}: first paint of the message list with the chat server down: \
         {first_paint:.0} ms after the chat's page started ({db:?})"
    );
    world.finish(vec![alice]).await;
}

/// Scenario 2: a new build is deployed while Alice's chat is open: the
/// open chat keeps working, her next load runs the new build, and with
/// the server down after that, the new build opens from her browser.
pub async fn a_new_build_is_picked_up_on_the_next_load(db: Db) {
    let (mut world, room, alice, bob) = World::dialog_of_two(db).await;
    assert_eq!(alice.wait_shell_kept().await, "service-worker");
    let old = alice.loaded_scripts().await;
    assert!(
        !old.is_empty(),
        "the widget's files are named by their hash"
    );

    let next = next_build(&world.server.widget_dir, &world.scratch_dir("next-build"));
    world.deploy(next.dir.clone(), &[&alice, &bob]).await;
    alice.wait_status("Online").await;
    bob.wait_status("Online").await;
    alice.type_and_send("sent from the old build").await;
    bob.wait_message("sent from the old build", PATIENCE).await;
    bob.type_and_send("answered after the deploy").await;
    alice
        .wait_message("answered after the deploy", PATIENCE)
        .await;
    assert_eq!(alice.loaded_scripts().await, old, "no reload, no new files");

    alice.browser.refresh().await.expect("reload");
    alice.open_chat().await;
    alice.wait_status("Online").await;
    let loaded = alice.loaded_scripts().await;
    assert!(
        !loaded.is_empty() && loaded.iter().all(|p| p.contains(&next.hash)),
        "the next load runs the new build only, yet loaded {loaded:?}"
    );
    alice.choose("Bob").await;
    alice
        .wait_message("answered after the deploy", PATIENCE)
        .await;
    alice.type_and_send("sent from the new build").await;
    bob.wait_message("sent from the new build", PATIENCE).await;

    // The worker of the new build replaces the old one and its files.
    let version = world.shell_version().await;
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let caches = alice.shell_caches().await;
        if caches == [format!("natter-shell-{version}")] {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the browser should keep the new build only, yet holds {caches:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    alice.wait_shell_kept().await;
    alice.proxy.set(Link::Down);
    alice.browser.refresh().await.expect("reload");
    alice.open_chat().await;
    alice.wait_offline().await;
    let loaded = alice.loaded_scripts().await;
    assert!(
        !loaded.is_empty() && loaded.iter().all(|p| p.contains(&next.hash)),
        "offline, the new build opens from the cache, yet loaded {loaded:?}"
    );
    alice.choose("Bob").await;
    alice
        .wait_message("sent from the new build", PATIENCE)
        .await;
    let rows = world.rows(&room).await;
    let bodies: Vec<&str> = rows.iter().map(|r| r.body.as_str()).collect();
    assert_eq!(
        bodies,
        [
            "sent from the old build",
            "answered after the deploy",
            "sent from the new build"
        ]
    );
    world.finish(vec![alice, bob]).await;
}

/// Scenario 3: the site hosts its own copy of the loader, pinned with
/// Subresource Integrity: the launcher appears with the chat server
/// down; a copy whose hash is wrong is refused by the browser, and the
/// host page keeps working.
pub async fn a_self_hosted_loader_is_pinned_by_its_hash(db: Db) {
    let world = World::new(db).await;
    let dialog = world.dialog("alice", "bob").await;
    world.post(&dialog, "bob", "hello from Bob").await;
    let alice = world.person("alice").await;
    alice.visit_page(Page::SelfHosted).await;
    alice.wait_status("Online").await;
    alice.choose("Bob").await;
    alice.wait_message("hello from Bob", PATIENCE).await;
    alice.wait_shell_kept().await;

    alice.proxy.set(Link::Down);
    alice.browser.refresh().await.expect("reload");
    alice.open_chat().await;
    alice.wait_offline().await;
    alice.choose("Bob").await;
    alice.wait_message("hello from Bob", PATIENCE).await;

    alice.proxy.set(Link::Up);
    alice
        .browser
        .goto(&alice.page_url(Page::SelfHostedWrongHash))
        .await
        .expect("the host page loads");
    alice
        .wait(
            "the browser to refuse the loader",
            "return window.loaderRefused === true;",
        )
        .await;
    let page = alice
        .js(
            "document.getElementById('counter').click();
             return {
               chat: document.querySelectorAll('[data-natter], iframe').length,
               counter: document.getElementById('counter').textContent,
               title: document.getElementById('title').textContent,
             };",
            vec![],
        )
        .await;
    assert_eq!(
        page,
        serde_json::json!({"chat": 0, "counter": "Clicked 1", "title": "A shop that embeds Natter"}),
        "a refused loader leaves no chat, and the page works"
    );
    world.finish(vec![alice]).await;
}

/// A copy of a widget build under new names: what the next deploy of a
/// changed widget looks like.
struct NextBuild {
    dir: PathBuf,
    /// The hash in the new build's file names.
    hash: String,
}

/// Copies the build in `from` into `to`, renaming the files named by the
/// widget's hash (the JS glue and the wasm) and every reference to them.
fn next_build(from: &Path, to: &Path) -> NextBuild {
    let index = std::fs::read_to_string(from.join("index.html")).expect("index.html");
    let old = index
        .split("natter-client-")
        .nth(1)
        // Trunk writes the hash without leading zeros: up to 16 digits.
        .map(|rest| &rest[..rest.bytes().take_while(u8::is_ascii_hexdigit).count()])
        .filter(|h| (8..=16).contains(&h.len()))
        .expect("index.html names the widget's files by their hash")
        .to_string();
    let hash: String = old
        .chars()
        .map(|c| if c == 'f' { '0' } else { 'f' })
        .collect();
    copy_renamed(from, to, &old, &hash);
    NextBuild {
        dir: to.to_path_buf(),
        hash,
    }
}

fn copy_renamed(from: &Path, to: &Path, old: &str, new: &str) {
    std::fs::create_dir_all(to).expect("build directory");
    for entry in std::fs::read_dir(from).expect("read the build") {
        let entry = entry.expect("a file of the build");
        let name = entry.file_name().to_string_lossy().replace(old, new);
        let target = to.join(&name);
        if entry.file_type().expect("file type").is_dir() {
            copy_renamed(&entry.path(), &target, old, new);
            continue;
        }
        let bytes = std::fs::read(entry.path()).expect("read a file of the build");
        let bytes = match String::from_utf8(bytes) {
            Ok(text) if !name.ends_with(".wasm") => text.replace(old, new).into_bytes(),
            Ok(text) => text.into_bytes(),
            Err(err) => err.into_bytes(),
        };
        std::fs::write(&target, bytes).expect("write the new build");
    }
}
