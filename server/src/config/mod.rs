//! Configuration: one `clap` parser, every option also an environment
//! variable. Secrets never print.

mod commands;

pub use commands::{AdminCommand, Cli, Command, SiteCommand};

use clap::{Args, Parser};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything the server needs to run.
#[derive(Debug, Clone, Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        global = true,
        env = "NATTER_BIND",
        default_value = "127.0.0.1:8080"
    )]
    pub bind: SocketAddr,

    /// Database: `sqlite://PATH` (created if missing) or `mysql://USER:PASS@HOST/DB`.
    #[arg(
        long,
        global = true,
        env = "NATTER_DATABASE_URL",
        default_value = "sqlite://natter.db"
    )]
    pub database_url: String,

    /// The address people reach this server at, e.g.
    /// `https://chat.example.com`: the widget's own origin (WebSocket
    /// `Origin` checks compare with it, not with the request's `Host`, so
    /// DNS rebinding cannot pass) and its page's `connect-src`. Without
    /// it, the request's `Host` names the server's own origin.
    #[arg(long, global = true, env = "NATTER_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// Directory of the built widget app (trunk's `dist/`), served under
    /// `/widget/`; its `widget.js` is served at `/widget.js`.
    #[arg(long, global = true, env = "NATTER_WIDGET_DIR", default_value = "dist")]
    pub widget_dir: PathBuf,

    /// Seconds browsers may use `/widget.js` without asking again.
    #[arg(
        long,
        global = true,
        env = "NATTER_LOADER_MAX_AGE_SECS",
        default_value_t = 300
    )]
    pub loader_max_age_secs: u64,

    /// Seconds after that during which browsers use their copy of
    /// `/widget.js` at once and ask for a new one in the background
    /// (`stale-while-revalidate`): the launcher still appears while the
    /// chat server is down.
    #[arg(
        long,
        global = true,
        env = "NATTER_LOADER_STALE_SECS",
        default_value_t = 2_592_000
    )]
    pub loader_stale_secs: u64,

    /// Milliseconds the widget's service worker waits for the chat server
    /// before it opens the widget from the browser's cache.
    #[arg(
        long,
        global = true,
        env = "NATTER_OFFLINE_AFTER_MS",
        default_value_t = 4_000
    )]
    pub offline_after_ms: u64,

    /// Demo mode: create the demo site and users, serve `/demo`, and mint
    /// tokens for demo users. Never use in production.
    #[arg(long, global = true, env = "NATTER_DEMO")]
    pub demo: bool,

    /// NATS server for fan-out across several nodes, e.g.
    /// `nats://127.0.0.1:4222` (several servers of one NATS cluster:
    /// comma-separated). Without it, fan-out stays in this process (one
    /// node).
    #[arg(long, global = true, env = "NATTER_BROKER")]
    pub broker: Option<String>,

    /// Prefix of this cluster's broker subjects: nodes that share the
    /// database share it too; clusters on one NATS server each take their own.
    #[arg(
        long,
        global = true,
        env = "NATTER_BROKER_SUBJECT_PREFIX",
        default_value = "natter"
    )]
    pub broker_subject_prefix: String,

    /// Seconds between sweeps that compare what reached this node through
    /// the broker with what is stored, and fill what never came (events,
    /// and rooms its people joined lately).
    #[arg(
        long,
        global = true,
        env = "NATTER_BROKER_SWEEP_SECS",
        default_value_t = 5
    )]
    pub broker_sweep_secs: u64,

    #[command(flatten)]
    pub limits: LimitsConfig,

    #[command(flatten)]
    pub files: FilesConfig,

    #[command(flatten)]
    pub people: PeopleConfig,

    #[command(flatten)]
    pub guard: GuardConfig,

    #[command(flatten)]
    pub webhooks: WebhooksConfig,

    #[command(flatten)]
    pub admin: AdminConfig,
}

