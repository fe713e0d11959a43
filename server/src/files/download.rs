//! Downloads: a file (or its thumbnail) for its uploader, the members of
//! the room it was posted in, the site's backend, or whoever holds a
//! signed link that has not expired. Served so that no file can run
//! script on the chat's origin: `nosniff`, `Content-Security-Policy:
//! sandbox`, and `Content-Disposition: attachment` for every type that is
//! not an image, audio or video. One byte range per request (206).

use super::auth::Caller;
use super::links::{self, LinkError, Variant};
use super::range::{Wanted, wanted};
use super::upload::internal;
use super::{Files, kinds};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::{FileRow, now_ms};
use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use natter_shared::{ErrorCode, FileId};
use object_store::{GetOptions, GetRange, ObjectStore};
use serde::{Deserialize, Serialize};

/// A signed link's query.
#[derive(Debug, Deserialize)]
pub struct LinkQuery {
    exp: Option<i64>,
    sig: Option<String>,
}

/// `GET /files/ID`.
pub async fn original(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(link): Query<LinkQuery>,
    headers: HeaderMap,
) -> Response {
    serve(&state, &id, Variant::Original, &link, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

/// `GET /files/ID/thumb`: the thumbnail, or the image itself until the
/// thumbnail is made.
pub async fn thumb(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(link): Query<LinkQuery>,
    headers: HeaderMap,
) -> Response {
    serve(&state, &id, Variant::Thumb, &link, &headers)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

fn not_found() -> ApiError {
    ApiError::client(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such file")
}

/// The stored file `id`, if the caller may read it.
async fn readable(
    state: &AppState,
    id: &str,
    variant: Variant,
    link: &LinkQuery,
    headers: &HeaderMap,
) -> Result<FileRow, ApiError> {
    let id = FileId::parse(id).map_err(|_| not_found())?;
    let file = state.store.file(&id).await?;
    let Some(file) = file.filter(|f| f.completed_at.is_some()) else {
        return Err(not_found());
    };
    if let (Some(exp), Some(sig)) = (link.exp, link.sig.as_deref()) {
        let Some(site) = state.store.site(&file.site).await? else {
            return Err(not_found());
        };
        let now = now_ms() / 1000;
        return match links::verify(&site.token_secret, &file.id, variant, exp, sig, now) {
            Ok(()) => Ok(file),
            Err(err @ LinkError::Expired) => Err(ApiError::client(
                StatusCode::FORBIDDEN,
                ErrorCode::LinkExpired,
                err.to_string(),
            )),
            Err(err) => Err(ApiError::client(
                StatusCode::FORBIDDEN,
                ErrorCode::LinkInvalid,
                err.to_string(),
            )),
        };
    }
    let caller = Caller::from_headers(state, headers).await?;
    let forbidden = || {
        ApiError::client(
            StatusCode::FORBIDDEN,
            ErrorCode::NotMember,
            "only members of the room the file was posted in may read it",
        )
    };
    if caller.site().id != file.site {
        return Err(forbidden());
    }
    match &caller {
        Caller::Backend { .. } => Ok(file),
        Caller::User { user, .. } if *user == file.user => Ok(file),
        Caller::User { site, user } => match &file.room {
            Some(room) if state.store.is_member(&site.id, room, user).await? => Ok(file),
            _ => Err(forbidden()),
        },
    }
}

async fn serve(
    state: &AppState,
    id: &str,
    variant: Variant,
    link: &LinkQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let file = readable(state, id, variant, link, headers).await?;
    let files = &state.files;
    let mime = file
        .mime
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    // The original's size is the row's (set when it was stored); a
    // thumbnail's comes with its first bytes, which also tell its type
    // (PNG for images with transparency, JPEG otherwise).
    let (key, mime, size) = match variant {
        Variant::Thumb if !file.thumb => return Err(not_found()),
        Variant::Thumb => {
            let thumb = Files::thumb(&file.id);
            let first = GetOptions::new().with_range(Some(0..8));
            match files.store.get_opts(&thumb, first).await {
                Ok(got) => {
                    let size = got.meta.size;
                    let head = got.bytes().await.map_err(|e| internal(&e))?;
                    (thumb, kinds::sniff(&head), size)
                }
                Err(object_store::Error::NotFound { .. }) => {
                    (Files::original(&file.id), mime, file.length)
                }
                Err(e) => return Err(internal(&e)),
            }
        }
        Variant::Original => (Files::original(&file.id), mime, file.length),
    };
    let range_header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let (status, range) = match wanted(range_header, size) {
        Wanted::Whole => (StatusCode::OK, 0..size),
        Wanted::Part(r) => (StatusCode::PARTIAL_CONTENT, r),
        Wanted::Unsatisfiable => {
            let mut res = ApiError::client(
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::InvalidInput,
                format!("the file has {size} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(res);
        }
    };
    let body = if range.is_empty() {
        Body::empty()
    } else {
        let got = files
            .store
            .get_opts(
                &key,
                GetOptions {
                    range: Some(GetRange::Bounded(range.clone())),
                    ..GetOptions::default()
                },
            )
            .await
            .map_err(|e| internal(&e))?;
        Body::from_stream(got.into_stream())
    };
    let mut res = Response::new(body);
    *res.status_mut() = status;
    let h = res.headers_mut();
    let set = |h: &mut HeaderMap, name: header::HeaderName, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
    };
    set(h, header::CONTENT_TYPE, &mime);
    set(
        h,
        header::CONTENT_LENGTH,
        &(range.end - range.start).to_string(),
    );
    set(h, header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            h,
            header::CONTENT_RANGE,
            &format!(
                "bytes {}-{}/{size}",
                range.start,
                range.end.saturating_sub(1)
            ),
        );
    }
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::CONTENT_SECURITY_POLICY, "sandbox");
    set(
        h,
        header::CONTENT_DISPOSITION,
        &disposition(&file.name, &mime),
    );
    set(h, header::CACHE_CONTROL, "private, max-age=3600");
    set(
        h,
        header::HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    Ok(res)
}

/// `inline` for images, audio and video, `attachment` for the rest, with
/// the name percent-encoded (RFC 6266, RFC 8187) and an ASCII fallback.
pub fn disposition(name: &str, mime: &str) -> String {
    let kind = if kinds::inline(mime) {
        "inline"
    } else {
        "attachment"
    };
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .-_()[]".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(char::from(b));
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Signed links to a file, for `<img>`, `<audio>` and download links.
#[derive(Debug, Serialize)]
pub struct Links {
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb: Option<String>,
    /// Unix seconds.
    pub expires_at: i64,
}

/// `POST /files/ID/links`: signed links for a reader of the file.
pub async fn links(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Links>, ApiError> {
    let none = LinkQuery {
        exp: None,
        sig: None,
    };
    let file = readable(&state, &id, Variant::Original, &none, &headers).await?;
    let Some(site) = state.store.site(&file.site).await? else {
        return Err(not_found());
    };
    let exp =
        now_ms() / 1000 + i64::try_from(state.config.files.file_link_secs).unwrap_or(i64::MAX / 2);
    let url = |variant, path: &str| {
        let sig = links::sign(&site.token_secret, &file.id, variant, exp);
        format!("/files/{}{path}?exp={exp}&sig={sig}", file.id)
    };
    Ok(Json(Links {
        url: url(Variant::Original, ""),
        thumb: file.thumb.then(|| url(Variant::Thumb, "/thumb")),
        expires_at: exp,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_safely_and_only_inert_types_inline() {
        assert_eq!(
            disposition("a\"b.html", "text/html"),
            "attachment; filename=\"a_b.html\"; filename*=UTF-8''a%22b.html"
        );
        assert_eq!(
            disposition("Foto ü.jpg", "image/jpeg"),
            "inline; filename=\"Foto _.jpg\"; filename*=UTF-8''Foto%20%C3%BC.jpg"
        );
    }
}
