//! Processes and the kernel's figures about them: starting natter and the
//! peers pinned to core 0, their CPU time from /proc/PID/stat and their
//! resident memory from /proc/PID/status (summed over child processes, so
//! nginx's worker counts).

use anyhow::{Context, Result, bail};
use natter_server::auth::{Claims, Secret};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The core the servers run on; the load runs on the other one.
pub const SERVER_CORE: &str = "0";
pub const LOAD_CORE: &str = "1";

mod peers;

pub use peers::{ensure_nchan, ensure_node_peer, start_nchan, start_nginx_files, start_node};

/// Which server a figure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Natter,
    Node,
    Nchan,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Natter => "natter",
            Kind::Node => "node ws",
            Kind::Nchan => "nchan",
        }
    }
}

/// What the load needs to reach a server; cheap to clone.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub kind: Kind,
    pub addr: SocketAddr,
    pub site: String,
    pub secret: String,
    pub api_key: String,
}

impl Endpoint {
    /// A token for `user`, valid for an hour.
    pub fn token(&self, user: &str) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        natter_server::auth::sign(
            &Claims {
                sub: user.to_string(),
                site: self.site.clone(),
                exp: now + 3600,
                nbf: None,
                iat: Some(now),
                name: None,
            },
            &Secret::new(self.secret.clone()),
        )
    }
}

/// A running server process (natter, node or nginx), stopped on drop.
pub struct Server {
    pub ep: Endpoint,
    pub database_url: Option<String>,
    child: Child,
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU time (user + system) of the process and its children.
    pub fn cpu(&self) -> Duration {
        let (user, system) = self.times();
        user + system
    }

    /// CPU time of the process and its children: user time (their own
    /// code) and system time (the kernel's system calls and the network
    /// work it does for them).
    pub fn times(&self) -> (Duration, Duration) {
        sum_times(tree(self.pid()).iter().map(|&p| times_of(p)))
    }

    /// Resident memory of the process and its children, KiB.
    pub fn rss_kib(&self) -> u64 {
        tree(self.pid()).iter().map(|&p| rss_of(p)).sum()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clk_tck() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// utime + stime of one process, from /proc/PID/stat.
pub fn cpu_of(pid: u32) -> Duration {
    let (user, system) = times_of(pid);
    user + system
}

/// (user, system) times added up.
pub fn sum_times(times: impl Iterator<Item = (Duration, Duration)>) -> (Duration, Duration) {
    times.fold((Duration::ZERO, Duration::ZERO), |(u, s), (tu, ts)| {
        (u + tu, s + ts)
    })
}

/// utime and stime of one process, from /proc/PID/stat.
fn times_of(pid: u32) -> (Duration, Duration) {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return (Duration::ZERO, Duration::ZERO);
    };
    // Fields after the command name (which may hold spaces) start at field 3.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        let n = fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
        Duration::from_nanos(n * 1_000_000_000 / clk_tck())
    };
    (ticks(11), ticks(12))
}

fn rss_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The process and its descendants.
fn tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for task in tasks.flatten() {
                if let Ok(children) = std::fs::read_to_string(task.path().join("children")) {
                    out.extend(
                        children
                            .split_whitespace()
                            .filter_map(|c| c.parse::<u32>().ok()),
                    );
                }
            }
        }
        i += 1;
    }
    out
}

/// A port nobody listens on right now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits until something accepts TCP connections on `addr`.
fn wait_listening(addr: SocketAddr, child: &mut Child, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("{what} exited with {status} before listening");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("{what} did not listen on {addr} within 20 s")
}

fn pinned(program: &Path) -> Command {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", SERVER_CORE]).arg(program);
    cmd
}

/// Paths the bench works with.
pub struct Paths {
    pub root: PathBuf,
    pub natter: PathBuf,
    pub scratch: PathBuf,
}

impl Paths {
    pub fn bench_dir(&self) -> PathBuf {
        self.root.join("bench")
    }
}

/// Where the natter database of a run lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    MariaDb,
}

impl Db {
    pub fn label(self) -> &'static str {
        match self {
            Db::Sqlite => "SQLite",
            Db::MariaDb => "MariaDB",
        }
    }
}

pub const MYSQL_ADMIN: &str = "mysql://root@127.0.0.1:3306/test";

static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix}_{}_{n}", std::process::id())
}

/// A fresh, empty MariaDB database; returns its URL.
pub async fn fresh_mysql() -> Result<String> {
    use sqlx::Connection;
    let name = unique("natter_bench");
    let mut conn = sqlx::MySqlConnection::connect(MYSQL_ADMIN)
        .await
        .context("MariaDB at 127.0.0.1:3306 (root, no password)")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await?;
    Ok(format!("mysql://root@127.0.0.1:3306/{name}"))
}

