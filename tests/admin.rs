//! The admin panel over HTTP: accounts made with `natter admin add` (the
//! real binary), sign-in with its cookie, CSRF and rate limit, sessions
//! that end; sites created, renamed, re-originated, rotated and deleted;
//! messages deleted, members muted, users banned, reports dismissed,
//! every change in the audit log; an admin limited to one site sees no
//! other. Each test runs on SQLite and on MariaDB.

use natter_shared::{ErrorCode, ServerFrame};
use natter_tests::*;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

const PASSWORD: &str = "correct horse battery staple";

/// How long the first sample of the live numbers may take.
const WAIT_LIVE: std::time::Duration = std::time::Duration::from_secs(15);

/// `natter admin …` on the server's database, `stdin` the password.
async fn admin_command(app: &TestApp, args: &[&str], stdin: &str) -> std::process::Output {
    let url = app.database_url.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.to_string();
    off_runtime(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        natter_admin(&url, &args, &stdin)
    })
    .await
}

async fn add_admin(app: &TestApp, email: &str, sites: &[&str]) {
    let mut args = vec!["add", email];
    for site in sites {
        args.extend(["--site", site]);
    }
    let out = admin_command(app, &args, &format!("{PASSWORD}\n")).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A browser of the panel: its cookie and the CSRF token of the last page.
struct Panel<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookie: Option<String>,
    csrf: Option<String>,
}

/// The value of the first hidden `csrf` field of a page.
fn csrf_in(html: &str) -> Option<String> {
    let at = html.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    let end = html[at..].find('"')?;
    Some(html[at..at + end].to_string())
}