/// The admin panel at `/admin`.
#[derive(Debug, Clone, Args)]
pub struct AdminConfig {
    /// Seconds an admin stays signed in.
    #[arg(
        long,
        global = true,
        env = "NATTER_ADMIN_SESSION_SECS",
        default_value_t = 8 * 3600,
        value_parser = clap::value_parser!(u64).range(60..=30 * 24 * 3600)
    )]
    pub admin_session_secs: u64,

    /// Sign-in attempts a minute, per client address and per e-mail
    /// address (0: no limit).
    #[arg(
        long,
        global = true,
        env = "NATTER_ADMIN_SIGN_IN_PER_MINUTE",
        default_value_t = 5
    )]
    pub admin_sign_in_per_minute: u32,
}

/// Delivering webhooks to the sites' endpoints.
#[derive(Debug, Clone, Args)]
pub struct WebhooksConfig {
    /// Seconds an endpoint has to answer a webhook.
    #[arg(
        long,
        global = true,
        env = "NATTER_WEBHOOK_TIMEOUT_SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..=300)
    )]
    pub webhook_timeout_secs: u64,

    /// Milliseconds before the first retry of a failed webhook; each
    /// further retry waits twice as long, up to `--webhook-backoff-max-secs`.
    #[arg(
        long,
        global = true,
        env = "NATTER_WEBHOOK_BACKOFF_MS",
        default_value_t = 5_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub webhook_backoff_ms: u64,

    /// Longest wait between two retries of a webhook, in seconds.
    #[arg(
        long,
        global = true,
        env = "NATTER_WEBHOOK_BACKOFF_MAX_SECS",
        default_value_t = 3_600,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub webhook_backoff_max_secs: u64,

    /// Seconds a webhook is retried for; an endpoint whose oldest waiting
    /// webhook failed for longer is paused until it is resumed.
    #[arg(
        long,
        global = true,
        env = "NATTER_WEBHOOK_RETRY_SECS",
        default_value_t = 86_400,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub webhook_retry_secs: u64,

    /// Seconds a node holds an endpoint's lease (one node at a time
    /// delivers an endpoint's webhooks); a node that died lets go after it.
    #[arg(
        long,
        global = true,
        env = "NATTER_WEBHOOK_LEASE_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(2..)
    )]
    pub webhook_lease_secs: u64,

    /// Milliseconds between looks for webhooks written by other nodes
    /// (this node's own are sent at once).
    #[arg(
        long,
        global = true,
        env = "NATTER_WEBHOOK_POLL_MS",
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(10..)
    )]
    pub webhook_poll_ms: u64,
}

