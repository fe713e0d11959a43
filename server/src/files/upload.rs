//! Uploads, as tus 1.0 describes them (core, creation, termination,
//! expiration): `POST /files` announces a file and its length, `PATCH`
//! sends bytes from the offset the server holds, `HEAD` tells that
//! offset (after a cut, to continue from it), `DELETE` cancels.

use super::auth::Caller;
use super::{Files, finish};
use crate::error::ApiError;
use crate::metrics::add;
use crate::state::AppState;
use crate::store::{new_id, now_ms};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use natter_shared::{ErrorCode, FileId};
use object_store::{ObjectStoreExt, PutPayload};

/// The protocol version spoken.
pub const TUS_VERSION: &str = "1.0.0";
/// Bytes gathered before they are stored as one part.
pub const PART_BYTES: usize = 1024 * 1024;
/// Longest file name kept, in bytes.
pub const MAX_NAME_BYTES: usize = 255;

fn tus(mut res: Response) -> Response {
    res.headers_mut()
        .insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// 412 unless the client speaks this version of the protocol.
fn check_version(headers: &HeaderMap) -> Result<(), Box<Response>> {
    match headers.get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some(TUS_VERSION) => Ok(()),
        _ => {
            let mut res = ApiError::client(
                StatusCode::PRECONDITION_FAILED,
                ErrorCode::InvalidInput,
                "send Tus-Resumable: 1.0.0",
            )
            .into_response();
            res.headers_mut()
                .insert("tus-version", HeaderValue::from_static(TUS_VERSION));
            Err(Box::new(tus(res)))
        }
    }
}

/// `OPTIONS /files`: what this server supports.
pub async fn options(State(state): State<AppState>) -> Response {
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    h.insert(
        "tus-extension",
        HeaderValue::from_static("creation,termination,expiration"),
    );
    h.insert(
        "tus-max-size",
        HeaderValue::from(state.config.files.max_file_bytes),
    );
    tus(res)
}

/// A file name as kept: the last path segment, control characters
/// dropped, at most [`MAX_NAME_BYTES`] (on a character boundary).
pub fn clean_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut name: String = last.chars().filter(|c| !c.is_control()).collect();
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed == "." || trimmed == ".." {
        return "file".into();
    }
    name = trimmed.to_string();
    if name.len() > MAX_NAME_BYTES {
        let mut end = MAX_NAME_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
    name
}

/// The `filename` of tus's `Upload-Metadata` (`key base64,key base64`).
fn metadata_name(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(meta) = headers.get("upload-metadata") else {
        return Ok("file".into());
    };
    let meta = meta
        .to_str()
        .map_err(|_| ApiError::invalid("Upload-Metadata is not ASCII"))?;
    for pair in meta.split(',') {
        let mut it = pair.trim().splitn(2, ' ');
        if it.next() == Some("filename") {
            let raw = STANDARD
                .decode(it.next().unwrap_or_default().trim())
                .map_err(|_| ApiError::invalid("the filename in Upload-Metadata is not base64"))?;
            let text = String::from_utf8(raw)
                .map_err(|_| ApiError::invalid("the filename is not UTF-8"))?;
            return Ok(clean_name(&text));
        }
    }
    Ok("file".into())
}

/// `POST /files`: announces an upload of `Upload-Length` bytes.
pub async fn create(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(res) = check_version(&headers) {
        return *res;
    }
    tus(match create_upload(&state, &headers).await {
        Ok(res) => res,
        Err(err) => err.into_response(),
    })
}

async fn create_upload(state: &AppState, headers: &HeaderMap) -> Result<Response, ApiError> {
    let caller = Caller::from_headers(state, headers).await?;
    let user = caller.acting_user(headers)?;
    let limits = &state.config.files;
    let length = header_u64(headers, "upload-length").ok_or_else(|| {
        ApiError::invalid(
            "send Upload-Length: the file's size in bytes (deferred length is not supported)",
        )
    })?;
    if length == 0 {
        return Err(ApiError::invalid("the file is empty"));
    }
    if length > limits.max_file_bytes {
        return Err(ApiError::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::FileTooLarge,
            format!(
                "the file has {length} bytes; at most {} are taken",
                limits.max_file_bytes
            ),
        ));
    }
    let name = metadata_name(headers)?;
    let site = caller.site();
    let now = now_ms();
    let day_ago = now - 24 * 3600 * 1000;
    let used = state
        .store
        .upload_bytes_since(&site.id, &user, day_ago)
        .await?;
    if used.saturating_add(length) > limits.max_upload_bytes_per_day {
        return Err(ApiError::client(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::QuotaExceeded,
            format!(
                "{used} of the {} bytes a user may upload in 24 hours are used",
                limits.max_upload_bytes_per_day
            ),
        ));
    }
    let id: FileId = new_id::<FileId, _>("f")?;
    state
        .store
        .create_upload(&id, &site.id, &user, &name, length, now)
        .await?;
    add(&state.metrics.uploads_started, 1);
    let mut res = StatusCode::CREATED.into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("/files/{id}")) {
        h.insert(header::LOCATION, v);
    }
    h.insert("upload-offset", HeaderValue::from(0u64));
    if let Ok(v) = HeaderValue::from_str(&expires(state, now)) {
        h.insert("upload-expires", v);
    }
    Ok(res)
}

/// When an upload untouched since `updated_ms` is swept, as an HTTP date.
fn expires(state: &AppState, updated_ms: i64) -> String {
    let at = std::time::UNIX_EPOCH
        + std::time::Duration::from_millis(u64::try_from(updated_ms).unwrap_or(0))
        + std::time::Duration::from_secs(state.config.files.upload_expiry_secs);
    httpdate::fmt_http_date(at)
}

