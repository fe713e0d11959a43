//! `cargo xtask <command>`: the project's build, demo and CI entry points.
//!
//! - `dist`: the widget's release build into `dist/` (trunk, the
//!   `wasm-release` profile, wasm-opt -Oz), then its gzipped sizes.
//! - `demo`: `dist`, then the server in demo mode on 127.0.0.1:8080.
//! - `test [--ci]`: everything CI checks, in order, stopping at the first
//!   failure, then each step's time. `.ci/run` calls it.
//! - `test --quick`: the native tests and one browser scenario.
//! - `bench [--quick]`: natter beside its peers (`bench/`), figures into
//!   BENCHMARKS.md.
//!
//! Each command first makes sure the tools it needs are installed at the
//! pinned versions (see [`tools`]). Progress goes to stderr.

mod tools;

use anyhow::{Context, Result, bail};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};
use tools::Env;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  dist         build the widget into dist/ and print its gzipped sizes
  demo         build dist/, then run the demo server on 127.0.0.1:8080
  test [--ci]  fmt, clippy (native and wasm), tests (native and browser);
               --ci (or CI set in the environment) makes a missing MariaDB
               an error instead of a skipped suite
  test --quick the native tests and one browser scenario (the inner loop)
  bench [--quick] [--only B2,B3,…]
               load benchmarks beside peer servers into BENCHMARKS.md
               (--only: just those, printed, BENCHMARKS.md left alone)
               (--quick: smaller counts, under 2 minutes)";

/// Where the demo listens; `/demo` is its page.
const DEMO_BIND: &str = "127.0.0.1:8080";
/// MariaDB as the test machines run it: root, no password, database
/// `test` (`NATTER_TEST_MYSQL_URL` names another).
const TEST_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306/test";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let env = Env::new()?;
    match args.as_slice() {
        ["dist"] => dist(&env),
        ["demo"] => demo(&env),
        ["test"] => test(&env, in_ci(), Suite::Full),
        ["test", "--ci"] => test(&env, true, Suite::Full),
        ["test", "--quick"] => test(&env, in_ci(), Suite::Quick),
        ["bench", rest @ ..] => {
            let mut args = vec!["run", "--release", "-p", "natter-bench", "--"];
            args.extend_from_slice(rest);
            env.step("cargo run --release -p natter-bench", env.cargo(args))
        }
        ["help" | "--help" | "-h"] => {
            eprintln!("{USAGE}");
            Ok(())
        }
        _ => bail!("unknown arguments {args:?}\n{USAGE}"),
    }
}

/// Builds the widget into `dist/` and prints the sizes of what it ships.
fn dist(env: &Env) -> Result<()> {
    tools::ensure_build_tools(env)?;
    build_dist(env)
}

fn build_dist(env: &Env) -> Result<()> {
    // index.html selects the `wasm-release` profile for release builds.
    env.step(
        "trunk build --release",
        env.command("trunk", ["build", "--release"]),
    )?;
    minify_glue(env)?;
    print_sizes(&env.root.join("dist"))
}

/// Minifies wasm-bindgen's JS glue in `dist/` with terser (trunk's own
/// minifier leaves it as it is) and gives the page's `integrity` hash of
/// it the new file's. The file keeps its name: trunk's hash in it already
/// changes with the source.
fn minify_glue(env: &Env) -> Result<()> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let dist = env.root.join("dist");
    let integrity = |bytes: &[u8]| {
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha384::digest(bytes))
    };
    let glue: Vec<PathBuf> = std::fs::read_dir(&dist)
        .with_context(|| format!("reading {}", dist.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(OsStr::to_str).unwrap_or_default();
            name.starts_with("natter-client-") && name.ends_with(".js")
        })
        .collect();
    let [glue] = glue.as_slice() else {
        bail!(
            "expected one natter-client-*.js in {}, found {}",
            dist.display(),
            glue.len()
        );
    };
    let before = std::fs::read(glue)?;
    let terser = env.root.join("node_modules/.bin/terser");
    let mut cmd = env.command(&terser, ["--module", "--compress", "--mangle", "-o"]);
    cmd.arg(glue).arg(glue);
    env.step("terser (the JS glue)", cmd)?;
    let after = std::fs::read(glue)?;
    let page = dist.join("index.html");
    let html = std::fs::read_to_string(&page)?;
    let (old, new) = (integrity(&before), integrity(&after));
    if !html.contains(&old) {
        bail!(
            "{} names no integrity hash of {}",
            page.display(),
            glue.display()
        );
    }
    std::fs::write(&page, html.replace(&old, &new))?;
    Ok(())
}

