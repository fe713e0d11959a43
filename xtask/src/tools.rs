//! Making sure the tools are there, at the pinned versions, and running
//! them.
//!
//! Each tool is checked first and installed only when missing or at
//! another version: the wasm32 target, trunk, wasm-bindgen-cli (with its
//! test runner), Chromium with chromedriver for the browser tests, Firefox
//! ESR with geckodriver and WebKitGTK with WebKitWebDriver (under Xvfb)
//! for the scenarios also run in those engines,
//! nats-server for the tests of several nodes, moto's S3 server (pip) for
//! the test of files in a bucket, and npm's binaryen for
//! wasm-opt, terser for the JS glue and the Standard Webhooks verifier for
//! the webhook tests. The npm binaries go first on PATH so that
//! trunk picks wasm-opt 132, not a system binaryen (Debian's 108 produces a
//! wasm that crashes Chromium).

use anyhow::{Context, Result, bail};
use std::ffi::{OsStr, OsString};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const WASM_TARGET: &str = "wasm32-unknown-unknown";
const TRUNK_VERSION: &str = "0.21.14";
/// Must equal the `wasm-bindgen` crate's pinned version in Cargo.toml.
const WASM_BINDGEN_VERSION: &str = "0.2.130";
/// cargo-deny, from the crate registry.
const CARGO_DENY_VERSION: &str = "0.20.2";

/// geckodriver, from the crate registry (its releases are downloads).
const GECKODRIVER_VERSION: &str = "0.37.1";
const WEBKIT_WEBDRIVER: &str = "/usr/bin/WebKitWebDriver";
const MARIADB: &str = "/usr/sbin/mariadbd";
/// Where Debian's package puts the NATS server (not on a user's PATH).
const NATS_SERVER: &str = "/usr/sbin/nats-server";
/// moto, the S3-compatible server of the files-in-a-bucket test.
const MOTO_VERSION: &str = "5.2.1";
/// How long a MariaDB we started may take to answer.
const MARIADB_START_TIMEOUT: Duration = Duration::from_secs(30);

/// The repository and the environment child processes run in.
pub struct Env {
    pub root: PathBuf,
    /// PATH with `node_modules/.bin` and cargo's bin directory first.
    path: OsString,
    /// The cargo that runs us, so nested builds use the same toolchain.
    cargo: OsString,
}