/// The upload `id` of this caller (404 for anyone else's: the answer
/// does not tell whether it exists).
async fn own_upload(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
) -> Result<crate::store::FileRow, ApiError> {
    let caller = Caller::from_headers(state, headers).await?;
    let user = caller.acting_user(headers)?;
    let not_found =
        || ApiError::client(StatusCode::NOT_FOUND, ErrorCode::NotFound, "no such upload");
    let id = FileId::parse(id).map_err(|_| not_found())?;
    match state.store.file(&id).await? {
        Some(f) if f.site == caller.site().id && f.user == user => Ok(f),
        _ => Err(not_found()),
    }
}

/// `HEAD /files/ID`: how many bytes the server holds.
pub async fn head(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(res) = check_version(&headers) {
        return *res;
    }
    let file = match own_upload(&state, &headers, &id).await {
        Ok(f) => f,
        // HEAD answers carry no body: the status says it.
        Err(err) => return tus(err.into_response().status().into_response()),
    };
    let mut res = StatusCode::OK.into_response();
    let h = res.headers_mut();
    h.insert("upload-offset", HeaderValue::from(file.received));
    h.insert("upload-length", HeaderValue::from(file.length));
    if file.completed_at.is_none()
        && let Ok(v) = HeaderValue::from_str(&expires(&state, file.created_at.max(0)))
    {
        h.insert("upload-expires", v);
    }
    tus(res)
}

/// `PATCH /files/ID`: bytes from `Upload-Offset` on. Stored in parts as
/// they arrive; when the last byte is in, the file is finished.
pub async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(res) = check_version(&headers) {
        return *res;
    }
    tus(match receive(&state, &id, &headers, body).await {
        Ok(res) => res,
        Err(err) => err.into_response(),
    })
}

async fn receive(
    state: &AppState,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type != Some("application/offset+octet-stream") {
        return Err(ApiError::client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::InvalidInput,
            "send Content-Type: application/offset+octet-stream",
        ));
    }
    let file = own_upload(state, headers, id).await?;
    let offset = header_u64(headers, "upload-offset")
        .ok_or_else(|| ApiError::invalid("send Upload-Offset"))?;
    if file.completed_at.is_some() || offset != file.received {
        return Err(ApiError::client(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            format!(
                "the server holds {} bytes of this upload; continue from there",
                file.received
            ),
        ));
    }
    let files = &state.files;
    let mut at = offset;
    let mut buf = BytesMut::new();
    let mut body = body.into_data_stream();
    loop {
        let chunk: Option<Result<Bytes, _>> = futures_util::StreamExt::next(&mut body).await;
        match chunk {
            Some(Ok(data)) => {
                let total = at + buf.len() as u64 + data.len() as u64;
                if total > file.length {
                    // Keep what fits nothing of: the upload stays where it was.
                    return Err(ApiError::client(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        ErrorCode::FileTooLarge,
                        format!("more bytes than the {} announced", file.length),
                    ));
                }
                add(&state.metrics.upload_bytes_received, data.len() as u64);
                buf.extend_from_slice(&data);
                if buf.len() >= PART_BYTES {
                    at = store_part(state, files, &file.id, at, buf.split().freeze()).await?;
                }
            }
            None => break,
            Some(Err(_)) => {
                // Cut off: keep what arrived, so the client continues from it.
                if !buf.is_empty() {
                    store_part(state, files, &file.id, at, buf.split().freeze()).await?;
                }
                return Err(ApiError::invalid("the request body was cut off"));
            }
        }
    }
    if !buf.is_empty() {
        at = store_part(state, files, &file.id, at, buf.freeze()).await?;
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    if at == file.length {
        let done = finish::finish(state, &file).await?;
        if let Ok(v) = HeaderValue::from_str(&done.mime) {
            res.headers_mut().insert("x-natter-file-type", v);
        }
    }
    res.headers_mut()
        .insert("upload-offset", HeaderValue::from(at));
    Ok(res)
}

/// Stores `bytes` as the part at `start`, then moves the upload's offset
/// past it; returns the new offset. 409 when another request moved it.
async fn store_part(
    state: &AppState,
    files: &Files,
    id: &FileId,
    start: u64,
    bytes: Bytes,
) -> Result<u64, ApiError> {
    let end = start + bytes.len() as u64;
    files
        .store
        .put(&Files::part(id, start, end), PutPayload::from(bytes))
        .await
        .map_err(|e| internal(&e))?;
    if !state.store.advance_upload(id, start, end, now_ms()).await? {
        return Err(ApiError::client(
            StatusCode::CONFLICT,
            ErrorCode::Conflict,
            "another request moved this upload meanwhile; ask HEAD where it stands",
        ));
    }
    Ok(end)
}

/// `DELETE /files/ID`: cancels an upload (or deletes one's own file not
/// yet posted in a message).
pub async fn terminate(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(res) = check_version(&headers) {
        return *res;
    }
    let result = async {
        let file = own_upload(&state, &headers, &id).await?;
        // The row goes first, and only while no message holds the file:
        // a send storing it meanwhile keeps it, bytes and all.
        if !state.store.delete_free_file(&file.id).await? {
            if state.store.file(&file.id).await?.is_none() {
                // Deleted by another request meanwhile.
                return Err(crate::store::StoreError::NotFound.into());
            }
            return Err(ApiError::client(
                StatusCode::CONFLICT,
                ErrorCode::Conflict,
                "the file is in a message",
            ));
        }
        state.files.remove(&file.id).await;
        Ok::<_, ApiError>(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    tus(result.unwrap_or_else(IntoResponse::into_response))
}

/// A file store failure: logged, answered as 500 `internal`.
pub(super) fn internal(err: &dyn std::fmt::Display) -> ApiError {
    ApiError::Files(super::FilesError::Other(err.to_string()))
}
