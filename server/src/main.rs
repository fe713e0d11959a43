//! The `natter` binary: parse the configuration, set up logging, then
//! either manage sites or serve.

use anyhow::Context;
use clap::Parser;
use natter_server::config::{AdminCommand, Cli, Command, Config, SiteCommand};
use natter_server::files::Files;
use natter_server::store::Store;
use natter_server::{App, moderation, telemetry};
use std::io::Write;

/// jemalloc: its per-thread caches and size classes cost less per call
/// than the system allocator's arenas for what a connection allocates and
/// frees (frames, ids, buffers), with the same memory held per idle
/// connection (BENCHMARKS.md, "jemalloc", 2026-12-04).
#[cfg(not(target_env = "msvc"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Who the audit log names for a change made from the command line.
const CLI_ACTOR: &str = "cli";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init("info,sqlx=warn,async_nats=warn,tower_http=info");
    match cli.command {
        Some(Command::Site(cmd)) => site_command(&cli.config, cmd).await,
        Some(Command::Admin(cmd)) => admin_command(&cli.config, cmd).await,
        None => serve(cli.config).await,
    }
}

async fn serve(config: natter_server::config::Config) -> anyhow::Result<()> {
    let bind = config.bind;
    let demo = config.demo;
    let app = App::build(config).await.context("starting natter")?;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("binding {bind}"))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%addr, "natter listening");
    if demo {
        tracing::info!("demo page: http://{addr}/demo");
    }
    app.run(listener, shutdown_signal())
        .await
        .context("serving")?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: closing connections, committing writes");
}

/// The site `id` names, or a clear message that there is none.
async fn existing_site(store: &Store, id: &str) -> anyhow::Result<natter_server::store::Site> {
    let id = natter_shared::SiteId::parse(id).map_err(|e| anyhow::anyhow!("site {id:?}: {e}"))?;
    store
        .site(&id)
        .await
        .context("reading the site")?
        .ok_or_else(|| anyhow::anyhow!("no site {id}"))
}

/// The store the command line works on: the server's `--database-url`.
async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = &config.database_url;
    Store::connect(url, 2)
        .await
        .with_context(|| format!("opening {}", natter_server::store::redact_url(url)))
}

async fn site_command(config: &Config, cmd: SiteCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let mut out = std::io::stdout().lock();
    match cmd {
        SiteCommand::Add { name, origins } => {
            let origins = moderation::parse_origins(origins.iter().map(String::as_str))?;
            let new = store
                .create_site(None, &name, &origins)
                .await
                .context("creating the site")?;
            writeln!(out, "site id:      {}", new.site.id)?;
            writeln!(out, "token secret: {}", new.site.token_secret.expose())?;
            writeln!(out, "api key:      {}", new.api_key.expose())?;
            writeln!(out, "origins:      {}", origins.join(" "))?;
            writeln!(
                out,
                "Keep the secret and the key: the key is stored hashed and shown only now."
            )?;
        }
        SiteCommand::List => {
            for site in store.sites().await.context("listing sites")? {
                writeln!(
                    out,
                    "{}\t{}\t{}",
                    site.id,
                    site.name,
                    site.origins.join(" ")
                )?;
            }
        }
        SiteCommand::RotateSecret { site, grace_secs } => {
            let site = existing_site(&store, &site).await?;
            let (secret, _) = moderation::rotate_secret(&store, &site.id, grace_secs, CLI_ACTOR)
                .await
                .context("replacing the token secret")?;
            writeln!(out, "token secret: {}", secret.expose())?;
            writeln!(
                out,
                "Tokens signed with the old secret work for {grace_secs} s more; sign new ones with this."
            )?;
        }
        SiteCommand::RotateKey { site } => {
            let site = existing_site(&store, &site).await?;
            let key = moderation::rotate_key(&store, &site.id, CLI_ACTOR)
                .await
                .context("replacing the API key")?;
            writeln!(out, "api key:      {}", key.expose())?;
            writeln!(
                out,
                "The old key no longer works. Keep this one: it is shown only now."
            )?;
        }
        SiteCommand::Remove { site, yes } => {
            let site = existing_site(&store, &site).await?;
            if !yes {
                anyhow::bail!(
                    "this deletes site {} ({}) with all its rooms, messages, users and files; \
                     run again with --yes to do it",
                    site.id,
                    site.name
                );
            }
            let files = store
                .remove_site(&site.id)
                .await
                .context("deleting the site")?;
            let bytes = match &config.files.files_url {
                Some(url) => Files::at_url(url),
                None => Files::in_dir(&config.files.files_dir),
            }
            .context("opening the file store")?;
            for file in &files {
                bytes.remove(file).await;
            }
            writeln!(
                out,
                "removed site {} ({}) and {} files",
                site.id,
                site.name,
                files.len()
            )?;
        }
    }
    store.close().await;
    Ok(())
}

/// The password of `natter admin add|password`: asked twice without echo
/// on a terminal, else the first line of standard input.
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").context("reading the password")?;
        let again = rpassword::prompt_password("Again: ").context("reading the password")?;
        anyhow::ensure!(
            first == again,
            "the two passwords differ; nothing was changed"
        );
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

async fn admin_command(config: &Config, cmd: AdminCommand) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let mut out = std::io::stdout().lock();
    match cmd {
        AdminCommand::Add { email, sites } => {
            let email = email.trim().to_lowercase();
            anyhow::ensure!(
                email.contains('@') && email.len() <= 255,
                "{email:?} is not an e-mail address"
            );
            let mut ids = Vec::with_capacity(sites.len());
            for site in &sites {
                ids.push(existing_site(&store, site).await?.id);
            }
            let hash = hash_password(&read_password()?)?;
            let limited = (!ids.is_empty()).then_some(ids.as_slice());
            match store.add_admin(&email, &hash, limited).await {
                Err(natter_server::store::StoreError::Conflict) => {
                    anyhow::bail!(
                        "there is already an admin {email}; `natter admin password {email}` sets a new password"
                    )
                }
                other => other.context("adding the admin")?,
            }
            let scope = if ids.is_empty() {
                "every site".to_string()
            } else {
                sites.join(" ")
            };
            writeln!(
                out,
                "admin {email} added, managing {scope}; sign in at /admin"
            )?;
        }
        AdminCommand::Password { email } => {
            let email = email.trim().to_lowercase();
            let hash = hash_password(&read_password()?)?;
            match store.set_admin_password(&email, &hash).await {
                Err(natter_server::store::StoreError::NotFound) => {
                    anyhow::bail!("no admin {email}")
                }
                other => other.context("setting the password")?,
            }
            writeln!(out, "new password set for {email}; their sessions ended")?;
        }
        AdminCommand::List => {
            for admin in store.admins().await.context("listing admins")? {
                let scope = admin.sites.map_or_else(
                    || "every site".to_string(),
                    |s| s.iter().map(|id| id.as_str()).collect::<Vec<_>>().join(" "),
                );
                writeln!(out, "{}\t{scope}", admin.email)?;
            }
        }
        AdminCommand::Remove { email } => {
            let email = email.trim().to_lowercase();
            match store.remove_admin(&email).await {
                Err(natter_server::store::StoreError::NotFound) => {
                    anyhow::bail!("no admin {email}")
                }
                other => other.context("removing the admin")?,
            }
            writeln!(out, "admin {email} removed")?;
        }
    }
    store.close().await;
    Ok(())
}

fn hash_password(password: &str) -> anyhow::Result<String> {
    Ok(natter_server::admin::session::hash_password(password)?)
}