impl<'a> Panel<'a> {
    fn new(app: &'a TestApp) -> Panel<'a> {
        Panel {
            app,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookie: None,
            csrf: None,
        }
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> (StatusCode, String) {
        let res = self
            .http
            .post(self.app.url("/admin/sign-in"))
            .form(&[("email", email), ("password", password)])
            .send()
            .await
            .expect("answered");
        let status = res.status();
        if let Some(set) = res.headers().get(SET_COOKIE) {
            let set = set.to_str().expect("ascii").to_string();
            for flag in ["HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age="] {
                assert!(set.contains(flag), "{set} lacks {flag}");
            }
            assert!(!set.contains("Secure"), "plain http: {set}");
            self.cookie = set.split(';').next().map(str::to_string);
        }
        (status, res.text().await.unwrap_or_default())
    }

    fn with_cookie(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.cookie {
            Some(cookie) => req.header(COOKIE, cookie),
            None => req,
        }
    }

    /// GETs a page; keeps its CSRF token.
    async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let res = self
            .with_cookie(self.http.get(self.app.url(path)))
            .send()
            .await
            .expect("answered");
        let status = res.status();
        let location = res.headers().get(LOCATION).cloned();
        let text = res.text().await.unwrap_or_default();
        if let Some(token) = csrf_in(&text) {
            self.csrf = Some(token);
        }
        if let Some(location) = location {
            return (status, format!("-> {}", location.to_str().unwrap_or("")));
        }
        (status, text)
    }

    /// POSTs a form with the CSRF token; a redirect answers as `-> PATH`.
    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> (StatusCode, String) {
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        let csrf = self.csrf.clone().unwrap_or_default();
        form.push(("csrf", &csrf));
        self.post_raw(path, &form, None).await
    }

    async fn post_raw(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (StatusCode, String) {
        let mut req = self
            .with_cookie(self.http.post(self.app.url(path)))
            .form(form);
        if let Some(origin) = origin {
            req = req.header("origin", origin);
        }
        let res = req.send().await.expect("answered");
        let status = res.status();
        if let Some(location) = res.headers().get(LOCATION) {
            return (status, format!("-> {}", location.to_str().unwrap_or("")));
        }
        (status, res.text().await.unwrap_or_default())
    }
}

/// The value after `label` in a page that shows credentials.
fn shown(html: &str, label: &str) -> String {
    let at = html
        .find(&format!("<dt>{label}</dt>"))
        .unwrap_or_else(|| panic!("no {label} in {html}"));
    let rest = &html[at..];
    let start =
        rest.find("<code class=\"secret\">").expect("a secret") + "<code class=\"secret\">".len();
    let end = rest[start..].find('<').expect("its end");
    rest[start..start + end].to_string()
}

async fn admins_sign_in_with_a_cookie_and_every_change_needs_the_csrf_token(db: Db) {
    let app = spawn_app_with(db, |c| c.admin.admin_sign_in_per_minute = 100).await;
    add_admin(&app, "Root@Example.com", &[]).await;
    // The same address twice is refused, a short password too.
    let again = admin_command(&app, &["add", "root@example.com"], &format!("{PASSWORD}\n")).await;
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already an admin"));
    let short = admin_command(&app, &["add", "x@example.com"], "short\n").await;
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("too short"));

    let mut panel = Panel::new(&app);
    // Not signed in: every page leads to the sign-in page.
    assert_eq!(
        panel.get("/admin/sites").await,
        (StatusCode::SEE_OTHER, "-> /admin/sign-in".to_string())
    );
    let (status, page) = panel.sign_in("root@example.com", "wrong password!").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(page.contains("Wrong e-mail address or password."));
    assert!(panel.cookie.is_none());
    let (status, _) = panel.sign_in("nobody@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The address is taken whatever its case.
    let (status, to) = panel.sign_in("ROOT@example.com", PASSWORD).await;
    assert_eq!((status, to), (StatusCode::SEE_OTHER, String::new()));
    let (status, page) = panel.get("/admin/sites").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains(app.site.id.as_str()) && page.contains(app.other.id.as_str()));
    assert!(page.contains("root@example.com"));

    // The live numbers: this node's, and every node's latest.
    let (connected, _) = app.login("alice").await;
    let live = eventually(WAIT_LIVE, "this node's numbers", async || {
        let res = panel
            .with_cookie(panel.http.get(app.url("/admin/live")))
            .send()
            .await
            .ok()?;
        let live: serde_json::Value = res.json().await.ok()?;
        (live["nodes"].as_array()?.len() == 1).then_some(live)
    })
    .await;
    assert!(live["connections"].as_u64() >= Some(1), "{live}");
    assert!(live["nodes"][0]["label"].as_str().is_some(), "{live}");
    drop(connected);
    // A change without the token, with another's, or sent from another
    // site is refused and changes nothing.
    let site = format!("/admin/sites/{}", app.site.id);
    let rename = format!("{site}/rename");
    let (status, _) = panel.post_raw(&rename, &[("name", "Hacked")], None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = panel
        .post_raw(&rename, &[("name", "Hacked"), ("csrf", "guess")], None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let csrf = panel.csrf.clone().expect("a token on the page");
    let (status, _) = panel
        .post_raw(
            &rename,
            &[("name", "Hacked"), ("csrf", &csrf)],
            Some("https://evil.example"),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, page) = panel.get(&site).await;
    assert!(!page.contains("Hacked"));
    // With it, the change is made and logged under the admin's name.
    let (status, to) = panel.post(&rename, &[("name", "Shop <b>&</b>")]).await;
    assert_eq!(
        (status, to),
        (StatusCode::SEE_OTHER, format!("-> {site}?done=renamed"))
    );
    let (_, page) = panel.get(&format!("{site}?done=renamed")).await;
    assert!(page.contains("Shop &lt;b&gt;&amp;&lt;/b&gt;"), "escaped");
    assert!(page.contains("The site was renamed."));
    assert!(page.contains("admin:root@example.com") && page.contains("site.rename"));

    // Signing out ends the session on the server: the old cookie is dead.
    let (status, _) = panel.post("/admin/sign-out", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(panel.get("/admin/sites").await.0, StatusCode::SEE_OTHER);

    // A new password ends every session.
    panel.sign_in("root@example.com", PASSWORD).await;
    assert_eq!(panel.get("/admin/sites").await.0, StatusCode::OK);
    let out = admin_command(
        &app,
        &["password", "root@example.com"],
        "another long password\n",
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(panel.get("/admin/sites").await.0, StatusCode::SEE_OTHER);
    let out = admin_command(&app, &["list"], "").await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("root@example.com\tevery site"));
    let out = admin_command(&app, &["remove", "root@example.com"], "").await;
    assert!(out.status.success());
    let (status, _) = panel
        .sign_in("root@example.com", "another long password")
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

async fn sign_in_attempts_are_rate_limited(db: Db) {
    let app = spawn_app_with(db, |c| c.admin.admin_sign_in_per_minute = 3).await;
    add_admin(&app, "root@example.com", &[]).await;
    let mut panel = Panel::new(&app);
    for _ in 0..3 {
        assert_eq!(
            panel.sign_in("root@example.com", "wrong password!").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Over the limit even with the right password.
    let (status, page) = panel.sign_in("root@example.com", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.contains("too many sign-in attempts"));
    assert!(panel.cookie.is_none());
    app.stop().await;
}

async fn sites_are_created_rotated_and_deleted_from_the_panel(db: Db) {
    let app = spawn_app(db).await;
    add_admin(&app, "root@example.com", &[]).await;
    let mut panel = Panel::new(&app);
    panel.sign_in("root@example.com", PASSWORD).await;
    panel.get("/admin/sites").await;
    let (status, page) = panel
        .post(
            "/admin/sites",
            &[
                ("name", "Clinic"),
                ("origins", "https://clinic.example\nhttp://localhost:3000/"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (id, secret, key) = (
        shown(&page, "Site id"),
        shown(&page, "Token secret"),
        shown(&page, "API key"),
    );
    // Its credentials work: the API key, and tokens signed with the secret.
    let site = TestSite {
        id: natter_shared::SiteId::parse(id.clone()).expect("id"),
        secret: natter_server::auth::Secret::new(secret),
        api_key: key.clone(),
    };
    let api = app.api_client_of(&site);
    let room = api.group("Waiting room", &[User::id("ann")]).await;
    let mut ann = Client::connect(&app, &site.id, Some("http://localhost:3000")).await;
    ann.auth(&token_for(&site, "ann", 3600)).await;
    let rooms = ann.sync(vec![]).await;
    assert_eq!(rooms.len(), 1);

    let base = format!("/admin/sites/{id}");
    let (_, page) = panel.get(&base).await;
    assert!(page.contains("https://clinic.example") && page.contains("site.create"));
    // Bad origins are refused with the reason.
    let (status, page) = panel
        .post(&format!("{base}/origins"), &[("origins", "clinic.example")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("clinic.example"));
    let (status, _) = panel
        .post(
            &format!("{base}/origins"),
            &[("origins", "https://www.clinic.example")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let refused = Client::connect_to(app.addr, &site.id, Some("http://localhost:3000")).await;
    assert!(
        refused.is_err(),
        "the old origin no longer embeds the widget"
    );

    // A new API key: the old one stops at once.
    panel.get(&base).await;
    let (status, page) = panel.post(&format!("{base}/rotate-key"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    let new_key = shown(&page, "API key");
    let old = api
        .request(reqwest::Method::GET, "/settings")
        .send()
        .await
        .expect("api");
    assert_eq!(old.status(), 401);
    let fresh = ApiClient::new(app.http.clone(), app.addr, &new_key);
    let res = fresh
        .request(reqwest::Method::GET, "/settings")
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 200);

    // A new token secret with no grace: old tokens stop at once, new
    // ones work.
    let (status, page) = panel
        .post(&format!("{base}/rotate-secret"), &[("grace_secs", "0")])
        .await;
    assert_eq!(status, StatusCode::OK);
    let new_secret = shown(&page, "Token secret");
    let signs_in = async |token: String| {
        let mut client = Client::connect(&app, &site.id, Some("https://www.clinic.example")).await;
        client
            .send(&natter_shared::ClientFrame::Auth { token })
            .await;
        matches!(client.recv().await, ServerFrame::Hello { .. })
    };
    assert!(
        !signs_in(token_for(&site, "ann", 3600)).await,
        "no grace given"
    );
    let rotated = TestSite {
        secret: natter_server::auth::Secret::new(new_secret),
        ..site.clone()
    };
    assert!(signs_in(token_for(&rotated, "ann", 3600)).await);
    let (status, _) = panel
        .post(&format!("{base}/rotate-secret"), &[("grace_secs", "-5")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Deleting asks for the name; the wrong one deletes nothing.
    let (status, page) = panel.get(&format!("{base}/delete")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("cannot be undone"));
    let (status, _) = panel
        .post(&format!("{base}/delete"), &[("confirm", "Clinc")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(panel.get(&base).await.0, StatusCode::OK);
    let (status, to) = panel
        .post(&format!("{base}/delete"), &[("confirm", "Clinic")])
        .await;
    assert_eq!(
        (status, to.as_str()),
        (StatusCode::SEE_OTHER, "-> /admin/sites")
    );
    assert_eq!(panel.get(&base).await.0, StatusCode::NOT_FOUND);
    let res = fresh
        .request(reqwest::Method::GET, &format!("/rooms/{}", room.id))
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 401, "the deleted site's key is gone");
    app.stop().await;
}

async fn admins_moderate_and_see_only_their_sites(db: Db) {
    let app = spawn_app(db).await;
    add_admin(&app, "mod@example.com", &[app.site.id.as_str()]).await;
    let room = app.group("Lobby", &["alice", "mallory"]).await;
    let api = app.api_client();
    let posted = api
        .post(room.id.as_str(), "mallory", "buy <cheap> pills")
        .await;
    let seq = posted["seq"].as_u64().expect("seq");
    let res = app
        .http
        .post(app.url("/reports"))
        .bearer_auth(app.token("alice"))
        .header("x-natter-site", app.site.id.as_str())
        .json(&serde_json::json!({"room": room.id, "seq": seq, "note": "spam"}))
        .send()
        .await
        .expect("report");
    assert_eq!(res.status(), 201);
    let (mut alice, _) = app.login("alice").await;

    let mut panel = Panel::new(&app);
    panel.sign_in("mod@example.com", PASSWORD).await;
    // Only their site, and no way to make new ones.
    let (_, page) = panel.get("/admin/sites").await;
    assert!(page.contains(app.site.id.as_str()));
    assert!(!page.contains(app.other.id.as_str()));
    assert!(!page.contains("New site"));
    let other = format!("/admin/sites/{}", app.other.id);
    assert_eq!(panel.get(&other).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        panel.get(&format!("{other}/rooms")).await.0,
        StatusCode::NOT_FOUND
    );
    let (status, _) = panel
        .post(
            "/admin/sites",
            &[("name", "Mine"), ("origins", "https://m.example")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The report shows with the message and the note, escaped.
    let base = format!("/admin/sites/{}", app.site.id);
    let (_, page) = panel.get(&base).await;
    assert!(
        page.contains("buy &lt;cheap&gt; pills") && page.contains("spam"),
        "{page}"
    );
    // Rooms and users are searched.
    let (_, page) = panel.get(&format!("{base}/rooms?q=lob")).await;
    assert!(page.contains("Lobby"));
    let (_, page) = panel.get(&format!("{base}/rooms?q=nothing-like-it")).await;
    assert!(page.contains("No rooms found."));
    let (_, page) = panel.get(&format!("{base}/users?q=mall")).await;
    assert!(page.contains("mallory") && !page.contains(">alice<"));

    // Deleting the message: a tombstone reaches the open connection.
    let (status, to) = panel
        .post(
            &format!("{base}/rooms/{}/messages/{seq}/delete", room.id),
            &[("back", "site")],
        )
        .await;
    assert_eq!(
        (status, to),
        (StatusCode::SEE_OTHER, format!("-> {base}?done=deleted"))
    );
    let tomb = alice
        .recv_until(|f| matches!(f, ServerFrame::Event { event } if matches!(event.kind, natter_shared::EventKind::MessageDeleted { .. })))
        .await;
    assert!(
        matches!(tomb, ServerFrame::Event { event } if event.kind == natter_shared::EventKind::MessageDeleted { target: seq })
    );
    let (_, page) = panel.get(&format!("{base}/rooms/{}", room.id)).await;
    assert!(!page.contains("pills"));

    // Muting from the room's page: the member's sends are refused.
    let (status, _) = panel
        .post(
            &format!("{base}/rooms/{}/members/mallory/mute", room.id),
            &[("secs", "3600")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (mut mallory, _) = app.login("mallory").await;
    let refused = mallory.try_send(&room.id, "again", Vec::new(), cid()).await;
    assert_eq!(refused.map_err(|e| e.0), Err(ErrorCode::Muted));
    let (_, page) = panel.get(&format!("{base}/rooms/{}", room.id)).await;
    assert!(page.contains("Lift the mute"));

    // Banning from the user's page closes their connection.
    let (status, _) = panel
        .post(&format!("{base}/users/mallory/ban"), &[("banned", "1")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let close = mallory.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4001);
    let (_, page) = panel.get(&format!("{base}/users/mallory")).await;
    assert!(page.contains("Banned from the site.") && page.contains("Lobby"));
    let (status, _) = panel
        .post(&format!("{base}/users/mallory/ban"), &[("banned", "0")])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = panel.get(&format!("{base}/users/mallory")).await;
    assert!(!page.contains("Banned from the site."));

    // A webhook endpoint: its status and attempts; paused, it is resumed.
    let res = app
        .api(reqwest::Method::POST, "/webhooks")
        .json(
            &serde_json::json!({"url": "http://127.0.0.1:9/hooks", "events": ["message.created"]}),
        )
        .send()
        .await
        .expect("api");
    assert_eq!(res.status(), 201);
    let hook: serde_json::Value = res.json().await.expect("json");
    let hook = hook["id"].as_str().expect("an id").to_string();
    let (_, page) = panel.get(&base).await;
    assert!(page.contains("http://127.0.0.1:9/hooks") && !page.contains("Resume and replay"));
    let store = natter_server::store::Store::connect(&app.database_url, 1)
        .await
        .expect("the database");
    store.pause_webhook(&hook).await.expect("paused");
    store.close().await;
    let (status, page) = panel.get(&format!("{base}/webhooks/{hook}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("paused") && page.contains("Resume and replay"),
        "{page}"
    );
    let (status, to) = panel
        .post(&format!("{base}/webhooks/{hook}/resume"), &[])
        .await;
    assert_eq!(
        (status, to),
        (
            StatusCode::SEE_OTHER,
            format!("-> {base}/webhooks/{hook}?done=resumed")
        )
    );
    let (_, page) = panel
        .get(&format!("{base}/webhooks/{hook}?done=resumed"))
        .await;
    assert!(
        page.contains("active") && !page.contains("Resume and replay"),
        "{page}"
    );
    assert_eq!(
        panel.get(&format!("{base}/webhooks/no-such-hook")).await.0,
        StatusCode::NOT_FOUND
    );

    // The report is dismissed; the audit log says who did all of it.
    let reports = app
        .api(reqwest::Method::GET, "/reports")
        .send()
        .await
        .expect("api");
    let reports: serde_json::Value = reports.json().await.expect("json");
    let report = reports["reports"][0]["id"]
        .as_str()
        .expect("a report")
        .to_string();
    panel.get(&base).await;
    let (status, _) = panel
        .post(&format!("{base}/reports/{report}/dismiss"), &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, page) = panel.get(&format!("{base}/audit")).await;
    for action in [
        "webhook.resume",
        "message.delete",
        "member.mute",
        "user.ban",
        "user.unban",
        "report.dismiss",
    ] {
        assert!(page.contains(action), "{action} not logged");
    }
    let log: serde_json::Value = app
        .api(reqwest::Method::GET, "/audit")
        .send()
        .await
        .expect("api")
        .json()
        .await
        .expect("json");
    assert_eq!(log["entries"][0]["actor"], "admin:mod@example.com");
    // Bad input answers 400 or 404, never 500.
    assert_eq!(
        panel.get(&format!("{base}/rooms/no-such-room")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        panel.get(&format!("{base}/audit?before=x")).await.0,
        StatusCode::BAD_REQUEST
    );
    let (status, _) = panel
        .post(
            &format!("{base}/rooms/{}/members/alice/mute", room.id),
            &[("secs", "99999999999")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = panel
        .post(&format!("{base}/users/alice/ban"), &[("banned", "maybe")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The live numbers are the server's, not one site's: not for them.
    let res = panel
        .with_cookie(panel.http.get(app.url("/admin/live")))
        .send()
        .await
        .expect("live");
    assert_eq!(res.status(), 404);
    app.stop().await;
}

on_both!(
    admins_sign_in_with_a_cookie_and_every_change_needs_the_csrf_token,
    sign_in_attempts_are_rate_limited,
    sites_are_created_rotated_and_deleted_from_the_panel,
    admins_moderate_and_see_only_their_sites,
);
