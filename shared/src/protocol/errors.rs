//! The error codes of error frames and HTTP error bodies, and why a
//! client frame could not be decoded.

use serde::Serialize;

/// Declares [`ErrorCode`] from one list of variants and wire names, so the
/// serde names, [`ErrorCode::as_str`] and [`ErrorCode::ALL`] cannot drift
/// apart.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $name:literal,)*) => {
        /// Stable error codes, in error frames and in HTTP error bodies.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
        pub enum ErrorCode {
            $($(#[doc = $doc])* #[serde(rename = $name)] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code as it appears on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)*
                }
            }

            /// The code of a wire name: one loop over [`ErrorCode::ALL`]
            /// (no generated matcher per caller).
            pub fn parse(name: &str) -> Option<ErrorCode> {
                ErrorCode::ALL.iter().copied().find(|code| code.as_str() == name)
            }
        }
    };
}

error_codes! {
    /// The frame is not valid JSON or does not match any frame's shape.
    BadFrame => "bad_frame",
    /// The frame's `type` is not one this protocol knows.
    UnknownFrame => "unknown_frame",
    /// A frame other than `auth` arrived before authentication.
    Unauthenticated => "unauthenticated",
    /// The token is malformed or its signature is wrong.
    TokenInvalid => "token_invalid",
    /// The token's `alg` is not HS256 (`none` included).
    TokenAlgorithm => "token_algorithm",
    /// The token's `exp` has passed.
    TokenExpired => "token_expired",
    /// The token's `nbf` is still in the future.
    TokenNotYetValid => "token_not_yet_valid",
    /// The token was signed for another site.
    TokenWrongSite => "token_wrong_site",
    /// The request names a site that does not exist.
    UnknownSite => "unknown_site",
    /// The caller is not a member of the room (or it does not exist, or it
    /// belongs to another site: the answer is the same on purpose).
    NotMember => "not_member",
    /// The room does not exist in this site.
    RoomNotFound => "room_not_found",
    /// A field is missing, malformed or out of its limits.
    InvalidInput => "invalid_input",
    /// The message body is empty or longer than the limit.
    BodyInvalid => "body_invalid",
    /// Too many requests: over a rate limit (the error's `retry_after_ms`
    /// says when the request is taken), or the server is at its
    /// connection limit.
    TooManyRequests => "too_many_requests",
    /// The user (or the client's address) already holds as many
    /// connections as the server allows; the new one is closed.
    TooManyConnections => "too_many_connections",
    /// The API key is missing or wrong.
    Unauthorized => "unauthorized",
    /// Already exists (e.g. a member who is already in the room).
    Conflict => "conflict",
    /// Not found (HTTP API).
    NotFound => "not_found",
    /// Something failed on the server; it is logged there.
    Internal => "internal",
    /// The server is shutting down.
    ShuttingDown => "shutting_down",
    /// A file named in a message does not exist, is not the sender's, has
    /// not finished uploading, or does not decode as what it claims.
    FileInvalid => "file_invalid",
    /// A file is larger than the limit, or more bytes came than announced.
    FileTooLarge => "file_too_large",
    /// The file's type (sniffed from its bytes) is not on the site's list.
    FileTypeRefused => "file_type_refused",
    /// The user has uploaded as much as a day allows.
    QuotaExceeded => "quota_exceeded",
    /// A signed file link has expired.
    LinkExpired => "link_expired",
    /// A signed file link's signature is wrong.
    LinkInvalid => "link_invalid",
    /// The site banned this user: their connections close and their
    /// tokens no longer connect, until the ban is lifted.
    Banned => "banned",
    /// The site muted the user in this room for a while: they read it but
    /// cannot post in it until then (the message says until when).
    Muted => "muted",
}

/// Why a client frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl DecodeError {
    /// The error code to answer with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::UnknownType(_) => ErrorCode::UnknownFrame,
            DecodeError::Malformed(_) => ErrorCode::BadFrame,
        }
    }
}

/// The codes as an OpenAPI string enum of their wire names.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ErrorCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(ErrorCode::ALL.iter().map(|code| code.as_str())))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ErrorCode {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("ErrorCode")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_code_serialises_as_its_name_and_back() {
        let mut seen = std::collections::HashSet::new();
        for &code in ErrorCode::ALL {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().into()));
            assert_eq!(serde_json::from_value::<ErrorCode>(json).unwrap(), code);
            assert!(seen.insert(code.as_str()), "{} named twice", code.as_str());
        }
    }
}
