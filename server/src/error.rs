//! HTTP errors: one `ApiError` that maps client faults to a 4xx status
//! with a JSON body (`{"error":{"code":…,"message":…}}`) and logs internal
//! faults without exposing them.

use crate::store::StoreError;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use natter_shared::ErrorCode;
use natter_shared::api::{ErrorBody, ErrorDetail};
use std::time::Duration;

/// An HTTP API error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The caller's fault, with the status and code to answer.
    #[error("{message}")]
    Client {
        status: StatusCode,
        code: ErrorCode,
        message: String,
    },
    /// Over a rate limit: 429 with `Retry-After`.
    #[error("{message}")]
    TooMany { wait: Duration, message: String },
    /// From the store: domain answers map to 4xx, the rest to 500.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The file store failed: 500, logged.
    #[error(transparent)]
    Files(#[from] crate::files::FilesError),
}

impl ApiError {
    /// A 400 `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, ErrorCode::InvalidInput, message)
    }

    /// A 429 `too_many_requests`: try again after `wait`.
    pub fn too_many(wait: Duration, message: impl Into<String>) -> Self {
        ApiError::TooMany {
            wait,
            message: message.into(),
        }
    }

    /// Any client error.
    pub fn client(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError::Client {
            status,
            code,
            message: message.into(),
        }
    }
}

/// Maps a store error to the status, code and message a client sees.
pub fn store_error_parts(err: &StoreError) -> (StatusCode, ErrorCode, String) {
    match err {
        StoreError::RoomNotFound => (
            StatusCode::NOT_FOUND,
            ErrorCode::RoomNotFound,
            "no such room in this site".into(),
        ),
        StoreError::NotMember => (
            StatusCode::FORBIDDEN,
            ErrorCode::NotMember,
            "the user is not a member of this room".into(),
        ),
        StoreError::Muted(until) => (
            StatusCode::FORBIDDEN,
            ErrorCode::Muted,
            format!(
                "muted in this room until {}",
                crate::webhooks::rfc3339(*until)
            ),
        ),
        StoreError::Conflict => (
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "it already exists".into(),
        ),
        StoreError::NotFound => (
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "not found".into(),
        ),
        StoreError::Invalid(msg) => (
            StatusCode::BAD_REQUEST,
            ErrorCode::InvalidInput,
            msg.clone(),
        ),
        StoreError::FileTaken(_) | StoreError::FileGone(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::FileInvalid,
            err.to_string(),
        ),
        StoreError::Closed => (
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ShuttingDown,
            "the server is shutting down".into(),
        ),
        StoreError::Db(_)
        | StoreError::Sqlite(_)
        | StoreError::Migrate(_)
        | StoreError::Corrupt(_)
        | StoreError::UnsupportedUrl(_) => {
            tracing::error!(error = %err, "store failure");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error; it has been logged".into(),
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut retry_after = None;
        let (status, code, message) = match self {
            ApiError::TooMany { wait, message } => {
                retry_after = Some(wait);
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    ErrorCode::TooManyRequests,
                    message,
                )
            }
            ApiError::Client {
                status,
                code,
                message,
            } => (status, code, message),
            ApiError::Store(err) => store_error_parts(&err),
            ApiError::Files(err) => {
                tracing::error!(error = %err, "file store failure");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    "internal error; it has been logged".into(),
                )
            }
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message,
                retry_after_ms: retry_after
                    .map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX)),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if let Some(wait) = retry_after {
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        response
    }
}

/// The longest body of one of axum's own refusals that is carried over
/// into the JSON error (they are a line of text).
const REFUSAL_TEXT_BYTES: usize = 4096;

/// Makes every client error of the routes it wraps a JSON error: the
/// refusals axum makes itself before a handler runs (a path that is not
/// valid UTF-8, a query field given twice, a method the route does not
/// take) come as plain text or with no body at all. Their status and
/// headers (`Allow`, say) stay.
pub async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, REFUSAL_TEXT_BYTES)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let code = match status {
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
        StatusCode::TOO_MANY_REQUESTS => ErrorCode::TooManyRequests,
        _ => ErrorCode::InvalidInput,
    };
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase()
    } else {
        text
    };
    let mut out = ApiError::client(status, code, message).into_response();
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}