/// Limits against exhaustion and abuse. A rate of 0 turns that limit off.
#[derive(Debug, Clone, Args)]
pub struct GuardConfig {
    /// Most WebSocket connections from one client address; more get 429.
    #[arg(
        long,
        global = true,
        env = "NATTER_MAX_CONNECTIONS_PER_IP",
        default_value_t = 1_000
    )]
    pub max_connections_per_ip: u32,

    /// Most WebSocket connections of one user (tabs and devices); more are
    /// closed with `too_many_connections` after `auth`.
    #[arg(
        long,
        global = true,
        env = "NATTER_MAX_CONNECTIONS_PER_USER",
        default_value_t = 16
    )]
    pub max_connections_per_user: u32,

    /// Behind a reverse proxy: the header it puts the client's address in
    /// (e.g. `X-Forwarded-For`; its last address counts). Without it the
    /// TCP peer's address counts. Set it only when every request comes
    /// through the proxy.
    #[arg(long, global = true, env = "NATTER_CLIENT_IP_HEADER")]
    pub client_ip_header: Option<String>,

    /// Longest lifetime of a token, in seconds, from its `iat` (or from
    /// when it is shown, without one) to its `exp`; longer ones are refused.
    #[arg(
        long = "max-token-ttl",
        global = true,
        env = "NATTER_MAX_TOKEN_TTL",
        default_value_t = 86_400
    )]
    pub max_token_ttl_secs: i64,

    /// Seconds a connection whose token expired has to send `auth` with a
    /// fresh one (it is told when the token expires) before it is closed.
    #[arg(
        long,
        global = true,
        env = "NATTER_TOKEN_GRACE_SECS",
        default_value_t = 60
    )]
    pub token_grace_secs: u64,

    /// Seconds a write to a WebSocket may wait for the client to take it
    /// (a large history page on a slow link takes a while); a client that
    /// stops reading is dropped after it.
    #[arg(
        long,
        global = true,
        env = "NATTER_WRITE_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub write_timeout_secs: u64,

    /// Seconds a client has to send a request's headers; slower ones are
    /// disconnected.
    #[arg(
        long,
        global = true,
        env = "NATTER_HEADER_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub header_timeout_secs: u64,

    /// Seconds an HTTP API request may take, its body included; slower
    /// ones get 408.
    #[arg(
        long,
        global = true,
        env = "NATTER_REQUEST_TIMEOUT_SECS",
        default_value_t = 30
    )]
    pub request_timeout_secs: u64,

    /// `send` frames per second one user may keep up; past the burst, sends
    /// are held (never refused) and the client is told `too_many_requests`.
    #[arg(long, global = true, env = "NATTER_SEND_RATE", default_value_t = 10)]
    pub send_rate: u32,

    /// `send` frames one user may send at once (an outbox drained after a
    /// time offline).
    #[arg(long, global = true, env = "NATTER_SEND_BURST", default_value_t = 200)]
    pub send_burst: u32,

    /// `sync` and `history` frames per second one user may keep up.
    #[arg(long, global = true, env = "NATTER_REQUEST_RATE", default_value_t = 5)]
    pub request_rate: u32,

    /// `sync` and `history` frames one user may send at once.
    #[arg(
        long,
        global = true,
        env = "NATTER_REQUEST_BURST",
        default_value_t = 50
    )]
    pub request_burst: u32,

    /// HTTP API calls per second one site may keep up; more get 429.
    #[arg(long, global = true, env = "NATTER_API_RATE", default_value_t = 200)]
    pub api_rate: u32,

    /// HTTP API calls one site may make at once.
    #[arg(long, global = true, env = "NATTER_API_BURST", default_value_t = 2_000)]
    pub api_burst: u32,

    /// New WebSocket connections (sign-ins) per second from one address;
    /// more get 429.
    #[arg(long, global = true, env = "NATTER_CONNECT_RATE", default_value_t = 20)]
    pub connect_rate: u32,

    /// New WebSocket connections one address may open at once.
    #[arg(
        long,
        global = true,
        env = "NATTER_CONNECT_BURST",
        default_value_t = 200
    )]
    pub connect_burst: u32,
}

/// What people see of each other: read markers and presence.
#[derive(Debug, Clone, Args)]
pub struct PeopleConfig {
    /// Milliseconds between writes of the read markers people set (all
    /// those set in between go in one transaction).
    #[arg(
        long,
        global = true,
        env = "NATTER_READ_FLUSH_MS",
        default_value_t = 1_000
    )]
    pub read_flush_ms: u64,

    /// Seconds a user whose last connection closed still shows online (a
    /// reload or a short cut does not flicker them offline).
    #[arg(
        long,
        global = true,
        env = "NATTER_PRESENCE_GRACE_SECS",
        default_value_t = 10
    )]
    pub presence_grace_secs: u64,
}

