//! What the browser tests stand on: the real `natter` binary as a child
//! process (`server`), a host site that embeds the widget with its script
//! tag (`site`), a TCP proxy per person between browser and chat server
//! (`proxy`: it cuts open WebSockets, which Chromium's offline emulation
//! leaves open), a WebDriver server (`driver`: chromedriver, or
//! geckodriver and WebKitWebDriver for the scenarios also run in Firefox
//! and WebKitGTK) and a browser per person (`person`, and what they see:
//! `seen`), all set up and torn down per scenario (`world`).

mod driver;
mod person;
mod proxy;
mod seen;
mod server;
mod site;
mod world;

pub use driver::Engine;
pub use person::Person;
pub use proxy::Link;
pub use site::{HostSite, Page};
pub use world::World;

use std::time::Duration;

/// How long anything a person waits for may take before a test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