/// Runs the server in demo mode on the fresh `dist/`.
fn demo(env: &Env) -> Result<()> {
    tools::ensure_build_tools(env)?;
    build_dist(env)?;
    eprintln!("Natter demo: http://{DEMO_BIND}/demo");
    let server = env.cargo([
        "run",
        "--release",
        "-p",
        "natter-server",
        "--bin",
        "natter",
        "--",
        "--demo",
        "--bind",
        DEMO_BIND,
        "--database-url",
        "sqlite://natter-demo.db",
        "--widget-dir",
        "dist",
    ]);
    env.step("natter --demo", server)
}

/// The features every native build of the checks uses: the browser
/// scenarios' feature too, so clippy and the tests resolve the workspace's
/// features once and build each crate once.
const NATIVE_FEATURES: &str = "natter-tests/browser";
/// The widget app: built for wasm32 only. Its model (`natter-client-model`)
/// is native and tested natively; the app itself is checked and tested in
/// the wasm steps, so native builds leave it (and Leptos) out.
const WASM_ONLY: &str = "natter-client";

/// `cargo SUBCOMMAND` over the native workspace, then `rest`: every native
/// step selects the same packages and features through this, so they
/// share one build.
fn native<'a>(subcommand: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        subcommand,
        "--workspace",
        "--exclude",
        WASM_ONLY,
        "--features",
        NATIVE_FEATURES,
    ];
    args.extend_from_slice(rest);
    args
}

/// The browser scenario `--quick` runs: a dialog between two people on
/// SQLite.
const QUICK_SCENARIO: &str = "two_people_chat_in_a_dialog::browser_on_sqlite";

/// How much of the suite to run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Suite {
    /// Everything CI runs.
    Full,
    /// The native tests and one browser scenario, for the inner loop.
    Quick,
}