/// Files in messages: where they are kept and what is taken.
#[derive(Debug, Clone, Args)]
pub struct FilesConfig {
    /// Directory the files are kept in (created if missing). Every node of
    /// a site must see the same one.
    #[arg(
        long,
        global = true,
        env = "NATTER_FILES_DIR",
        default_value = "natter-files"
    )]
    pub files_dir: PathBuf,

    /// An S3 (or S3-compatible) bucket to keep the files in instead of
    /// `--files-dir`: `s3://BUCKET` or `s3://BUCKET/PREFIX`. Credentials,
    /// region and endpoint come from the usual `AWS_*` variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ENDPOINT`, `AWS_ALLOW_HTTP`).
    #[arg(long, global = true, env = "NATTER_FILES_URL")]
    pub files_url: Option<String>,

    /// Largest file, in bytes.
    #[arg(long, global = true, env = "NATTER_MAX_FILE_BYTES", default_value_t = natter_shared::limits::MAX_FILE_BYTES)]
    pub max_file_bytes: u64,

    /// Most files one message may carry.
    #[arg(long, global = true, env = "NATTER_MAX_FILES_PER_MESSAGE", default_value_t = natter_shared::limits::MAX_FILES_PER_MESSAGE)]
    pub max_files_per_message: usize,

    /// Bytes one user may upload in 24 hours.
    #[arg(long, global = true, env = "NATTER_MAX_UPLOAD_BYTES_PER_DAY", default_value_t = 1024 * 1024 * 1024)]
    pub max_upload_bytes_per_day: u64,

    /// File types a site takes unless it set its own list: MIME types,
    /// families like `image/*`, or `*`; comma-separated. The type is
    /// sniffed from the bytes, never taken from the name.
    #[arg(long, global = true, env = "NATTER_FILE_TYPES", default_value = crate::files::kinds::DEFAULT_TYPES, value_parser = parse_types)]
    pub file_types: FileTypes,

    /// Seconds an upload may sit unfinished and untouched before it is
    /// deleted.
    #[arg(long, global = true, env = "NATTER_UPLOAD_EXPIRY_SECS", default_value_t = 24 * 3600)]
    pub upload_expiry_secs: u64,

    /// Seconds a signed file link (for `<img>`, `<audio>`, downloads) stays valid.
    #[arg(
        long,
        global = true,
        env = "NATTER_FILE_LINK_SECS",
        default_value_t = 600
    )]
    pub file_link_secs: u64,
}

/// `scheme://host[:port]` of an http(s) URL, without a trailing `/`.
fn parse_public_url(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("give an http:// or https:// URL with a host".into());
    }
    Ok(url.origin().ascii_serialization())
}

/// A parsed allow-list of file types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTypes(pub Vec<String>);

fn parse_types(text: &str) -> Result<FileTypes, String> {
    crate::files::kinds::parse_list(text).map(FileTypes)
}

/// Limits, all explicit and configurable.
#[derive(Debug, Clone, Args)]
pub struct LimitsConfig {
    /// Largest WebSocket message accepted, in bytes; larger closes with 1009.
    #[arg(long, global = true, env = "NATTER_MAX_FRAME_BYTES", default_value_t = natter_shared::limits::MAX_FRAME_BYTES)]
    pub max_frame_bytes: usize,

    /// Largest message body, in bytes.
    #[arg(long, global = true, env = "NATTER_MAX_BODY_BYTES", default_value_t = natter_shared::limits::MAX_BODY_BYTES)]
    pub max_body_bytes: usize,

    /// Events per catch-up and history page.
    #[arg(long, global = true, env = "NATTER_PAGE_SIZE", default_value_t = natter_shared::limits::PAGE_SIZE)]
    pub page_size: u32,

