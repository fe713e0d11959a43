//! `cargo xtask <command>`: the project's build, demo and CI entry points.
//!
//! - `dist`: the widget's release build into `dist/` (trunk, the
//!   `wasm-release` profile, wasm-opt -Oz), then its gzipped sizes.
//! - `demo`: `dist`, then the server in demo mode on 127.0.0.1:8080.
//! - `test [--ci]`: everything CI checks, in order, stopping at the first
//!   failure. `.ci/run` calls it.
//! - `bench [--quick]`: natter beside its peers (`bench/`), figures into
//!   BENCHMARKS.md.
//!
//! Each command first makes sure the tools it needs are installed at the
//! pinned versions (see [`tools`]). Progress goes to stderr.

mod tools;

use anyhow::{Context, Result, bail};
use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, ExitCode};
use tools::Env;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  dist         build the widget into dist/ and print its gzipped sizes
  demo         build dist/, then run the demo server on 127.0.0.1:8080
  test [--ci]  fmt, clippy (native and wasm), tests (native and browser);
               --ci (or CI set in the environment) makes a missing MariaDB
               an error instead of a skipped suite
  bench [--quick]
               load benchmarks beside peer servers into BENCHMARKS.md
               (--quick: smaller counts, under 2 minutes)";

/// Where the demo listens; `/demo` is its page.
const DEMO_BIND: &str = "127.0.0.1:8080";
/// MariaDB as TOOLCHAIN.md sets it up: root, no password, database `test`.
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
        ["test"] => test(&env, in_ci()),
        ["test", "--ci"] => test(&env, true),
        ["bench", rest @ ..] if rest.iter().all(|a| *a == "--quick") => {
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
    print_sizes(&env.root.join("dist"))
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

/// CI: tools, MariaDB, dist, then each check in order.
fn test(env: &Env, ci: bool) -> Result<()> {
    tools::ensure_build_tools(env)?;
    let chromedriver = tools::ensure_browser(env)?;
    let mysql = if std::env::var_os("NATTER_TEST_MYSQL_URL").is_some() {
        None
    } else if tools::ensure_mariadb(ci)? {
        Some(TEST_MYSQL_URL)
    } else {
        eprintln!("xtask: warning: no MariaDB: the MySQL store tests will not run");
        None
    };
    // A debug build proves the trunk setup and shares its compiled wasm
    // dependencies with the browser tests below; the size-optimised release
    // build is `cargo xtask dist`'s job.
    env.step("trunk build", env.command("trunk", ["build"]))?;

    env.step(
        "cargo fmt --all -- --check",
        env.cargo(["fmt", "--all", "--", "--check"]),
    )?;
    env.step(
        "cargo clippy --workspace --all-targets --features natter-tests/browser -- -D warnings",
        env.cargo([
            "clippy",
            "--workspace",
            "--all-targets",
            "--features",
            "natter-tests/browser",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    env.step(
        "cargo clippy -p natter-client --target wasm32-unknown-unknown --all-targets -- -D warnings",
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
    let mut native = env.cargo(["test", "--workspace"]);
    if let Some(url) = mysql {
        native.env("NATTER_TEST_MYSQL_URL", url);
    }
    env.step("cargo test --workspace", native)?;
    // `--tests`: no doc-tests in the browser run (there are none, and the
    // suite should close on its real results).
    let mut browser = env.cargo([
        "test",
        "-p",
        "natter-client",
        "--target",
        "wasm32-unknown-unknown",
        "--tests",
    ]);
    // Pins the runner to Chromium whatever other drivers are installed.
    if std::env::var_os("CHROMEDRIVER").is_none() {
        browser.env("CHROMEDRIVER", &chromedriver);
    }
    env.step(
        "cargo test -p natter-client --target wasm32-unknown-unknown --tests",
        browser,
    )?;
    // End to end: the widget in Chromium, embedded by a host page, against
    // the real binary, on SQLite and MariaDB; one scenario at a time (each
    // runs several browsers).
    env.step(
        "cargo build -p natter-server --bin natter",
        env.cargo(["build", "-p", "natter-server", "--bin", "natter"]),
    )?;
    let mut e2e = env.cargo([
        "test",
        "-p",
        "natter-tests",
        "--features",
        "browser",
        "--test",
        "browser",
        "--",
        "--test-threads=1",
    ]);
    e2e.env("CHROMEDRIVER", &chromedriver);
    if let Some(url) = mysql {
        e2e.env("NATTER_TEST_MYSQL_URL", url);
    }
    env.step(
        "cargo test -p natter-tests --features browser --test browser",
        e2e,
    )?;
    eprintln!("xtask: all checks passed");
    Ok(())
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