impl Env {
    pub fn new() -> Result<Self> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask has no parent directory")?
            .to_path_buf();
        let mut dirs = vec![root.join("node_modules").join(".bin")];
        if let Some(bin) = cargo_bin_dir() {
            dirs.push(bin);
        }
        dirs.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        let path = std::env::join_paths(dirs).context("joining PATH")?;
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        Ok(Env { root, path, cargo })
    }

    /// `program args` in the repository root, with our PATH.
    pub fn command<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let program = self
            .which(program.as_ref())
            .map_or_else(|| program.as_ref().to_os_string(), PathBuf::into_os_string);
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(&self.root)
            .env("PATH", &self.path);
        cmd
    }

    /// `cargo install args`, built for a short build rather than a fast
    /// tool: without the crate's own LTO, in 16 codegen units, at
    /// `opt-level` 1. The tools only drive other programs (or check a lock
    /// file), and a fresh machine builds four of them.
    pub fn cargo_install<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.cargo(["install"]);
        cmd.args(args)
            .env("CARGO_PROFILE_RELEASE_LTO", "false")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1");
        cmd
    }

    /// `cargo args` with the cargo that runs xtask, without the variables
    /// `cargo run` gave xtask: some build scripts (ring's) watch them, so
    /// a cargo that sees them rebuilds what a cargo run by hand built.
    pub fn cargo<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = self.command(&self.cargo, args);
        for (key, _) in std::env::vars_os() {
            if set_by_cargo_run(&key.to_string_lossy()) {
                cmd.env_remove(key);
            }
        }
        cmd
    }

    /// Runs one named step; an error names the step and how it ended.
    pub fn step(&self, name: &str, mut cmd: Command) -> Result<()> {
        eprintln!("xtask: ▶ {name}");
        let started = Instant::now();
        let status = cmd
            .status()
            .with_context(|| format!("step `{name}` could not start"))?;
        if !status.success() {
            bail!("step `{name}` failed ({status})");
        }
        eprintln!("xtask: ✔ {name} ({:.0?})", started.elapsed());
        Ok(())
    }

    /// The first `name` on our PATH (or `name` itself if it has a slash).
    pub fn which(&self, name: &OsStr) -> Option<PathBuf> {
        if Path::new(name).components().count() > 1 {
            return Some(PathBuf::from(name));
        }
        std::env::split_paths(&self.path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    }

    /// The trimmed stdout of `program args`, or `None` if it cannot run.
    fn output<const N: usize>(&self, program: &str, args: [&str; N]) -> Option<String> {
        let out = self.command(program, args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}

/// Everything a release build of the widget needs.
pub fn ensure_build_tools(env: &Env) -> Result<()> {
    let targets = env
        .output("rustup", ["target", "list", "--installed"])
        .context("rustup is needed to add the wasm32 target")?;
    if !targets.lines().any(|t| t == WASM_TARGET) {
        env.step(
            "rustup target add wasm32-unknown-unknown",
            env.command("rustup", ["target", "add", WASM_TARGET]),
        )?;
    }

    if env.output("trunk", ["--version"]).as_deref() != Some(&format!("trunk {TRUNK_VERSION}")) {
        env.step(
            &format!("cargo install trunk@{TRUNK_VERSION}"),
            env.cargo_install(["--locked", &format!("trunk@{TRUNK_VERSION}")]),
        )?;
    }

    let bindgen = format!("wasm-bindgen {WASM_BINDGEN_VERSION}");
    if env.output("wasm-bindgen", ["--version"]).as_deref() != Some(&bindgen) {
        // Without --locked: its lock file names a crate version the
        // registry here lacks.
        env.step(
            &format!("cargo install wasm-bindgen-cli --version {WASM_BINDGEN_VERSION}"),
            env.cargo_install(["wasm-bindgen-cli", "--version", WASM_BINDGEN_VERSION]),
        )?;
    }

    let npm_tools = [
        "node_modules/binaryen",
        "node_modules/terser",
        "node_modules/standardwebhooks",
    ];
    if !npm_tools.iter().all(|dir| env.root.join(dir).is_dir()) {
        if env.which("npm".as_ref()).is_none() {
            bail!("npm is missing: install Node.js (20 or later) with npm, then retry");
        }
        env.step(
            "npm ci",
            env.command("npm", ["ci", "--no-audit", "--no-fund"]),
        )?;
    }
    Ok(())
}

/// Chromium and chromedriver for the browser tests; returns chromedriver.
pub fn ensure_browser(env: &Env) -> Result<PathBuf> {
    let found = || {
        let driver = env.which("chromedriver".as_ref())?;
        // webdriver.json points the driver at this binary.
        Path::new("/usr/bin/chromium").is_file().then_some(driver)
    };
    if let Some(driver) = found() {
        return Ok(driver);
    }
    if !is_root() {
        bail!(
            "the browser tests need Chromium and chromedriver at /usr/bin: \
             install them (Debian: `sudo apt-get install chromium chromium-driver`)"
        );
    }
    env.step("apt-get update", env.command("apt-get", ["update", "-qq"]))?;
    env.step(
        "apt-get install chromium chromium-driver",
        env.command(
            "apt-get",
            ["install", "-y", "-qq", "chromium", "chromium-driver"],
        ),
    )?;
    found().context("chromium-driver installed but chromedriver is still not found")
}

/// The drivers of the other engines: geckodriver (Firefox ESR) and
/// WebKitWebDriver (WebKitGTK's MiniBrowser, on a virtual display from
/// xvfb-run). Firefox, WebKitGTK and Xvfb come from Debian's packages,
/// geckodriver from the crate registry. Returns both drivers.
pub fn ensure_other_browsers(env: &Env) -> Result<(PathBuf, PathBuf)> {
    let packages = || {
        Path::new("/usr/bin/firefox-esr").is_file()
            && Path::new(WEBKIT_WEBDRIVER).is_file()
            && env.which("xvfb-run".as_ref()).is_some()
    };
    if !packages() {
        if !is_root() {
            bail!(
                "the browser tests need Firefox ESR, WebKitGTK's driver and Xvfb: install them \
                 (Debian: `sudo apt-get install firefox-esr webkit2gtk-driver xvfb`)"
            );
        }
        env.step("apt-get update", env.command("apt-get", ["update", "-qq"]))?;
        let mut install = env.command(
            "apt-get",
            [
                "install",
                "-y",
                "-qq",
                "firefox-esr",
                "webkit2gtk-driver",
                "xvfb",
            ],
        );
        install.env("DEBIAN_FRONTEND", "noninteractive");
        env.step(
            "apt-get install firefox-esr webkit2gtk-driver xvfb",
            install,
        )?;
        if !packages() {
            bail!("firefox-esr, webkit2gtk-driver and xvfb installed but still not found");
        }
    }
    let gecko = format!("geckodriver {GECKODRIVER_VERSION}");
    let version = env.output("geckodriver", ["--version"]);
    if !version.is_some_and(|v| v.starts_with(&gecko)) {
        env.step(
            &format!("cargo install geckodriver@{GECKODRIVER_VERSION}"),
            env.cargo_install(["--locked", &format!("geckodriver@{GECKODRIVER_VERSION}")]),
        )?;
    }
    let geckodriver = env
        .which("geckodriver".as_ref())
        .context("geckodriver installed but not found on PATH")?;
    Ok((geckodriver, PathBuf::from(WEBKIT_WEBDRIVER)))
}

/// cargo-deny, for the checks of licences, duplicates and sources
/// (`deny.toml`); from the crate registry when missing or another version.
pub fn ensure_cargo_deny(env: &Env) -> Result<()> {
    let wanted = format!("cargo-deny {CARGO_DENY_VERSION}");
    let version = env.output("cargo-deny", ["--version"]);
    if !version.is_some_and(|v| v.starts_with(&wanted)) {
        env.step(
            &format!("cargo install cargo-deny@{CARGO_DENY_VERSION}"),
            env.cargo_install(["--locked", &format!("cargo-deny@{CARGO_DENY_VERSION}")]),
        )?;
    }
    Ok(())
}

/// The NATS server the tests of several nodes start (each its own, on a
/// free port); installed from Debian's packages when missing and we are
/// root. Returns its path.
pub fn ensure_nats_server(env: &Env) -> Result<PathBuf> {
    let found = || {
        env.which("nats-server".as_ref())
            .or_else(|| Some(PathBuf::from(NATS_SERVER)).filter(|p| p.is_file()))
    };
    if let Some(path) = found() {
        return Ok(path);
    }
    if !is_root() {
        bail!(
            "the tests of several nodes need nats-server: install it \
             (Debian: `sudo apt-get install nats-server`)"
        );
    }
    env.step("apt-get update", env.command("apt-get", ["update", "-qq"]))?;
    env.step(
        "apt-get install nats-server",
        env.command("apt-get", ["install", "-y", "-qq", "nats-server"]),
    )?;
    found().context("nats-server installed but still not found")
}

/// The S3-compatible server the test of files in a bucket starts (moto's,
/// from PyPI); installed with pip when missing. Returns its path.
pub fn ensure_moto_server(env: &Env) -> Result<PathBuf> {
    // On PATH, or where pip puts scripts (which may not be on PATH).
    let found = || {
        env.which("moto_server".as_ref()).or_else(|| {
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import sysconfig; print(sysconfig.get_path('scripts'))",
                ])
                .output()
                .ok()?;
            let dir = String::from_utf8(out.stdout).ok()?;
            Some(Path::new(dir.trim()).join("moto_server")).filter(|p| p.is_file())
        })
    };
    if let Some(path) = found() {
        return Ok(path);
    }
    env.step(
        &format!("pip install moto[server]=={MOTO_VERSION}"),
        env.command(
            "python3",
            [
                "-m",
                "pip",
                "install",
                "--quiet",
                &format!("moto[server]=={MOTO_VERSION}"),
            ],
        ),
    )?;
    found().context("moto installed but moto_server is not on PATH")
}

