//! The `natter site` commands, run as the real binary on a scratch SQLite file.

use std::process::Command;

fn natter(db: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_natter"))
        .args(args)
        .env("NATTER_DATABASE_URL", db)
        .env("RUST_LOG", "error")
        .output()
        .expect("natter runs")
}

#[test]
fn site_add_prints_credentials_and_site_list_shows_the_site() {
    let dir = std::env::temp_dir().join(format!("natter-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("cli.db").display());

    let out = natter(
        &db,
        &[
            "site",
            "add",
            "Clinic",
            "--origin",
            "https://clinic.example",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{name} missing from {text}"))
    };
    let id = field("site id:");
    assert!(id.starts_with("s_"));
    assert!(field("api key:").starts_with("nk_"));
    assert!(field("token secret:").len() >= 40);

    let out = natter(&db, &["site", "list"]);
    assert!(out.status.success());
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(
        list.contains(&id) && list.contains("Clinic") && list.contains("https://clinic.example")
    );

    // Options go on either side of the subcommand, as the README's
    // readers type them.
    let other = format!("sqlite://{}", dir.join("other.db").display());
    let out = natter(
        &db,
        &[
            "site",
            "add",
            "Shop",
            "--origin",
            "https://shop.example",
            "--database-url",
            &other,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = natter(&db, &["site", "list", "--database-url", &other]);
    let list = String::from_utf8(out.stdout).unwrap();
    assert!(list.contains("Shop") && !list.contains("Clinic"), "{list}");

    // Bad input is a clear message and a failure exit, not a panic.
    let out = natter(&db, &["site", "add", "X", "--origin", "clinic.example"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"clinic.example\" is not a URL"), "{err}");
    let out = natter(
        &db,
        &[
            "site",
            "add",
            "X",
            "--origin",
            "https://clinic.example/path",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not an origin"), "{err}");
    let out = natter("postgres://nope", &["site", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database url"));
    std::fs::remove_dir_all(&dir).ok();
}
