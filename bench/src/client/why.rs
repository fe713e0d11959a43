//! Why messages or clients went missing, as the clients count it:
//! `resync` and `error` frames, refused handshakes, connections the
//! server ended and waits that timed out.

use super::frame_type;
use std::collections::BTreeMap;
use std::sync::Mutex;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;

/// Why messages or clients went missing, counted by the clients as it
/// happens.
#[derive(Debug, Default)]
pub struct Why {
    /// `resync` frames received.
    pub resyncs: u64,
    /// `sync` frames a follower sent again (after `resync` or a skipped seq).
    pub resynced: u64,
    /// Live events that skipped a seq.
    pub gaps: u64,
    /// `error` frames, by code.
    pub errors: BTreeMap<String, u64>,
    /// Handshakes refused: HTTP status (and error code), or the connect or
    /// upgrade error.
    pub refused: BTreeMap<String, u64>,
    /// Connections the server ended: close code and reason, or how the
    /// socket ended without one.
    pub closes: BTreeMap<String, u64>,
    /// Clients that gave up waiting, by what they waited for.
    pub timeouts: BTreeMap<&'static str, u64>,
}

static WHY: Mutex<Why> = Mutex::new(Why {
    resyncs: 0,
    resynced: 0,
    gaps: 0,
    errors: BTreeMap::new(),
    refused: BTreeMap::new(),
    closes: BTreeMap::new(),
    timeouts: BTreeMap::new(),
});

pub(super) fn why(f: impl FnOnce(&mut Why)) {
    f(&mut WHY.lock().unwrap_or_else(|e| e.into_inner()));
}

pub(super) fn bump<K: Ord>(map: &mut BTreeMap<K, u64>, key: K) {
    *map.entry(key).or_default() += 1;
}

/// What was counted since the last call; starts a new count.
pub fn take_why() -> Why {
    std::mem::take(&mut *WHY.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A client gave up waiting for `what`.
pub fn timed_out(what: &'static str) {
    why(|w| bump(&mut w.timeouts, what));
}

impl Why {
    pub fn is_empty(&self) -> bool {
        self.resyncs == 0
            && self.resynced == 0
            && self.gaps == 0
            && self.errors.is_empty()
            && self.refused.is_empty()
            && self.closes.is_empty()
            && self.timeouts.is_empty()
    }

    /// `"2 resync (2 re-synced), 0 errors, 0 refused, 1 closes (4000
    /// heartbeat timeout ×1), 0 timeouts"`.
    pub fn line(&self) -> String {
        fn count<K: std::fmt::Display>(name: &str, map: &BTreeMap<K, u64>) -> String {
            let total: u64 = map.values().sum();
            if map.is_empty() {
                return format!("0 {name}");
            }
            let parts: Vec<String> = map.iter().map(|(k, n)| format!("{k} ×{n}")).collect();
            format!("{total} {name} ({})", parts.join(", "))
        }
        let mut s = format!("{} resync", self.resyncs);
        if self.resynced > 0 {
            s.push_str(&format!(" ({} re-synced)", self.resynced));
        }
        if self.gaps > 0 {
            s.push_str(&format!(", {} live gaps", self.gaps));
        }
        for part in [
            count("errors", &self.errors),
            count("refused", &self.refused),
            count("closes", &self.closes),
            count("timeouts", &self.timeouts),
        ] {
            s.push_str(", ");
            s.push_str(&part);
        }
        s
    }
}

/// Counts a frame the server sent: `resync`, or `error` by its code.
pub(super) fn note_frame(text: &str) {
    match frame_type(text) {
        "resync" => why(|w| w.resyncs += 1),
        "error" => {
            let code = text
                .split(r#""code":""#)
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("?")
                .to_string();
            why(|w| bump(&mut w.errors, code));
        }
        _ => {}
    }
}

pub(super) fn close_label(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) => format!("{} {}", u16::from(f.code), f.reason)
            .trim_end()
            .to_string(),
        None => "close without a code".into(),
    }
}

pub(super) fn socket_label(err: &WsError) -> String {
    match err {
        WsError::Io(e) => format!("socket {:?}", e.kind()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".into(),
        e => e.to_string(),
    }
}

pub(super) fn note_ended(how: &str) {
    why(|w| bump(&mut w.closes, how.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_why_line_is_compact() {
        let mut w = Why {
            resyncs: 2,
            resynced: 2,
            ..Why::default()
        };
        bump(&mut w.closes, "4000 heartbeat timeout".to_string());
        bump(&mut w.timeouts, "deliveries");
        bump(&mut w.timeouts, "deliveries");
        assert_eq!(
            w.line(),
            "2 resync (2 re-synced), 0 errors, 0 refused, 1 closes (4000 heartbeat timeout ×1), 2 timeouts (deliveries ×2)"
        );
    }
}
