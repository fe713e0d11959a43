//! Webhooks: what a site's backend is told, signed as the Standard
//! Webhooks specification says (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`), and the HTTP API bodies that set them up.

use crate::api::Report;
use crate::ids::{RoomId, SiteId};
use crate::protocol::{Event, EventKind, RoomInfo};
use serde::{Deserialize, Serialize};

/// What a webhook may be sent for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum WebhookType {
    /// A message was posted.
    #[serde(rename = "message.created")]
    MessageCreated,
    /// A message was deleted (its tombstone event).
    #[serde(rename = "message.deleted")]
    MessageDeleted,
    /// Someone became a member of a group room.
    #[serde(rename = "member.joined")]
    MemberJoined,
    /// Someone stopped being a member of a group room.
    #[serde(rename = "member.left")]
    MemberLeft,
    /// A group room was created, or a dialog opened for the first time.
    #[serde(rename = "room.created")]
    RoomCreated,
    /// A member reported someone else's message.
    #[serde(rename = "message.reported")]
    MessageReported,
}

impl WebhookType {
    /// Every type, in a fixed order.
    pub const ALL: [WebhookType; 6] = [
        WebhookType::MessageCreated,
        WebhookType::MessageDeleted,
        WebhookType::MemberJoined,
        WebhookType::MemberLeft,
        WebhookType::RoomCreated,
        WebhookType::MessageReported,
    ];

    /// The type's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            WebhookType::MessageCreated => "message.created",
            WebhookType::MessageDeleted => "message.deleted",
            WebhookType::MemberJoined => "member.joined",
            WebhookType::MemberLeft => "member.left",
            WebhookType::RoomCreated => "room.created",
            WebhookType::MessageReported => "message.reported",
        }
    }

    /// The type's bit in a set of types.
    pub fn bit(self) -> i64 {
        1 << (self as u8)
    }

    /// The type whose bit this is.
    pub fn from_bit(bit: i64) -> Option<WebhookType> {
        Self::ALL.into_iter().find(|t| t.bit() == bit)
    }

    /// The types of a set of bits.
    pub fn from_mask(mask: i64) -> Vec<WebhookType> {
        Self::ALL
            .into_iter()
            .filter(|t| mask & t.bit() != 0)
            .collect()
    }

    /// The bits of a set of types.
    pub fn mask(types: &[WebhookType]) -> i64 {
        types.iter().fold(0, |mask, t| mask | t.bit())
    }

    /// The type a new event is sent as, if any (what is left of a deleted
    /// message is never new).
    pub fn of_event(kind: &EventKind) -> Option<WebhookType> {
        match kind {
            EventKind::Message { .. } => Some(WebhookType::MessageCreated),
            EventKind::MessageDeleted { .. } => Some(WebhookType::MessageDeleted),
            EventKind::MemberJoined { .. } => Some(WebhookType::MemberJoined),
            EventKind::MemberLeft { .. } => Some(WebhookType::MemberLeft),
            EventKind::Deleted { .. } => None,
        }
    }
}

/// The body of every webhook request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPayload {
    #[serde(rename = "type")]
    pub kind: WebhookType,
    /// When the event happened, RFC 3339 in UTC.
    pub timestamp: String,
    pub data: WebhookData,
}

/// What a webhook is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum WebhookData {
    /// `message.reported`: the report, and the message as it is now.
    /// (First: untagged, the `Event` shape would also take it.)
    Report {
        site: SiteId,
        room: RoomId,
        report: Report,
        event: Event,
    },
    /// `message.*` and `member.*`: the room's event, as clients receive it
    /// (a message deleted since it was posted comes as kind `deleted`).
    Event {
        site: SiteId,
        room: RoomId,
        event: Event,
    },
    /// `room.created`: the room with its first members.
    Room { site: SiteId, room: RoomInfo },
}

/// `POST /api/v1/webhooks`: a new endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// `https://…` (or `http://…`) where the site receives them.
    pub url: String,
    /// The types it wants; at least one.
    pub events: Vec<WebhookType>,
}

/// `PATCH /api/v1/webhooks/{id}`: what changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<WebhookType>>,
}

/// Whether an endpoint is being delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum WebhookStatus {
    Active,
    /// It kept failing past the retry window: nothing is sent until it is
    /// resumed; what happened meanwhile waits for it.
    Paused,
}

/// An endpoint, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub events: Vec<WebhookType>,
    /// The signing secret (`whsec_…`), for the site's verifier.
    pub secret: String,
    pub status: WebhookStatus,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it was paused, if it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at: Option<i64>,
    /// Events waiting to be delivered.
    pub pending: u64,
}

/// `GET /api/v1/webhooks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
}

/// One delivery attempt, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookAttempt {
    /// The `webhook-id` it was sent with (the same on every retry).
    pub message_id: String,
    #[serde(rename = "type")]
    pub kind: WebhookType,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
    /// The HTTP status answered, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it failed, when no status says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub ok: bool,
    pub duration_ms: u64,
}

/// `GET /api/v1/webhooks/{id}/attempts`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookAttempts {
    pub attempts: Vec<WebhookAttempt>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_have_their_names_and_bits() {
        for t in WebhookType::ALL {
            let json = serde_json::to_string(&t).expect("serialises");
            assert_eq!(json, format!("\"{}\"", t.name()));
            assert_eq!(WebhookType::from_bit(t.bit()), Some(t));
        }
        let mask = WebhookType::mask(&[WebhookType::MemberLeft, WebhookType::MessageCreated]);
        assert_eq!(
            WebhookType::from_mask(mask),
            vec![WebhookType::MessageCreated, WebhookType::MemberLeft]
        );
        assert!(serde_json::from_str::<WebhookType>("\"message.flagged\"").is_err());
    }
}