/// Drops the databases this process made (best effort).
pub async fn drop_mysql_databases() {
    use sqlx::{Connection, Row};
    let Ok(mut conn) = sqlx::MySqlConnection::connect(MYSQL_ADMIN).await else {
        return;
    };
    let prefix = format!("natter_bench_{}_", std::process::id());
    let Ok(rows) = sqlx::query("SHOW DATABASES").fetch_all(&mut conn).await else {
        return;
    };
    for row in rows {
        let name: String = row.try_get(0).unwrap_or_default();
        if name.starts_with(&prefix) {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name}")))
                .execute(&mut conn)
                .await;
        }
    }
}

/// Starts natter on a fresh database with a site; pinned to core 0.
pub async fn start_natter(paths: &Paths, db: Db) -> Result<Server> {
    start_natter_with(paths, db, &[]).await
}

/// [`start_natter`] with more arguments (later ones override the
/// benchmarks' own, such as the rates).
pub async fn start_natter_with(paths: &Paths, db: Db, extra: &[&str]) -> Result<Server> {
    let dir = paths.scratch.join(unique("natter"));
    std::fs::create_dir_all(&dir)?;
    let database_url = match db {
        Db::Sqlite => format!("sqlite://{}", dir.join("natter.db").display()),
        Db::MariaDb => fresh_mysql().await?,
    };
    let site = add_site(paths, &database_url)?;
    spawn_natter(paths, &dir, &database_url, site, extra)
}

/// Starts `n` natter nodes on one fresh MariaDB database, fanning out to
/// each other through the NATS server on 127.0.0.1:4222 (under subjects of
/// their own); all pinned to core 0, all serving the same site.
pub async fn start_cluster(paths: &Paths, n: usize, max_connections: usize) -> Result<Vec<Server>> {
    let database_url = fresh_mysql().await?;
    let site = add_site(paths, &database_url)?;
    let prefix = unique("bench");
    let max = max_connections.to_string();
    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let dir = paths.scratch.join(unique(&format!("node{i}")));
        std::fs::create_dir_all(&dir)?;
        let args = [
            "--broker",
            "nats://127.0.0.1:4222",
            "--broker-subject-prefix",
            &prefix,
            "--max-connections",
            &max,
        ];
        nodes.push(spawn_natter(
            paths,
            &dir,
            &database_url,
            site.clone(),
            &args,
        )?);
    }
    Ok(nodes)
}

/// What `natter site add` printed: site id, token secret, API key.
#[derive(Clone)]
struct SiteKeys {
    site: String,
    secret: String,
    api_key: String,
}

/// Adds the bench's site to natter's database.
fn add_site(paths: &Paths, database_url: &str) -> Result<SiteKeys> {
    let out = Command::new(&paths.natter)
        .args(["--database-url", database_url, "site", "add", "bench"])
        .args(["--origin", "http://bench.example"])
        .stderr(Stdio::null())
        .output()
        .context("natter site add")?;
    if !out.status.success() {
        bail!("natter site add failed: {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .with_context(|| format!("no {name} in natter site add's output"))
    };
    Ok(SiteKeys {
        site: field("site id:")?,
        secret: field("token secret:")?,
        api_key: field("api key:")?,
    })
}

/// natter's caps and rates, off for the benchmarks.
const NO_LIMITS: [(&str, &str); 6] = [
    ("--max-connections-per-ip", "1000000"),
    ("--max-connections-per-user", "1000000"),
    ("--connect-rate", "0"),
    ("--send-rate", "0"),
    ("--request-rate", "0"),
    ("--api-rate", "0"),
];

/// Starts one natter process on `database_url`, logging into `dir`.
fn spawn_natter(
    paths: &Paths,
    dir: &Path,
    database_url: &str,
    keys: SiteKeys,
    extra: &[&str],
) -> Result<Server> {
    let port = free_port()?;
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let log = std::fs::File::create(dir.join("natter.log"))?;
    let mut child = pinned(&paths.natter)
        .args(["--bind", &addr.to_string(), "--database-url", database_url])
        .arg("--widget-dir")
        .arg(dir.join("no-widget"))
        .arg("--files-dir")
        .arg(dir.join("files"))
        .args(["--conn-queue", "8192", "--max-inflight-sends", "256"])
        // Every client of a benchmark comes from this machine, and the
        // peers have no limits: natter's caps and rates are off here,
        // unless `extra` sets one (a flag is taken once).
        .args(
            NO_LIMITS
                .iter()
                .filter(|(flag, _)| !extra.contains(flag))
                .flat_map(|(flag, value)| [*flag, *value]),
        )
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting natter")?;
    wait_listening(addr, &mut child, "natter")?;
    Ok(Server {
        ep: Endpoint {
            kind: Kind::Natter,
            addr,
            site: keys.site,
            secret: keys.secret,
            api_key: keys.api_key,
        },
        database_url: Some(database_url.to_string()),
        child,
    })
}

/// One line about the machine, from /proc/cpuinfo and friends.
pub fn machine_line() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown CPU".into());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "{model}, {cpus} CPUs, {mem_gib:.0} GiB, Linux {}; run {date}",
        kernel.trim()
    )
}
