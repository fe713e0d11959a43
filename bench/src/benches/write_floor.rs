//! The kernel's floor: CPU µs per small `write()` to a loopback socket,
//! by a child process pinned to the servers' core while this one reads.
//! Every per-message figure has this cost at least once per frame sent.

use crate::log;
use crate::plan::{Plan, RUNS};
use crate::report::med;
use anyhow::{Context, Result};

/// The floor, measured [`RUNS`] times: the median µs per write.
pub async fn run(plan: &Plan) -> Result<f64> {
    let mut floor_runs = Vec::new();
    for _ in 0..RUNS {
        floor_runs.push(write_floor(plan.write_floor_n).await?);
    }
    let write_us = med(&floor_runs, |v| *v);
    log(format!("kernel floor: {write_us:.2} µs per small write"));
    Ok(write_us)
}

/// The kernel floor: CPU µs per small `write()` to a loopback socket, by a
/// process pinned to the server's core while this one reads.
async fn write_floor(n: usize) -> Result<f64> {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let exe = std::env::current_exe()?;
    let child = tokio::process::Command::new("taskset")
        .args(["-c", crate::sys::SERVER_CORE])
        .arg(exe)
        .args(["floor-writer", &addr.to_string(), &n.to_string()])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let (mut sock, _) = listener.accept().await?;
    let drain = tokio::spawn(async move {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(k) = sock.read(&mut buf).await {
            if k == 0 {
                break;
            }
        }
    });
    let out = child.wait_with_output().await?;
    drain.await?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ns: f64 = text
        .trim()
        .strip_prefix("cpu_ns ")
        .and_then(|v| v.parse().ok())
        .context("floor-writer output")?;
    Ok(ns / 1e3 / n as f64)
}

/// The child side of [`write_floor`]: `n` writes of a 64-byte WebSocket-
/// sized frame, then its own CPU time.
pub fn floor_writer(addr: &str, n: usize) -> Result<()> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let frame = [b'x'; 64];
    let before = crate::sys::cpu_of(std::process::id());
    for _ in 0..n {
        s.write_all(&frame)?;
    }
    let cpu = crate::sys::cpu_of(std::process::id()) - before;
    println!("cpu_ns {}", cpu.as_nanos());
    Ok(())
}
