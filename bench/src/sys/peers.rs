//! The peers natter is measured against: a Node.js `ws` server and nginx
//! (with nchan, and alone for files), started pinned like natter.

use super::{Endpoint, Kind, Paths, Server, free_port, pinned, unique, wait_listening};
use anyhow::{Context, Result, bail};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Makes sure bench/node_modules has `ws` (npm ci from the lock file).
pub fn ensure_node_peer(paths: &Paths) -> Result<()> {
    if paths
        .bench_dir()
        .join("node_modules/ws/package.json")
        .exists()
    {
        return Ok(());
    }
    eprintln!("bench: npm ci in bench/ (installs ws)");
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(paths.bench_dir())
        .status()
        .context("running npm")?;
    if !status.success() {
        bail!("npm ci failed: {status}");
    }
    Ok(())
}

/// Starts the Node.js `ws` peer, pinned to core 0.
pub fn start_node(paths: &Paths) -> Result<Server> {
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let secret = "bench-node-secret".to_string();
    let mut child = pinned(Path::new("node"))
        .arg(paths.bench_dir().join("peer-ws.js"))
        .args([port.to_string(), secret.clone()])
        .stdout(Stdio::null())
        .spawn()
        .context("starting node")?;
    wait_listening(addr, &mut child, "node peer")?;
    Ok(Server {
        ep: Endpoint {
            kind: Kind::Node,
            addr,
            site: "node".into(),
            secret,
            api_key: String::new(),
        },
        database_url: None,
        child,
    })
}

const NCHAN_MODULE: &str = "/usr/lib/nginx/modules/ngx_nchan_module.so";

/// Installs nginx and the nchan module from Debian when they are missing
/// (root only). Returns whether they are there.
pub fn ensure_nchan() -> bool {
    let present = || Path::new("/usr/sbin/nginx").exists() && Path::new(NCHAN_MODULE).exists();
    if present() {
        return true;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root {
        eprintln!("bench: nginx/nchan missing and not root: the nchan peer is skipped");
        return false;
    }
    eprintln!("bench: apt-get install nginx libnginx-mod-nchan");
    let _ = Command::new("apt-get").args(["update", "-qq"]).status();
    let _ = Command::new("apt-get")
        .args(["install", "-y", "-qq", "nginx", "libnginx-mod-nchan"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status();
    present()
}

/// Starts nginx with nchan on a free port, with its own config; pinned to
/// core 0 (master and one worker).
pub fn start_nchan(paths: &Paths) -> Result<Server> {
    let (server, _) = start_nginx(
        paths,
        "nchan",
        &format!("load_module {NCHAN_MODULE};"),
        "nchan_shared_memory_size 256m;",
        r"location ~ ^/pub/(\w+)$ { nchan_publisher; nchan_channel_id $1; nchan_message_buffer_length 16; }
        location ~ ^/sub/(\w+)$ { nchan_subscriber websocket; nchan_channel_id $1; }",
    )?;
    Ok(server)
}

/// Starts plain nginx on a free port serving the files of its `www`
/// directory (returned beside it) and taking `PUT` under `/up/`: the file
/// peer.
pub fn start_nginx_files(paths: &Paths) -> Result<(Server, PathBuf)> {
    start_nginx(
        paths,
        "nginx",
        "",
        "sendfile on;",
        "location /up/ { dav_methods PUT; create_full_put_path on; client_max_body_size 0; }",
    )
}

/// Starts nginx (one worker) on a free port with its own config: `top`
/// before the `http` block, `http` inside it, `locations` in the `server`
/// block, whose root is the returned `www` directory; pinned to core 0.
fn start_nginx(
    paths: &Paths,
    name: &str,
    top: &str,
    http: &str,
    locations: &str,
) -> Result<(Server, PathBuf)> {
    let dir = paths.scratch.join(unique(name));
    // nginx's workers run as another user (nobody) when it starts as root:
    // they write request bodies and uploads here.
    for sub in ["body", "www"] {
        std::fs::create_dir_all(dir.join(sub))?;
        std::fs::set_permissions(
            dir.join(sub),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )?;
    }
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let d = dir.display();
    let conf = format!(
        r#"{top}
worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
worker_rlimit_nofile 19000;
events {{ worker_connections 18000; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    {http}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {d}/www;
        {locations}
    }}
}}
"#
    );
    std::fs::write(dir.join("nginx.conf"), conf)?;
    let mut child = pinned(Path::new("/usr/sbin/nginx"))
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(dir.join("nginx.conf"))
        .arg("-e")
        .arg(dir.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nginx")?;
    wait_listening(addr, &mut child, "nginx")?;
    let server = Server {
        ep: Endpoint {
            kind: Kind::Nchan,
            addr,
            site: String::new(),
            secret: String::new(),
            api_key: String::new(),
        },
        database_url: None,
        child,
    };
    Ok((server, dir.join("www")))
}
