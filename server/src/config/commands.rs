//! The command line: serving (every option of [`Config`]), or one of the
//! commands that manage sites and admin accounts instead.

use super::Config;
use clap::{Parser, Subcommand};

/// Natter: an offline-first chat server for embedding in any website.
#[derive(Debug, Clone, Parser)]
#[command(name = "natter", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What to do instead of serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Manage the sites (tenants) this server serves.
    #[command(subcommand)]
    Site(SiteCommand),
    /// Manage the accounts of the admin panel (`/admin`).
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// `natter admin …`. Passwords are read from standard input (asked for
/// when it is a terminal), never from the command line.
#[derive(Debug, Clone, Subcommand)]
pub enum AdminCommand {
    /// Create an admin account.
    Add {
        /// The admin's e-mail address, which they sign in with.
        email: String,
        /// A site this admin may manage (repeat for several); without it,
        /// every site, and creating new ones.
        #[arg(long = "site")]
        sites: Vec<String>,
    },
    /// Set a new password (signs the admin out everywhere).
    Password {
        /// The admin's e-mail address.
        email: String,
    },
    /// List the admins and the sites they manage.
    List,
    /// Delete an admin account (signs them out).
    Remove {
        /// The admin's e-mail address.
        email: String,
    },
}

/// `natter site …`
#[derive(Debug, Clone, Subcommand)]
pub enum SiteCommand {
    /// Create a site; prints its id, token secret and API key (shown once).
    Add {
        /// A name for people.
        name: String,
        /// An origin allowed to embed the widget, e.g. https://example.com
        /// (repeat for several).
        #[arg(long = "origin", required = true)]
        origins: Vec<String>,
    },
    /// List the sites with their origins.
    List,
    /// Replace a site's token secret; prints the new one. Tokens signed
    /// with the old one keep working for `--grace-secs`, so people signed
    /// in are not thrown out while the site's backend moves to the new one.
    RotateSecret {
        /// The site's id.
        site: String,
        /// Seconds the old secret still verifies tokens (at most 30 days).
        #[arg(long, default_value_t = 86_400,
              value_parser = clap::value_parser!(u64).range(..=crate::moderation::MAX_GRACE_SECS))]
        grace_secs: u64,
    },
    /// Replace a site's API key; prints the new one (the old one stops
    /// working at once).
    RotateKey {
        /// The site's id.
        site: String,
    },
    /// Delete a site with all its rooms, messages, users and files.
    Remove {
        /// The site's id.
        site: String,
        /// Really delete it (without it, nothing is deleted).
        #[arg(long)]
        yes: bool,
    },
}
