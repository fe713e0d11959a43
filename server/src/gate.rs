//! Limits against exhaustion: connections per client address and per
//! user, and rates (GCRA, with bursts) of sends, catch-up and history
//! requests per user, of HTTP API calls per site, and of new connections
//! per address. A rate of 0 turns that limit off.

use crate::config::GuardConfig;
use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use natter_shared::{SiteId, UserId};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// What is rate-limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rate {
    /// `send` frames, per user.
    Sends,
    /// `sync` and `history` frames, per user.
    Requests,
    /// HTTP API calls, per site.
    Api,
    /// New WebSocket connections (each one a sign-in), per address.
    Connects,
}

/// The connection counts and rate limiters of one server.
pub struct Gate {
    max_per_ip: u32,
    max_per_user: u32,
    header: Option<String>,
    /// Connections held, by the key of their address.
    per_ip: Mutex<HashMap<u64, u32>>,
    /// Connections held, by the key of their user.
    per_user: Mutex<HashMap<u64, u32>>,
    sends: Option<DefaultKeyedRateLimiter<u64>>,
    requests: Option<DefaultKeyedRateLimiter<u64>>,
    api: Option<DefaultKeyedRateLimiter<u64>>,
    connects: Option<DefaultKeyedRateLimiter<u64>>,
    keys: RandomState,
}

/// One connection counted against its address's or its user's cap; the
/// count goes down when it is dropped.
pub struct Held {
    gate: Arc<Gate>,
    slot: Slot,
}

/// Which cap a connection counts against, and its key there.
enum Slot {
    Ip(u64),
    User(u64),
}

fn limiter(per_second: u32, burst: u32) -> Option<DefaultKeyedRateLimiter<u64>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    Some(DefaultKeyedRateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl Gate {
    pub fn new(config: &GuardConfig) -> Arc<Gate> {
        Arc::new(Gate {
            max_per_ip: config.max_connections_per_ip,
            max_per_user: config.max_connections_per_user,
            header: config.client_ip_header.clone(),
            per_ip: Mutex::default(),
            per_user: Mutex::default(),
            sends: limiter(config.send_rate, config.send_burst),
            requests: limiter(config.request_rate, config.request_burst),
            api: limiter(config.api_rate, config.api_burst),
            connects: limiter(config.connect_rate, config.connect_burst),
            keys: RandomState::new(),
        })
    }

    /// The client's address: the last one in the trusted header when the
    /// server is configured with one (the one the proxy in front added),
    /// else the TCP peer's.
    pub fn client_ip(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<IpAddr> {
        let forwarded = self.header.as_deref().and_then(|name| {
            let value = headers.get_all(name).iter().next_back()?.to_str().ok()?;
            value.rsplit(',').next()?.trim().parse().ok()
        });
        forwarded.or(peer.map(|p| p.ip()))
    }

    /// The key of a user in the per-user counts and limits.
    pub fn user_key(&self, site: &SiteId, user: &UserId) -> u64 {
        self.keys.hash_one((site, user))
    }

    /// The key of a site or an address in the limits.
    pub fn key<T: std::hash::Hash>(&self, what: &T) -> u64 {
        self.keys.hash_one(what)
    }

    /// Counts one more connection from `ip`, or `None` at the cap.
    pub fn hold_ip(self: &Arc<Self>, ip: IpAddr) -> Option<Held> {
        self.hold(Slot::Ip(self.key(&ip)))
    }

    /// Counts one more connection of the user `key`, or `None` at the cap.
    pub fn hold_user(self: &Arc<Self>, key: u64) -> Option<Held> {
        self.hold(Slot::User(key))
    }

    /// The counts a slot is in, its key there, and its cap.
    fn counts(&self, slot: &Slot) -> (MutexGuard<'_, HashMap<u64, u32>>, u64, u32) {
        let (counts, key, max) = match *slot {
            Slot::Ip(key) => (&self.per_ip, key, self.max_per_ip),
            Slot::User(key) => (&self.per_user, key, self.max_per_user),
        };
        (
            counts.lock().unwrap_or_else(PoisonError::into_inner),
            key,
            max,
        )
    }

    fn hold(self: &Arc<Self>, slot: Slot) -> Option<Held> {
        let (mut counts, key, max) = self.counts(&slot);
        let count = counts.entry(key).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        drop(counts);
        Some(Held {
            gate: self.clone(),
            slot,
        })
    }

    /// The most connections one user may hold.
    pub fn max_per_user(&self) -> u32 {
        self.max_per_user
    }

    /// The most connections one address may hold.
    pub fn max_per_ip(&self) -> u32 {
        self.max_per_ip
    }

    /// Takes one request of kind `rate` for `key`: `Err` with the time to
    /// wait when over the limit.
    pub fn take(&self, rate: Rate, key: u64) -> Result<(), Duration> {
        let limiter = match rate {
            Rate::Sends => &self.sends,
            Rate::Requests => &self.requests,
            Rate::Api => &self.api,
            Rate::Connects => &self.connects,
        };
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// Forgets the limiters' state of keys that are back to a full burst.
    pub fn prune(&self) {
        for limiter in [&self.sends, &self.requests, &self.api, &self.connects]
            .into_iter()
            .flatten()
        {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Prunes every `every` until `stop` fires.
    pub async fn prune_every(
        self: Arc<Self>,
        every: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.prune(),
            }
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let (mut counts, key, _) = self.gate.counts(&self.slot);
        if let Some(count) = counts.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn gate(args: &[&str]) -> Arc<Gate> {
        let mut argv = vec!["natter"];
        argv.extend_from_slice(args);
        let cli = crate::config::Cli::parse_from(argv);
        Gate::new(&cli.config.guard)
    }

    #[test]
    fn caps_count_down_when_connections_end() {
        let gate = gate(&["--max-connections-per-ip", "2"]);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let a = gate.hold_ip(ip).expect("first");
        let _b = gate.hold_ip(ip).expect("second");
        assert!(gate.hold_ip(ip).is_none(), "third is over the cap");
        assert!(
            gate.hold_ip([10, 0, 0, 2].into()).is_some(),
            "another address"
        );
        drop(a);
        assert!(gate.hold_ip(ip).is_some(), "a slot came free");
    }

    #[test]
    fn the_trusted_header_names_the_client_only_when_configured() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "203.0.113.9, 198.51.100.7".parse().expect("header"),
        );
        let peer: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let plain = gate(&[]);
        assert_eq!(plain.client_ip(&headers, Some(peer)), Some(peer.ip()));
        let proxied = gate(&["--client-ip-header", "x-forwarded-for"]);
        let last: IpAddr = "198.51.100.7".parse().expect("ip");
        assert_eq!(proxied.client_ip(&headers, Some(peer)), Some(last));
        assert_eq!(
            proxied.client_ip(&HeaderMap::new(), Some(peer)),
            Some(peer.ip())
        );
    }

    #[test]
    fn a_burst_passes_then_the_rate_holds_and_zero_is_off() {
        let gate = gate(&["--send-rate", "1", "--send-burst", "3"]);
        for _ in 0..3 {
            assert!(gate.take(Rate::Sends, 7).is_ok());
        }
        let wait = gate.take(Rate::Sends, 7).expect_err("over the burst");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        assert!(
            gate.take(Rate::Sends, 8).is_ok(),
            "another user has their own"
        );
        let off = super::tests::gate(&["--send-rate", "0"]);
        assert!((0..10_000).all(|_| off.take(Rate::Sends, 7).is_ok()));
    }
}
