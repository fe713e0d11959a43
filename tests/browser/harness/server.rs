//! The real `natter` binary as a child process on a free port, logging to
//! a file: started, health-checked, killed (`kill -9`) and restarted on
//! the same database, with the same widget build or a new one (a deploy).
//!
//! Browsers may keep the loader (`widget.js`) fresh for one second only,
//! so every reload past that goes through `stale-while-revalidate`, as a
//! visit minutes after the last one does with the default lifetimes.

use super::{PATIENCE, free_port};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root (this crate lives in `tests/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The built widget: `NATTER_WIDGET_DIR`, or `dist/` (trunk build).
pub fn widget_dir() -> PathBuf {
    let dir = std::env::var_os("NATTER_WIDGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("dist"));
    assert!(
        dir.join("index.html").exists(),
        "no widget build in {}: run `cargo xtask test`, or `trunk build` first",
        dir.display()
    );
    dir
}

/// The `natter` binary, serving one database on a free port.
pub struct Server {
    pub addr: SocketAddr,
    pub database_url: String,
    /// The widget build it serves.
    pub widget_dir: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    /// Starts the server on `database_url` and waits until it answers.
    pub async fn start(database_url: &str, log: &Path) -> Server {
        Server::start_with(database_url, log, widget_dir()).await
    }

    /// [`Server::start`], serving the widget build in `widget_dir`.
    pub async fn start_with(database_url: &str, log: &Path, widget_dir: PathBuf) -> Server {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
            .parse()
            .expect("address");
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("server log file");
        let err = out.try_clone().expect("server log file");
        let child = Command::new(natter_tests::natter_bin())
            .args(["--bind", &addr.to_string(), "--database-url", database_url])
            .arg("--widget-dir")
            .arg(&widget_dir)
            .args(["--loader-max-age-secs", "1"])
            .arg("--files-dir")
            .arg(log.with_extension("files"))
            // Presence: people go offline 2 s after their last tab closed.
            .env("NATTER_PRESENCE_GRACE_SECS", "2")
            .env("RUST_LOG", "info,sqlx=warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("the natter binary starts");
        let mut server = Server {
            addr,
            database_url: database_url.to_string(),
            widget_dir,
            child: Some(child),
            log: log.to_path_buf(),
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&mut self) {
        let url = format!("http://{}/healthz", self.addr);
        let http = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("the server exited ({status}):\n{}", self.log_tail());
            }
            if let Ok(res) = http.get(&url).send().await
                && res.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not come up:\n{}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`: no shutdown, no flush; whatever was not committed is lost
    /// to the server (never to the clients, which still hold it).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL; it may already be gone
            let _ = child.wait();
        }
    }

    /// SIGTERM, as a deploy stops it: open sockets are closed and queued
    /// writes committed; `kill -9` if it takes longer than [`PATIENCE`].
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: kill(2) on the server's own pid; no memory involved.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + PATIENCE;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same database, on a new port.
    pub async fn restart(&mut self) {
        self.kill();
        *self = Server::start_with(&self.database_url, &self.log, self.widget_dir.clone()).await;
    }

    /// A new build of the widget deployed: the server stops and starts
    /// again on the same database, serving `widget_dir`.
    pub async fn deploy(&mut self, widget_dir: PathBuf) {
        self.stop().await;
        *self = Server::start_with(&self.database_url, &self.log, widget_dir).await;
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Fails the test if the server ever panicked.
    pub fn assert_no_panic(&self) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(
            !text.contains("panicked"),
            "the server panicked:\n{}",
            self.log_tail()
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}