    /// Pages of catch-up one room gets in a `sync`; a client further
    /// behind gets the room's latest page afresh (`reset`) and reads older
    /// events with `history` as it scrolls, at most this many pages a
    /// request.
    #[arg(
        long,
        global = true,
        env = "NATTER_MAX_CATCH_UP_PAGES",
        default_value_t = natter_shared::limits::HISTORY_PAGES
    )]
    pub max_catch_up_pages: u32,

    /// Members a room's listing carries (in `rooms` frames and the HTTP
    /// API); beyond it, the user and those who read furthest, and
    /// `members` requests page through the rest.
    #[arg(
        long,
        global = true,
        env = "NATTER_MEMBERS_LISTED",
        default_value_t = natter_shared::limits::MEMBERS_LISTED,
        value_parser = clap::value_parser!(u32).range(2..=10_000)
    )]
    pub members_listed: u32,

    /// Live frames queued per connection before it is told to resync.
    #[arg(long, global = true, env = "NATTER_CONN_QUEUE", default_value_t = 256)]
    pub conn_queue: usize,

    /// Seconds between WebSocket pings; two silent intervals drop the connection.
    #[arg(
        long,
        global = true,
        env = "NATTER_HEARTBEAT_SECS",
        default_value_t = 20
    )]
    pub heartbeat_secs: u64,

    /// Seconds a new connection has to send its `auth` frame.
    #[arg(
        long,
        global = true,
        env = "NATTER_AUTH_TIMEOUT_SECS",
        default_value_t = 10
    )]
    pub auth_timeout_secs: u64,

    /// Sends per connection awaiting their commit; past it the server stops
    /// reading that socket until acks go out.
    #[arg(
        long,
        global = true,
        env = "NATTER_MAX_INFLIGHT_SENDS",
        default_value_t = 64
    )]
    pub max_inflight_sends: usize,

    /// Most writes committed together in one transaction (group commit).
    #[arg(long, global = true, env = "NATTER_BATCH_MAX", default_value_t = 1024)]
    pub batch_max: usize,

    /// Writer tasks on MySQL/MariaDB, each committing its own batches on
    /// a connection of its own, so that one batch's round trips do not
    /// hold up the next; a room's writes always go through the same one.
    /// SQLite has one writer whatever this says.
    #[arg(
        long,
        global = true,
        env = "NATTER_WRITERS",
        default_value_t = 4,
        value_parser = clap::value_parser!(u32).range(1..=64)
    )]
    pub writers: u32,

    /// Largest HTTP API request body, in bytes; larger gets 413.
    #[arg(long, global = true, env = "NATTER_MAX_REQUEST_BYTES", default_value_t = 256 * 1024)]
    pub max_request_bytes: usize,

    /// Most WebSocket connections at once; more get 503. Keep it below the
    /// process's file descriptor limit.
    #[arg(
        long,
        global = true,
        env = "NATTER_MAX_CONNECTIONS",
        default_value_t = 15_000
    )]
    pub max_connections: usize,

    /// Milliseconds between two `typing` frames of one person in one room
    /// that are passed on; those in between are dropped.
    #[arg(
        long,
        global = true,
        env = "NATTER_TYPING_INTERVAL_MS",
        default_value_t = 2_000
    )]
    pub typing_interval_ms: u64,

    /// Database connections for reading and the HTTP API; the writers'
    /// (`--writers`) come on top.
    #[arg(long, global = true, env = "NATTER_DB_POOL", default_value_t = 8)]
    pub db_pool: u32,

    /// Where reads of an embedded SQLite database run: `workers` (on the
    /// thread serving the connection, cheapest while the database fits in
    /// memory) or `threads` (each handed to a blocking thread, the worker
    /// free meanwhile: for a database much larger than memory).
    #[arg(
        long,
        global = true,
        env = "NATTER_SQLITE_READS",
        value_enum,
        default_value_t = crate::store::SqliteReads::default()
    )]
    pub sqlite_reads: crate::store::SqliteReads,
}

impl Config {
    /// A configuration for tests and embedding: defaults everywhere, but
    /// files beside a SQLite database (not in the working directory).
    pub fn for_database(database_url: impl Into<String>) -> Self {
        let mut cli = Cli::parse_from(["natter"]);
        let url = database_url.into();
        if let Some(dir) = url
            .strip_prefix("sqlite://")
            .map(|path| path.split('?').next().unwrap_or(path))
            .and_then(|path| std::path::Path::new(path).parent())
            .filter(|dir| !dir.as_os_str().is_empty())
        {
            cli.config.files.files_dir = dir.join("natter-files");
        }
        cli.config.database_url = url;
        cli.config
    }
}