/// CI: tools, MariaDB, dist, then each check in order; at the end, the
/// time each step took.
fn test(env: &Env, ci: bool, suite: Suite) -> Result<()> {
    tools::ensure_build_tools(env)?;
    let chromedriver = tools::ensure_browser(env)?;
    let (geckodriver, webkit_webdriver) = tools::ensure_other_browsers(env)?;
    let nats_server = tools::ensure_nats_server(env)?;
    let moto_server = tools::ensure_moto_server(env)?;
    let mysql = if std::env::var_os("NATTER_TEST_MYSQL_URL").is_some() {
        None
    } else if tools::ensure_mariadb(ci)? {
        Some(TEST_MYSQL_URL)
    } else {
        eprintln!("xtask: warning: no MariaDB: the MySQL store tests will not run");
        None
    };
    // Every test command gets the browser's driver and the database.
    let tests = |args: &[&str]| {
        let mut cmd = env.cargo(args);
        if std::env::var_os("CHROMEDRIVER").is_none() {
            // Pins the runners to Chromium whatever other drivers exist.
            cmd.env("CHROMEDRIVER", &chromedriver);
        }
        if std::env::var_os("GECKODRIVER").is_none() {
            cmd.env("GECKODRIVER", &geckodriver);
        }
        if std::env::var_os("WEBKITWEBDRIVER").is_none() {
            cmd.env("WEBKITWEBDRIVER", &webkit_webdriver);
        }
        if let Some(url) = mysql {
            cmd.env("NATTER_TEST_MYSQL_URL", url);
        }
        if std::env::var_os("NATTER_TEST_NATS_SERVER").is_none() {
            cmd.env("NATTER_TEST_NATS_SERVER", &nats_server);
        }
        if std::env::var_os("NATTER_TEST_MOTO_SERVER").is_none() {
            cmd.env("NATTER_TEST_MOTO_SERVER", &moto_server);
        }
        cmd
    };
    let mut timer = Timer::default();

    if suite == Suite::Full {
        timer.step(
            env,
            "cargo fmt --all -- --check",
            env.cargo(["fmt", "--all", "--", "--check"]),
        )?;
        tools::ensure_cargo_deny(env)?;
        timer.step(
            env,
            "cargo deny check licenses bans sources",
            env.cargo(["deny", "check", "licenses", "bans", "sources"]),
        )?;
    }
    // A debug build proves the trunk setup and gives the browser scenarios
    // their widget; the size-optimised release build is `cargo xtask
    // dist`'s job.
    timer.step(env, "trunk build", env.command("trunk", ["build"]))?;
    // The glue as `cargo xtask dist` ships it, so the browser scenarios
    // run what the demo and a deployment serve.
    minify_glue(env)?;
    if suite == Suite::Quick {
        // `--workspace` and the same features as the full run, so both
        // share one build. Browser scenarios are named `…::browser_on_DB`.
        timer.step(
            env,
            "cargo test --workspace --exclude natter-client (native, no browser scenario)",
            tests(&native("test", &["--", "--skip", "browser_on_"])),
        )?;
        timer.step(
            env,
            &format!("browser scenario {QUICK_SCENARIO}"),
            tests(&native(
                "test",
                &["--test", "browser", "--", "--exact", QUICK_SCENARIO],
            )),
        )?;
        timer.report();
        eprintln!("xtask: the quick checks passed (CI runs `cargo xtask test`)");
        return Ok(());
    }
    timer.step(
        env,
        "cargo clippy --workspace --exclude natter-client --all-targets (native) -D warnings",
        env.cargo(native("clippy", &["--all-targets", "--", "-D", "warnings"])),
    )?;
    timer.step(
        env,
        "cargo clippy -p natter-client --target wasm32-unknown-unknown --all-targets -D warnings",
        env.cargo([
            "clippy",
            "-p",
            "natter-client",
            "--target",
            "wasm32-unknown-unknown",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // One command for every native test, the end-to-end browser scenarios
    // included: they and the tests of several nodes (`tests/nodes.rs`)
    // need the `natter` binary, which this build makes before any test
    // runs (the server's own CLI test needs it too) with the same features
    // (no second build), and the browser scenarios need the widget built
    // above.
    // The scenarios take a lock so that one runs at a time (each drives
    // several browsers).
    timer.step(
        env,
        "cargo test --workspace --exclude natter-client (native, browser scenarios included)",
        tests(&native("test", &[])),
    )?;
    // `--tests`: no doc-tests in the browser run (there are none, and the
    // suite should close on its real results).
    timer.step(
        env,
        "cargo test -p natter-client --target wasm32-unknown-unknown --tests",
        tests(&[
            "test",
            "-p",
            "natter-client",
            "--target",
            "wasm32-unknown-unknown",
            "--tests",
        ]),
    )?;
    timer.report();
    eprintln!("xtask: all checks passed");
    Ok(())
}

/// Runs steps and remembers how long each took, for the summary.
#[derive(Default)]
struct Timer {
    steps: Vec<(String, Duration)>,
    started: Option<Instant>,
}

impl Timer {
    fn step(&mut self, env: &Env, name: &str, cmd: Command) -> Result<()> {
        let started = Instant::now();
        self.started.get_or_insert(started);
        env.step(name, cmd)?;
        self.steps.push((name.to_string(), started.elapsed()));
        Ok(())
    }

    /// Prints each step's time and the total.
    fn report(&self) {
        eprintln!("xtask: step times:");
        for (name, took) in &self.steps {
            eprintln!("  {:>6.0?}  {name}", took);
        }
        if let Some(started) = self.started {
            eprintln!("  {:>6.0?}  total", started.elapsed());
        }
    }
}

/// True when the environment says we run under CI.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Prints raw and gzipped sizes of the .wasm, .js and .css in `dir`.
fn print_sizes(dir: &Path) -> Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(OsStr::to_str)
                .is_some_and(|ext| matches!(ext, "wasm" | "js" | "css"))
        })
        .collect();
    files.sort();
    eprintln!("xtask: sizes in {}:", dir.display());
    for path in files {
        let raw = std::fs::metadata(&path)?.len();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        match gzipped_len(&path) {
            Ok(gz) => eprintln!("  {name:<44} {raw:>8} B  {gz:>8} B gzip"),
            Err(err) => eprintln!("  {name:<44} {raw:>8} B  (gzip: {err:#})"),
        }
    }
    Ok(())
}

/// The size of `path` after `gzip -9`.
fn gzipped_len(path: &Path) -> Result<usize> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .context("running gzip")?;
    if !out.status.success() {
        bail!("gzip failed: {}", out.status);
    }
    Ok(out.stdout.len())
}
