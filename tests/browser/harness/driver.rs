//! A WebDriver server for one test — chromedriver for Chromium,
//! geckodriver for Firefox, WebKitWebDriver (under Xvfb) for WebKitGTK —
//! started in its own process group and stopped, with every browser it
//! started, when the test ends.

use super::{PATIENCE, free_port};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// A browser engine the scenarios run in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Debian's Chromium, through chromedriver; one driver serves every
    /// person of a scenario.
    Chromium,
    /// Firefox ESR, headless, through geckodriver (one session each).
    Firefox,
    /// WebKitGTK's MiniBrowser (Safari's engine), through WebKitWebDriver
    /// on a virtual display (one session each).
    WebKit,
}

impl Engine {
    /// The WebDriver capabilities of a new session; `profile` is a fresh
    /// directory for the browser's data where the engine takes one
    /// (geckodriver makes its own, MiniBrowser keeps its data in memory).
    pub fn capabilities(self, profile: &std::path::Path) -> serde_json::Map<String, Value> {
        let caps = match self {
            Engine::Chromium => json!({
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": var_or("CHROMIUM", "/usr/bin/chromium"),
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                        "--no-first-run", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync",
                        "--disable-dev-shm-usage", "--window-size=1200,800",
                        format!("--user-data-dir={}", profile.display()),
                    ],
                },
            }),
            Engine::Firefox => json!({
                "browserName": "firefox",
                "moz:firefoxOptions": {
                    "binary": var_or("FIREFOX", "/usr/bin/firefox-esr"),
                    "args": ["-headless", "-width=1200", "-height=800"],
                },
            }),
            Engine::WebKit => json!({
                "browserName": "MiniBrowser",
                "webkitgtk:browserOptions": {
                    "binary": var_or(
                        "MINIBROWSER",
                        "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
                    ),
                    "args": ["--automation"],
                },
            }),
        };
        match caps {
            Value::Object(caps) => caps,
            _ => unreachable!("a JSON object"),
        }
    }
}

fn var_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.into())
}

/// A WebDriver server, started for one test and stopped (with every
/// browser it started) at its end.
pub struct Driver {
    /// Where to reach it.
    pub url: String,
    child: Child,
}

impl Driver {
    /// Starts the engine's driver on a free port and waits until it
    /// listens.
    pub async fn start(engine: Engine) -> Driver {
        let port = free_port();
        let (env, default) = match engine {
            Engine::Chromium => ("CHROMEDRIVER", "/usr/bin/chromedriver"),
            Engine::Firefox => ("GECKODRIVER", "geckodriver"),
            Engine::WebKit => ("WEBKITWEBDRIVER", "/usr/bin/WebKitWebDriver"),
        };
        let bin = PathBuf::from(var_or(env, default));
        let mut cmd = match engine {
            Engine::Chromium => {
                let mut cmd = Command::new(&bin);
                cmd.arg(format!("--port={port}"));
                cmd
            }
            Engine::Firefox => {
                let mut cmd = Command::new(&bin);
                cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
                cmd
            }
            // MiniBrowser needs a display; it gets a virtual one.
            Engine::WebKit => {
                let mut cmd = Command::new("xvfb-run");
                cmd.args(["-a", "-s", "-screen 0 1280x1024x24"])
                    .arg(&bin)
                    .arg(format!("--port={port}"))
                    // No GPU here: software rendering, no DMA-BUF renderer.
                    .env("WEBKIT_DISABLE_DMABUF_RENDERER", "1")
                    .env("LIBGL_ALWAYS_SOFTWARE", "1");
                cmd
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "{engine:?}'s driver ({}) must be installed (cargo xtask test installs it): {e}",
                bin.display()
            )
        });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "{engine:?}'s driver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver { url, child }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole process group: the driver and its browsers (and the
        // virtual display). Its id is the driver's pid (it leads the group
        // it was started in). SIGTERM first, so xvfb-run cleans up after
        // itself, then SIGKILL for whatever is left.
        if let Ok(group) = libc::pid_t::try_from(self.child.id())
            && group > 1
        {
            // SAFETY: kill(2) with a negative pid signals exactly that
            // process group; no memory is involved.
            unsafe {
                libc::kill(-group, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(2);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            // SAFETY: as above.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
