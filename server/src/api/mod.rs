//! The HTTP API a site's backend calls, under `/api/v1`, authenticated by
//! the site's API key (`Authorization: Bearer …`). Every error is JSON with
//! a stable code (see [`crate::error`]).

mod audit;
mod hooks;
mod messages;
mod openapi;
mod people;
mod reports;
mod site;

use crate::error::ApiError;
use crate::gate::Rate;
use crate::state::AppState;
use crate::store::Site;
use crate::store::writer::WriteOp;
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
    AddMember, CreateRoom, ErrorBody, FileTypes, MemberList, OpenDialog, RoomList,
};
use natter_shared::limits::{MAX_MEMBERS, MAX_NAME_BYTES, MAX_TITLE_BYTES, MEMBERS_PAGE};
use natter_shared::text::clean_label;
use natter_shared::{ErrorCode, Event, Member, RoomId, RoomInfo, UserId};
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
        .routes(routes!(messages::post_message, messages::history))
        .routes(routes!(messages::delete_message))
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
