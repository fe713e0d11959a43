//! chromedriver, started for one test in its own process group and
//! stopped, with every browser it started, when the test ends.

use super::{PATIENCE, free_port};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// chromedriver, started for one test and stopped (with every browser it
/// started) at its end.
pub struct Driver {
    /// Where to reach it.
    pub url: String,
    child: Child,
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it listens.
    pub async fn start() -> Driver {
        let port = free_port();
        let bin =
            std::env::var_os("CHROMEDRIVER").unwrap_or_else(|| "/usr/bin/chromedriver".into());
        let mut cmd = Command::new(&bin);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "chromedriver ({}) must be installed (cargo xtask test installs it): {e}",
                PathBuf::from(&bin).display()
            )
        });
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PATIENCE;
        while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver { url, child }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole process group: chromedriver and its browsers. Its id
        // is chromedriver's pid (it leads the group it was started in).
        if let Ok(group) = libc::pid_t::try_from(self.child.id())
            && group > 1
        {
            // SAFETY: kill(2) with a negative pid signals exactly that
            // process group; no memory is involved.
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
