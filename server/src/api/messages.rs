//! A room's messages through the HTTP API: posted as a member or as the
//! system, read back page by page, and deleted for everyone.

use super::{ApiJson, ApiSite, MAX_HISTORY_LIMIT, audit, ensure_room, parse_room};
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::writer::WriteOp;
use crate::store::{AttachError, PageFrom, Site};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use natter_shared::api::{ErrorBody, EventPage, PostMessage};
use natter_shared::text::Body;
use natter_shared::{Attachment, ClientId, ErrorCode, Event, FileId, RoomId, Seq, UserId};
use serde::Deserialize;

/// `DELETE /rooms/{room}/messages/{seq}`: deletes a message for everyone.
/// Its row keeps only its sender and time, a `message_deleted` tombstone
/// goes to the room (and to every client's cache through it), and its files
/// are deleted. Answers the tombstone; a message deleted before answers
/// as it stands (`deleted`); any other event, or none, is 404.
#[utoipa::path(delete, path = "/rooms/{room}/messages/{seq}", tag = "messages", params(("room" = String, Path, description = "Room id"), ("seq" = u64, Path, description = "The message's seq")), responses((status = 200, description = "The message_deleted tombstone (again: the deleted message)", body = Event), (status = 404, description = "No such room or message", body = ErrorBody)))]
pub(super) async fn delete_message(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path((room, seq)): Path<(String, String)>,
) -> Result<Json<Event>, ApiError> {
    let room = parse_room(room)?;
    let seq: Seq = seq
        .parse()
        .ok()
        .filter(|&seq| seq > 0)
        .ok_or_else(|| ApiError::invalid("the seq is a whole number from 1"))?;
    let written =
        crate::moderation::delete_message(&state, &site.id, &room, seq, audit::API_ACTOR).await?;
    Ok(Json(written.event))
}

#[utoipa::path(post, path = "/rooms/{room}/messages", tag = "messages", params(("room" = String, Path, description = "Room id")), request_body = PostMessage, responses((status = 201, description = "The stored message", body = Event), (status = 200, description = "The message stored before under this client_id", body = Event), (status = 403, description = "`from` is not a member", body = ErrorBody), (status = 404, description = "No such room", body = ErrorBody), (status = 422, description = "A file that cannot be posted", body = ErrorBody)))]
pub(super) async fn post_message(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(room): Path<String>,
    ApiJson(req): ApiJson<PostMessage>,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    let room = parse_room(room)?;
    let max = state.config.limits.max_body_bytes;
    let parsed = if req.files.is_empty() {
        Body::parse(req.body, max)
    } else {
        Body::caption(req.body, max)
    };
    let body = parsed.map_err(|e| {
        ApiError::client(
            StatusCode::BAD_REQUEST,
            ErrorCode::BodyInvalid,
            e.to_string(),
        )
    })?;
    if let Some(from) = &req.from
        && state.store.is_banned(&site.id, from).await?
    {
        return Err(ApiError::client(
            StatusCode::FORBIDDEN,
            ErrorCode::Banned,
            "the site has banned this user",
        ));
    }
    // A post without a client id gets one here: should its commit go
    // unanswered (the database link cut during it), the writer's retry
    // then finds it stored instead of storing it twice.
    let made_here = req.client_id.is_none();
    let client_id = req
        .client_id
        .unwrap_or_else(|| ClientId::from_uuid(uuid::Uuid::now_v7()));
    let files = attach(
        &state,
        &site,
        &room,
        req.from.as_ref(),
        &client_id,
        &req.files,
    )
    .await?;
    let op = WriteOp::Message {
        site: site.id.clone(),
        room,
        sender: req.from,
        client_id: Some(client_id),
        body,
        files,
    };
    // A repeat is published again by the writer: its first attempt may
    // have committed yet failed, and so never been published.
    let written = state.writer.write(op).await?;
    let status = if written.duplicate && !made_here {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(written.event)))
}

/// The attachments of a post: files uploaded for its sender (see
/// [`crate::store::Store::attach_files`]).
async fn attach(
    state: &AppState,
    site: &Site,
    room: &RoomId,
    from: Option<&UserId>,
    client_id: &ClientId,
    ids: &[FileId],
) -> Result<Vec<Attachment>, ApiError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let Some(from) = from else {
        return Err(ApiError::invalid(
            "a message with files needs `from`: the user the files were uploaded for",
        ));
    };
    ensure_room(state, site, room).await?;
    let max = state.config.files.max_files_per_message;
    state
        .store
        .attach_files(&site.id, from, room, Some(client_id), ids, max)
        .await
        .map_err(|err| match err {
            AttachError::TooMany(_) | AttachError::Repeated(_) => {
                ApiError::invalid(err.to_string())
            }
            AttachError::Store(err) => err.into(),
            other => ApiError::client(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::FileInvalid,
                other.to_string(),
            ),
        })
}

/// `?before=` or `?after=` (exclusive), and `?limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryQuery {
    before: Option<Seq>,
    after: Option<Seq>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/rooms/{room}/messages", tag = "messages", params(("room" = String, Path, description = "Room id"), ("before" = Option<u64>, Query, description = "Events before this seq (the latest unless given)"), ("after" = Option<u64>, Query, description = "Events after this seq"), ("limit" = Option<u32>, Query, description = "1 to 1000")), responses((status = 200, description = "Events, ascending", body = EventPage), (status = 404, description = "No such room", body = ErrorBody)))]
pub(super) async fn history(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(room): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let room = parse_room(room)?;
    let Query(q) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = q
        .limit
        .unwrap_or_else(|| state.config.limits.page_size.clamp(1, MAX_HISTORY_LIMIT));
    if limit == 0 || limit > MAX_HISTORY_LIMIT {
        return Err(ApiError::invalid(format!(
            "limit must be 1..={MAX_HISTORY_LIMIT}"
        )));
    }
    ensure_room(&state, &site, &room).await?;
    let from = match (q.before, q.after) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("give before or after, not both")),
        (None, Some(after)) => PageFrom::After(after),
        (before, None) => PageFrom::Before(before.unwrap_or(Seq::MAX)),
    };
    let page = state.store.events_page(&room, from, limit).await?;
    Ok(Json(page))
}
