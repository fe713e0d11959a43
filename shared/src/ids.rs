//! Typed identifiers. Every identifier is a string on the wire; each type
//! checks its shape once, when it is parsed, and is trusted afterwards.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A room's sequence number. Every event in a room gets the room's next one,
/// starting at 1; a cursor of 0 means "nothing seen yet".
pub type Seq = u64;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} is empty")]
    Empty { kind: &'static str },
    #[error("{kind} is longer than {max} bytes")]
    TooLong { kind: &'static str, max: usize },
    #[error("{kind} may only contain {allowed}")]
    BadChar {
        kind: &'static str,
        allowed: &'static str,
    },
    #[error("client id is not a UUID: {0}")]
    NotUuid(String),
}

/// Checks a token-like id: 1..=max bytes of `[A-Za-z0-9_.:@-]`.
fn check_token(kind: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > max {
        return Err(IdError::TooLong { kind, max });
    }
    let ok = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@'));
    if ok {
        Ok(())
    } else {
        Err(IdError::BadChar {
            kind,
            allowed: "letters, digits and _ - . : @",
        })
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
        pub struct $name(String);

        impl $name {
            /// The longest id accepted, in bytes.
            pub const MAX_LEN: usize = $max;

            /// Parses an id, refusing empty, overlong or oddly shaped ones.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                check_token($kind, &s, Self::MAX_LEN)?;
                Ok(Self(s))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

string_id!(
    /// A site: one website (tenant) served by the chat server.
    SiteId,
    "site id",
    64
);
string_id!(
    /// A room (a 1:1 dialog or a group), unique across all sites.
    RoomId,
    "room id",
    64
);
string_id!(
    /// A user, as the site's own backend names them. Unique within a site.
    UserId,
    "user id",
    128
);
string_id!(
    /// A file uploaded to be posted in a message (`f_…`).
    FileId,
    "file id",
    64
);

/// The id a client gives a message before sending it (a UUID, v7 by
/// convention so that ids sort by creation time). It makes retries
/// idempotent: the server stores one message per (room, sender, client id).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String))]
pub struct ClientId(uuid::Uuid);

impl ClientId {
    /// Parses a client id from its hyphenated UUID form.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| IdError::NotUuid(s.chars().take(64).collect()))
    }

    /// Wraps a UUID the caller generated.
    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    /// The UUID inside.
    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl TryFrom<String> for ClientId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::parse(&s)
    }
}

impl From<ClientId> for String {
    fn from(id: ClientId) -> String {
        id.0.hyphenated().to_string()
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.0.hyphenated())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_empty_long_and_odd_strings() {
        assert!(RoomId::parse("r_0191e6").is_ok());
        assert_eq!(RoomId::parse(""), Err(IdError::Empty { kind: "room id" }));
        assert!(matches!(
            UserId::parse("x".repeat(129)),
            Err(IdError::TooLong { .. })
        ));
        assert!(matches!(UserId::parse("a b"), Err(IdError::BadChar { .. })));
        assert!(UserId::parse("alice@example.com").is_ok());
    }

    #[test]
    fn ids_decode_through_serde_with_validation() {
        let ok: RoomId = serde_json::from_str("\"lobby\"").unwrap();
        assert_eq!(ok.as_str(), "lobby");
        assert!(serde_json::from_str::<RoomId>("\"<script>\"").is_err());
        let cid: ClientId =
            serde_json::from_str("\"0191e6b2-7c3a-7d4e-8f00-123456789abc\"").unwrap();
        assert_eq!(
            serde_json::to_string(&cid).unwrap(),
            "\"0191e6b2-7c3a-7d4e-8f00-123456789abc\""
        );
        assert!(serde_json::from_str::<ClientId>("\"nope\"").is_err());
    }
}
