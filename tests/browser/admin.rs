//! The admin panel in a real browser. An admin made with `natter admin
//! add` signs in (a wrong password first), finds the message Alice
//! reported from her widget, deletes it (it goes from Alice's and Bob's
//! open widgets, and from Alice's browser's copy), bans Bob (his widget is
//! refused), sees a change sent from another site's page refused, and is
//! rate-limited after too many wrong passwords. On SQLite it also takes the
//! README's screenshots of the panel.

use crate::harness::{HostSite, PATIENCE, Person, World};
use fantoccini::Locator;
use natter_tests::{ApiClient, Db, TestSite, User, natter_admin};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const EMAIL: &str = "moderator@example.com";
const PASSWORD: &str = "a long enough password";

/// `natter admin add EMAIL` on the world's database, the password on
/// standard input.
fn add_admin(world: &World) {
    let password = format!("{PASSWORD}\n");
    let out = natter_admin(&world.server.database_url, &["add", EMAIL], &password);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The admin: a browser on the panel.
struct Admin<'a> {
    person: &'a Person,
    base: String,
}

impl Admin<'_> {
    async fn open(&self, path: &str) {
        self.person
            .browser
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap_or_else(|e| panic!("the panel's {path} loads: {e}"));
    }

    /// The page's visible text.
    async fn text(&self) -> String {
        let v = self
            .person
            .js("return document.body.innerText;", vec![])
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    async fn wait_text(&self, what: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = self.text().await;
            if text.contains(what) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the panel never said {what:?}; it says:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn sign_in(&self, password: &str) {
        self.open("/admin/sign-in").await;
        let b = &self.person.browser;
        let email = b
            .find(Locator::Css("input[name=email]"))
            .await
            .expect("e-mail field");
        email.send_keys(EMAIL).await.expect("typing");
        let field = b
            .find(Locator::Css("input[name=password]"))
            .await
            .expect("password field");
        field.send_keys(password).await.expect("typing");
        b.find(Locator::Css("form button[type=submit]"))
            .await
            .expect("the button")
            .click()
            .await
            .expect("click");
    }

    /// Clicks the button labelled `label` (the first one there is).
    async fn click(&self, label: &str) {
        let clicked = self
            .person
            .js(
                "var b = Array.from(document.querySelectorAll('button')).find(b => b.textContent.trim() === arguments[0]);
                 if (!b) return false; b.click(); return true;",
                vec![serde_json::json!(label)],
            )
            .await;
        assert_eq!(
            clicked,
            serde_json::json!(true),
            "no {label:?} button:\n{}",
            self.text().await
        );
    }

    /// The value shown after the label `label` on a credentials page.
    async fn shown(&self, label: &str) -> String {
        let v = self
            .person
            .js(
                "var dt = Array.from(document.querySelectorAll('dt')).find(d => d.textContent === arguments[0]);
                 return dt ? dt.nextElementSibling.textContent : null;",
                vec![serde_json::json!(label)],
            )
            .await;
        v.as_str()
            .unwrap_or_else(|| panic!("no {label} shown"))
            .to_string()
    }

    /// Fills the field `name` of the page's forms.
    async fn fill(&self, name: &str, value: &str) {
        let filled = self
            .person
            .js(
                "var f = document.querySelector('[name=\"' + arguments[0] + '\"]');
                 if (!f) return false; f.value = arguments[1]; return true;",
                vec![serde_json::json!(name), serde_json::json!(value)],
            )
            .await;
        assert_eq!(filled, serde_json::json!(true), "no field {name}");
    }

    async fn shot(&self, name: &str) {
        let png = self.person.browser.screenshot().await.expect("screenshot");
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot directory");
        std::fs::write(dir.join(name), png).expect("writing the screenshot");
    }
}

pub async fn an_admin_signs_in_and_moderates_from_the_panel(db: Db) {
    let (world, room, alice, bob) = World::dialog_of_two(db).await;
    add_admin(&world);
    let browser = world.person("moderator").await;
    let admin = Admin {
        person: &browser,
        base: format!("http://{}", world.server.addr),
    };
    admin
        .person
        .browser
        .set_window_size(1280, 900)
        .await
        .expect("window size");

    // A wrong password is refused; the right one lets the admin in.
    admin.sign_in("not the password").await;
    admin.wait_text("Wrong e-mail address or password.").await;
    admin.sign_in(PASSWORD).await;
    admin.wait_text("A shop").await;
    assert!(admin.text().await.contains(EMAIL));
    admin.wait_text("This node: connections").await;

    // Alice reports Bob's spam from her widget, with a note.
    bob.type_and_send("buy cheap pills at example.net").await;
    bob.type_and_send("(sorry, that was not me)").await;
    alice
        .wait_message("(sorry, that was not me)", PATIENCE)
        .await;
    alice
        .js(
            "window.prompt = () => 'spam';
             Array.from(document.querySelectorAll('.messages li.msg'))
               .find(l => l.textContent.includes('buy cheap pills')).querySelector('.report').click();
             return null;",
            vec![],
        )
        .await;
    alice
        .wait(
            "the report taken",
            "return Array.from(document.querySelectorAll('.messages .report')).some(b => b.textContent === 'Reported');",
        )
        .await;

    // The panel shows it with the message and the note.
    let site = format!("/admin/sites/{}", world.site.id);
    admin.open(&site).await;
    admin.wait_text("buy cheap pills at example.net").await;
    assert!(admin.text().await.contains("spam"));
    if db == Db::Sqlite {
        admin.shot("admin-site.png").await;
    }

    // Deleting it takes it from both open widgets, and from Alice's copy.
    admin.click("Delete message").await;
    admin
        .wait_text("The message was deleted for everyone.")
        .await;
    for person in [&alice, &bob] {
        person
            .wait(
                "the message shown deleted",
                "var ls = Array.from(document.querySelectorAll('.messages li.msg'));
                 return ls.some(l => l.classList.contains('deleted'))
                   && !ls.some(l => l.textContent.includes('cheap pills'));",
            )
            .await;
    }
    alice.proxy.set(crate::harness::Link::NoSocket);
    alice.reload().await;
    alice.open_chat().await;
    alice
        .wait_message("(sorry, that was not me)", PATIENCE)
        .await;
    let kept = alice
        .js(
            "return document.querySelector('.messages').textContent;",
            vec![],
        )
        .await;
    assert!(
        !kept.as_str().unwrap_or_default().contains("cheap pills"),
        "alice's copy kept it"
    );
    alice.proxy.set(crate::harness::Link::Up);

    // The room's page: its history, the deletion in it.
    admin.open(&format!("{site}/rooms/{room}")).await;
    admin.wait_text("(sorry, that was not me)").await;
    assert!(!admin.text().await.contains("cheap pills"));
    if db == Db::Sqlite {
        admin.shot("admin-room.png").await;
    }

    // Banning Bob closes his widget.
    admin.open(&format!("{site}/users/bob")).await;
    admin.click("Ban from the site").await;
    admin.wait_text("Banned from the site.").await;
    bob.wait(
        "the ban explained",
        "var n = document.querySelector('.notice'); return !!n && n.textContent.includes('closed to you');",
    )
    .await;

    // A change sent from another site's page is refused (the browser says
    // where it came from, and sends no session cookie with it) and
    // changes nothing.
    admin
        .person
        .browser
        .goto(&alice.page_url(crate::harness::Page::Plain))
        .await
        .expect("host page");
    admin
        .person
        .js(
            "var f = document.createElement('form'); f.method = 'post'; f.action = arguments[0];
             var i = document.createElement('input'); i.name = 'name'; i.value = 'Taken over'; f.appendChild(i);
             document.body.appendChild(f); f.submit(); return null;",
            vec![serde_json::json!(format!("{}{site}/rename", admin.base))],
        )
        .await;
    admin
        .wait_text("this change was sent from another site")
        .await;
    admin.open(&site).await;
    admin.wait_text("A shop").await;
    assert!(!admin.text().await.contains("Taken over"));

    // Every change is in the audit log, under the admin's address.
    admin.open(&format!("{site}/audit")).await;
    for action in ["message.delete", "user.ban"] {
        admin.wait_text(action).await;
    }
    assert!(admin.text().await.contains(&format!("admin:{EMAIL}")));

    // Signed out, then too many wrong passwords: refused for a while,
    // even the right one.
    admin.open(&site).await;
    admin.click("Sign out").await;
    admin.wait_text("Password").await;
    for _ in 0..5 {
        admin.sign_in("still not it").await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    admin.sign_in(PASSWORD).await;
    admin.wait_text("too many sign-in attempts").await;
    world.finish(vec![alice, bob, browser]).await;
}

/// Scenario: the admin creates a site in the panel for a new host site;
/// its credentials then work: its backend opens a dialog with the API key
/// and its pages sign tokens with the secret, and Ann and Ben chat on it.
/// The admin rotates the token secret with a 3 s grace: a reload within
/// it still signs in with the page's old token; after it the server
/// refuses that token.
pub async fn a_site_created_in_the_panel_chats_until_its_secret_is_rotated(db: Db) {
    let world = World::new(db).await;
    add_admin(&world);
    let browser = world.person("moderator").await;
    let admin = Admin {
        person: &browser,
        base: format!("http://{}", world.server.addr),
    };
    admin.sign_in(PASSWORD).await;
    admin.wait_text("New site").await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("host binds");
    let origin = format!("http://{}", listener.local_addr().expect("address"));
    admin.fill("name", "Clinic").await;
    admin.fill("origins", &origin).await;
    admin.click("Create the site").await;
    admin.wait_text("Site created").await;
    let clinic = TestSite {
        id: natter_shared::SiteId::parse(admin.shown("Site id").await).expect("a site id"),
        secret: natter_server::auth::Secret::new(admin.shown("Token secret").await),
        api_key: admin.shown("API key").await,
    };
    let host = HostSite::start(listener, clinic.clone()).await;
    let api = ApiClient::new(world.http.clone(), world.server.addr, &clinic.api_key);
    api.dialog(User::named("ann", "Ann"), User::named("ben", "Ben"))
        .await;
    let ann = world.person_at("ann", host.origin()).await;
    let ben = world.person_at("ben", host.origin()).await;
    tokio::join!(ann.visit(), ben.visit());
    tokio::join!(ann.choose("Ben"), ben.choose("Ann"));
    ann.type_and_send("Hello from the clinic").await;
    ben.wait_message("Hello from the clinic", PATIENCE).await;

    // A new secret, the old one good for 3 s more.
    admin.open(&format!("/admin/sites/{}", clinic.id)).await;
    admin.fill("grace_secs", "3").await;
    admin.click("Rotate the token secret").await;
    admin.wait_text("New token secret").await;
    let started = Instant::now();
    ben.reload().await;
    ben.open_chat().await;
    ben.wait_status("Online").await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "signed in within the grace"
    );
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(started.elapsed())).await;
    ben.reload().await;
    ben.open_chat().await;
    ben.wait_status("Sign-in refused (token_invalid)").await;
    world.finish(vec![ann, ben, browser]).await;
}