/// Makes sure MariaDB answers on 127.0.0.1:3306, starting it when we are
/// root and it is installed. Returns whether it answers; under CI a
/// database that does not answer is an error.
pub fn ensure_mariadb(ci: bool) -> Result<bool> {
    let addr = SocketAddr::from(([127, 0, 0, 1], 3306));
    let answers = || TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok();
    if answers() {
        return Ok(true);
    }
    if is_root() && Path::new(MARIADB).is_file() {
        eprintln!("xtask: starting MariaDB");
        // mariadbd refuses to start without its socket directory.
        std::fs::create_dir_all("/run/mysqld").context("creating /run/mysqld")?;
        let chown = Command::new("chown")
            .args(["mysql:mysql", "/run/mysqld"])
            .status();
        if !chown.is_ok_and(|s| s.success()) {
            eprintln!("xtask: warning: could not chown /run/mysqld to mysql");
        }
        let status = Command::new("start-stop-daemon")
            .args(["--start", "--oknodo", "--background", "--exec", MARIADB])
            .args(["--", "--user=mysql"])
            .status()
            .context("running start-stop-daemon")?;
        if !status.success() {
            bail!("start-stop-daemon could not start {MARIADB} ({status})");
        }
        let deadline = Instant::now() + MARIADB_START_TIMEOUT;
        while Instant::now() < deadline {
            if answers() {
                return Ok(true);
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    if ci {
        bail!(
            "MariaDB does not answer on {addr}: CI needs it for the MySQL store tests \
             (install mariadb-server, or set NATTER_TEST_MYSQL_URL)"
        );
    }
    Ok(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
}

/// `$CARGO_HOME/bin`, where `cargo install` puts trunk and wasm-bindgen.
fn cargo_bin_dir() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))?;
    Some(home.join("bin"))
}

/// A variable `cargo run` sets for the program it runs.
fn set_by_cargo_run(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_MANIFEST_")
        || matches!(
            key,
            "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE" | "OUT_DIR"
        )
}
