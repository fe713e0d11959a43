//! The HTTP API a site's backend calls, under `/api/v1`, authenticated by
//! the site's API key (`Authorization: Bearer …`). Every error is JSON with
//! a stable code (see [`crate::error`]).

mod audit;
mod hooks;
mod openapi;
mod people;
mod reports;
mod site;

use crate::error::ApiError;
use crate::gate::Rate;
use crate::state::AppState;
use crate::store::writer::WriteOp;
use crate::store::{AttachError, PageFrom, Site};
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use natter_shared::api::{
    AddMember, CreateRoom, ErrorBody, EventPage, FileTypes, MemberList, OpenDialog, PostMessage,
    RoomList,
};
use natter_shared::limits::{MAX_MEMBERS, MAX_NAME_BYTES, MAX_TITLE_BYTES, MEMBERS_PAGE};
use natter_shared::text::{Body, clean_label};
use natter_shared::{
    Attachment, ClientId, ErrorCode, Event, FileId, Member, RoomId, RoomInfo, Seq, UserId,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::HashSet;
use std::time::Duration;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The most events one history request may ask for.
pub const MAX_HISTORY_LIMIT: u32 = 1000;

/// The `/api/v1` routes, each registered with its OpenAPI description,
/// so the document cannot leave one out.
fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(create_room))
        .routes(routes!(open_dialog))
        .routes(routes!(get_room))
        .routes(routes!(add_member, members))
        .routes(routes!(remove_member))
        .routes(routes!(post_message, history))
        .routes(routes!(delete_message))
        .routes(routes!(people::set_read))
        .routes(routes!(people::mute, people::unmute))
        .routes(routes!(user_rooms))
        .routes(routes!(people::unread))
        .routes(routes!(people::ban, people::unban))
        .routes(routes!(people::get_settings, people::put_settings))
        .routes(routes!(get_file_types, put_file_types))
        .routes(routes!(hooks::create, hooks::list))
        .routes(routes!(hooks::get, hooks::change, hooks::remove))
        .routes(routes!(hooks::resume))
        .routes(routes!(hooks::attempts))
        .routes(routes!(reports::list))
        .routes(routes!(reports::dismiss))
        .routes(routes!(audit::list))
        .routes(routes!(site::get, site::change))
        .routes(routes!(site::rotate_secret))
        .routes(routes!(site::rotate_key))
}

/// The OpenAPI 3.1 document of the `/api/v1` routes.
pub fn document() -> utoipa::openapi::OpenApi {
    let (_, api) = routes().split_for_parts();
    openapi::finish(api)
}

/// The `/api/v1` routes, with their document at `/api/v1/openapi.json`.
pub fn router() -> Router<AppState> {
    let (router, api) = routes().split_for_parts();
    let json: std::sync::Arc<str> = openapi::finish(api)
        .to_json()
        .unwrap_or_else(|_| "{}".into())
        .into();
    router
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move {
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        json.to_string(),
                    )
                }
            }),
        )
        .fallback(|| async {
            ApiError::client(
                StatusCode::NOT_FOUND,
                ErrorCode::NotFound,
                "no such endpoint",
            )
        })
}

/// The site whose API key authenticated the request.
pub struct ApiSite(pub Site);

impl FromRequestParts<AppState> for ApiSite {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let unauthorized =
            |msg: &str| ApiError::client(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, msg);
        let key = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| unauthorized("send the site's API key as Authorization: Bearer KEY"))?;
        let Some(site) = state.store.site_by_api_key(key).await? else {
            return Err(unauthorized("unknown API key"));
        };
        if let Err(wait) = state.gate.take(Rate::Api, state.gate.key(&site.id)) {
            crate::metrics::inc(&state.metrics.throttled);
            return Err(ApiError::too_many(
                wait,
                "too many API calls from this site",
            ));
        }
        Ok(ApiSite(site))
    }
}

/// Bounds an API request in time, its body included: a client that
/// drips its body gets 408 and its connection closed.
pub async fn deadline(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = Duration::from_secs(state.config.guard.request_timeout_secs.max(1));
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let message = format!("the request took longer than {} s", limit.as_secs());
            let mut response = ApiError::client(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::InvalidInput,
                message,
            )
            .into_response();
            // The rest of the body is not read: the connection cannot be reused.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}

/// `Json` whose rejections are JSON errors too (413 for oversized bodies).
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let status = match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => StatusCode::PAYLOAD_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::client(status, ErrorCode::InvalidInput, rejection.body_text())
}

