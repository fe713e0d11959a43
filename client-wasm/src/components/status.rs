//! The connection line at the top of the widget.

use crate::net::LinkState;
use leptos::prelude::*;

/// The connection as the user sees it: the link's state and, once the
/// socket is open, whether catch-up has finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    WaitingForToken,
    Connecting,
    Syncing,
    Online,
    Offline {
        retry_secs: u32,
    },
    Refused {
        reason: String,
    },
    /// Another tab of this browser holds the connection (live or not, as
    /// it last said; `None` until it says); this one shows what it stores.
    Follower {
        live: Option<bool>,
    },
}

impl Status {
    /// Combines the link's state with the chat's `live` flag.
    pub fn new(link: &LinkState, live: bool) -> Self {
        match link {
            LinkState::WaitingForToken => Status::WaitingForToken,
            LinkState::Connecting => Status::Connecting,
            LinkState::Open if live => Status::Online,
            LinkState::Open => Status::Syncing,
            LinkState::Offline { retry_ms } => Status::Offline {
                retry_secs: retry_ms.div_ceil(1000),
            },
            LinkState::Refused { reason } => Status::Refused {
                reason: reason.clone(),
            },
        }
    }

    /// What the status line says.
    pub fn label(&self) -> String {
        match self {
            Status::WaitingForToken => "Waiting for sign-in…".into(),
            Status::Connecting => "Connecting…".into(),
            Status::Syncing => "Syncing…".into(),
            Status::Online => "Online".into(),
            Status::Offline { retry_secs: 0 } => "Offline".into(),
            Status::Offline { retry_secs } => format!("Offline, retrying in {retry_secs} s"),
            Status::Follower { live: Some(true) } => "Online (through another tab)".into(),
            Status::Follower { live: Some(false) } => "Offline (through another tab)".into(),
            Status::Follower { live: None } => "Connecting (through another tab)…".into(),
            Status::Refused { reason } => format!("Sign-in refused ({reason})"),
        }
    }

    /// The CSS class that colours the line.
    fn tone(&self) -> &'static str {
        match self {
            Status::Online | Status::Follower { live: Some(true) } => "status ok",
            Status::Offline { .. }
            | Status::Refused { .. }
            | Status::Follower { live: Some(false) } => "status bad",
            _ => "status wait",
        }
    }
}

/// The connection state, and the server's last general error if any.
#[component]
pub fn ConnectionStatus(
    #[prop(into)] status: Signal<Status>,
    #[prop(into)] notice: Signal<Option<String>>,
) -> impl IntoView {
    view! {
        <div class=move || status.with(Status::tone) role="status">
            {move || status.with(Status::label)}
        </div>
        {move || notice.get().map(|n| view! { <p class="notice" role="alert">{n}</p> })}
    }
}
