//! The link's decisions that need no browser: when to try again after a
//! dropped connection, and where to connect.

/// First reconnect delay; doubled per failed attempt.
pub const BACKOFF_BASE_MS: u32 = 500;
/// Longest reconnect delay.
pub const BACKOFF_MAX_MS: u32 = 30_000;

/// The delay before reconnect attempt `attempt` (0-based): doubling from
/// [`BACKOFF_BASE_MS`] up to [`BACKOFF_MAX_MS`], scaled by a jitter factor
/// between 0.5 and 1 from `random` (in `[0, 1)`) so that many widgets
/// dropped together do not come back together.
pub fn backoff_ms(attempt: u32, random: f64) -> u32 {
    let ceiling = BACKOFF_BASE_MS
        .saturating_mul(1 << attempt.min(16))
        .min(BACKOFF_MAX_MS);
    let jitter = 0.5 + random.clamp(0.0, 1.0) / 2.0;
    (f64::from(ceiling) * jitter) as u32
}

/// The WebSocket URL for `site` on the server that served this page.
pub fn ws_url(secure: bool, host: &str, site: &str) -> String {
    let scheme = if secure { "wss" } else { "ws" };
    format!("{scheme}://{host}/ws?site={site}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_ceiling_with_jitter() {
        assert_eq!(backoff_ms(0, 0.999_999), 499);
        assert_eq!(backoff_ms(0, 0.0), 250);
        assert_eq!(backoff_ms(3, 0.999_999), 3_999);
        assert_eq!(backoff_ms(10, 0.999_999), 29_999);
        assert_eq!(backoff_ms(u32::MAX, 0.0), 15_000);
    }

    #[test]
    fn ws_url_follows_the_page_scheme() {
        assert_eq!(
            ws_url(true, "chat.example.com", "demo"),
            "wss://chat.example.com/ws?site=demo"
        );
        assert_eq!(
            ws_url(false, "127.0.0.1:8080", "demo"),
            "ws://127.0.0.1:8080/ws?site=demo"
        );
    }
}