fn parse_room(room: String) -> Result<RoomId, ApiError> {
    RoomId::parse(room).map_err(|e| ApiError::invalid(e.to_string()))
}

fn parse_user(user: String) -> Result<UserId, ApiError> {
    UserId::parse(user).map_err(|e| ApiError::invalid(e.to_string()))
}

/// 404 `room_not_found` unless the room exists in the caller's site.
async fn ensure_room(state: &AppState, site: &Site, room: &RoomId) -> Result<(), ApiError> {
    if state.store.room_exists(&site.id, room).await? {
        Ok(())
    } else {
        Err(crate::store::StoreError::RoomNotFound.into())
    }
}

/// Checks a member's display name and keeps it cleaned ([`clean_label`]).
/// A read marker is not set here (see `people::set_read`).
fn check_member(m: &mut Member) -> Result<(), ApiError> {
    if m.read.is_some() {
        return Err(ApiError::invalid(
            "a member's read marker is set with PUT …/members/{user}/read",
        ));
    }
    if let Some(name) = &m.name {
        m.name = Some(
            clean_label("name", name, MAX_NAME_BYTES)
                .map_err(|e| ApiError::invalid(e.to_string()))?,
        );
    }
    Ok(())
}

#[utoipa::path(post, path = "/rooms", tag = "rooms", request_body = CreateRoom, responses((status = 201, description = "The new group room", body = RoomInfo), (status = 400, description = "A bad title or member list", body = ErrorBody)))]
async fn create_room(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    ApiJson(mut req): ApiJson<CreateRoom>,
) -> Result<(StatusCode, Json<RoomInfo>), ApiError> {
    req.title = clean_label("title", &req.title, MAX_TITLE_BYTES)
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    if req.members.len() > MAX_MEMBERS {
        return Err(ApiError::invalid(format!(
            "at most {MAX_MEMBERS} members per room"
        )));
    }
    for m in &mut req.members {
        check_member(m)?;
    }
    let mut seen = HashSet::new();
    for m in &req.members {
        if !seen.insert(&m.id) {
            return Err(ApiError::invalid(format!(
                "member {} is listed twice",
                m.id
            )));
        }
    }
    let room = state
        .store
        .create_group(&site.id, &req.title, &req.members)
        .await?;
    let members: Vec<UserId> = room.members.iter().map(|m| m.id.clone()).collect();
    state.broker.announce_room(&site.id, &room.id, &members);
    state.webhooks.wake();
    tracing::info!(site = %site.id, room = %room.id, "group room created");
    Ok((StatusCode::CREATED, Json(room)))
}

#[utoipa::path(post, path = "/dialogs", tag = "rooms", request_body = OpenDialog, responses((status = 201, description = "The dialog, new", body = RoomInfo), (status = 200, description = "The dialog, as it already was", body = RoomInfo), (status = 400, description = "Not two different users", body = ErrorBody)))]
async fn open_dialog(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    ApiJson(mut req): ApiJson<OpenDialog>,
) -> Result<(StatusCode, Json<RoomInfo>), ApiError> {
    let [a, b] = req.users.as_mut_slice() else {
        return Err(ApiError::invalid("a dialog has exactly two users"));
    };
    check_member(a)?;
    check_member(b)?;
    if a.id == b.id {
        return Err(ApiError::invalid("a dialog needs two different users"));
    }
    let (a, b) = (&*a, &*b);
    let (room, created) = state.store.open_dialog(&site.id, a, b).await?;
    if created {
        state
            .broker
            .announce_room(&site.id, &room.id, &[a.id.clone(), b.id.clone()]);
        state.webhooks.wake();
        return Ok((StatusCode::CREATED, Json(room)));
    }
    Ok((StatusCode::OK, Json(room)))
}

#[utoipa::path(get, path = "/rooms/{room}", tag = "rooms", params(("room" = String, Path, description = "Room id")), responses((status = 200, description = "The room with its members", body = RoomInfo), (status = 404, description = "No such room in this site", body = ErrorBody)))]
async fn get_room(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(room): Path<String>,
) -> Result<Json<RoomInfo>, ApiError> {
    let room = parse_room(room)?;
    let info = state.store.room(&site.id, &room).await?;
    info.map(Json)
        .ok_or_else(|| crate::store::StoreError::RoomNotFound.into())
}

#[utoipa::path(get, path = "/rooms/{room}/members", tag = "rooms", params(("room" = String, Path, description = "Room id"), ("limit" = Option<u32>, Query, description = "1 to 500, 100 unless given"), ("after" = Option<String>, Query, description = "The user id the page starts after")), responses((status = 200, description = "A page of the members, by user id", body = MemberList), (status = 404, description = "No such room", body = ErrorBody)))]
async fn members(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(room): Path<String>,
    query: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<MemberList>, ApiError> {
    let room = parse_room(room)?;
    let Query(page) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = page.limit(ROOM_PAGE, MEMBERS_PAGE as usize)? as u32;
    let after = page.after(UserId::parse)?;
    ensure_room(&state, &site, &room).await?;
    let (members, next) = state
        .store
        .members_page(&room, after.as_ref(), limit)
        .await?;
    Ok(Json(MemberList { members, next }))
}

#[utoipa::path(post, path = "/rooms/{room}/members", tag = "rooms", params(("room" = String, Path, description = "Room id")), request_body = AddMember, responses((status = 201, description = "The member_joined event", body = Event), (status = 409, description = "Already a member", body = ErrorBody), (status = 404, description = "No such room", body = ErrorBody)))]
async fn add_member(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(room): Path<String>,
    ApiJson(mut req): ApiJson<AddMember>,
) -> Result<(StatusCode, Json<Event>), ApiError> {
    let room = parse_room(room)?;
    check_member(&mut req.user)?;
    ensure_room(&state, &site, &room).await?;
    state
        .store
        .upsert_user(&site.id, &req.user.id, req.user.name.as_deref())
        .await?;
    let op = WriteOp::Join {
        site: site.id.clone(),
        room,
        user: req.user.id,
    };
    let written = state.writer.write(op).await?;
    Ok((StatusCode::CREATED, Json(written.event)))
}

#[utoipa::path(delete, path = "/rooms/{room}/members/{user}", tag = "rooms", params(("room" = String, Path, description = "Room id"), ("user" = String, Path, description = "User id")), responses((status = 200, description = "The member_left event", body = Event), (status = 404, description = "No such room, or not a member", body = ErrorBody)))]
async fn remove_member(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path((room, user)): Path<(String, String)>,
) -> Result<Json<Event>, ApiError> {
    let op = WriteOp::Leave {
        site: site.id.clone(),
        room: parse_room(room)?,
        user: parse_user(user)?,
    };
    let written = state.writer.write(op).await?;
    Ok(Json(written.event))
}

/// `DELETE /rooms/{room}/messages/{seq}`: deletes a message for everyone.
/// Its row keeps only its sender and time, a `message_deleted` tombstone
/// goes to the room (and to every client's cache through it), and its files
/// are deleted. Answers the tombstone; a message deleted before answers
/// as it stands (`deleted`); any other event, or none, is 404.
#[utoipa::path(delete, path = "/rooms/{room}/messages/{seq}", tag = "messages", params(("room" = String, Path, description = "Room id"), ("seq" = u64, Path, description = "The message's seq")), responses((status = 200, description = "The message_deleted tombstone (again: the deleted message)", body = Event), (status = 404, description = "No such room or message", body = ErrorBody)))]
async fn delete_message(
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
async fn post_message(
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
    let files = attach(&state, &site, &room, req.from.as_ref(), &req.files).await?;
    // A post without a client id gets one here: should its commit go
    // unanswered (the database link cut during it), the writer's retry
    // then finds it stored instead of storing it twice.
    let made_here = req.client_id.is_none();
    let client_id = req
        .client_id
        .unwrap_or_else(|| ClientId::from_uuid(uuid::Uuid::now_v7()));
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
        .attach_files(&site.id, from, room, ids, max)
        .await
        .map_err(|err| match err {
            AttachError::TooMany(_) => ApiError::invalid(err.to_string()),
            AttachError::Store(err) => err.into(),
            other => ApiError::client(
                StatusCode::UNPROCESSABLE_ENTITY,
                ErrorCode::FileInvalid,
                other.to_string(),
            ),
        })
}

/// `GET /api/v1/file-types`: the list in force for the site.
#[utoipa::path(get, path = "/file-types", tag = "site", responses((status = 200, description = "The file types in force", body = Vec<String>)))]
async fn get_file_types(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
) -> Json<Vec<String>> {
    Json(crate::files::site_types(&state, &site))
}

/// `PUT /api/v1/file-types`: sets the site's own list (`null`: the
/// server's default); answers the list in force.
#[utoipa::path(put, path = "/file-types", tag = "site", request_body = FileTypes, responses((status = 200, description = "The file types in force", body = Vec<String>)))]
async fn put_file_types(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    ApiJson(req): ApiJson<FileTypes>,
) -> Result<Json<Vec<String>>, ApiError> {
    let list = match req.types.as_deref() {
        Some(text) => Some(
            crate::files::kinds::parse_list(text)
                .map_err(ApiError::invalid)?
                .join(","),
        ),
        None => None,
    };
    state
        .store
        .set_site_file_types(&site.id, list.as_deref())
        .await?;
    let detail = list.as_deref().unwrap_or("the server's default");
    audit::record(
        &state,
        &site.id,
        "file_types.change",
        "file-types",
        Some(detail),
    )
    .await;
    let site = Site {
        file_types: list,
        ..site
    };
    Ok(Json(crate::files::site_types(&state, &site)))
}

/// `?before=` or `?after=` (exclusive), and `?limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    before: Option<Seq>,
    after: Option<Seq>,
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/rooms/{room}/messages", tag = "messages", params(("room" = String, Path, description = "Room id"), ("before" = Option<u64>, Query, description = "Events before this seq (the latest unless given)"), ("after" = Option<u64>, Query, description = "Events after this seq"), ("limit" = Option<u32>, Query, description = "1 to 1000")), responses((status = 200, description = "Events, ascending", body = EventPage), (status = 404, description = "No such room", body = ErrorBody)))]
async fn history(
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

/// `?limit=&after=` of a listing by id.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Paging {
    limit: Option<usize>,
    after: Option<String>,
}

impl Paging {
    /// `limit`, or `default`; within 1..=`max`.
    fn limit(&self, default: usize, max: usize) -> Result<usize, ApiError> {
        let limit = self.limit.unwrap_or(default);
        if !(1..=max).contains(&limit) {
            return Err(ApiError::invalid(format!(
                "limit must be between 1 and {max}"
            )));
        }
        Ok(limit)
    }

    /// `after`, parsed as the listing's ids.
    fn after<T, E: std::fmt::Display>(
        &self,
        parse: impl FnOnce(String) -> Result<T, E>,
    ) -> Result<Option<T>, ApiError> {
        (self.after.clone())
            .map(|id| parse(id).map_err(|e| ApiError::invalid(format!("after: {e}"))))
            .transpose()
    }
}

/// Rooms per page of `GET /users/{user}/rooms` unless `limit` says.
pub const ROOM_PAGE: usize = 100;
/// The most rooms one page may hold.
pub const MAX_ROOM_PAGE: usize = 1000;

#[utoipa::path(get, path = "/users/{user}/rooms", tag = "users", params(("user" = String, Path, description = "User id"), ("limit" = Option<u32>, Query, description = "1 to 1000 (100 unless given)"), ("after" = Option<String>, Query, description = "The room id the page starts after")), responses((status = 200, description = "A page of the user's rooms", body = RoomList)))]
async fn user_rooms(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(user): Path<String>,
    query: Result<Query<Paging>, QueryRejection>,
) -> Result<Json<RoomList>, ApiError> {
    let user = parse_user(user)?;
    let Query(page) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let limit = page.limit(ROOM_PAGE, MAX_ROOM_PAGE)?;
    let after = page.after(RoomId::parse)?;
    let ask = limit.saturating_add(1);
    let mut rooms = (state
        .store
        .rooms_for_user(&site.id, &user, after.as_ref(), ask))
    .await?;
    let next = (rooms.len() > limit).then(|| {
        rooms.truncate(limit);
        rooms.last().map(|r| r.id.clone())
    });
    Ok(Json(RoomList {
        rooms,
        next: next.flatten(),
    }))
}
