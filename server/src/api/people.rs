//! People, through the API: a user's unread counts (for digests), moving
//! a member's read marker, the site's settings for receipts and presence,
//! and moderation (bans from the site, mutes in a room).

use super::audit::API_ACTOR;
use super::{ApiJson, ApiSite, parse_room, parse_user};
use crate::error::ApiError;
use crate::hub::Moved;
use crate::moderation;
use crate::state::AppState;
use crate::store::StoreError;
use axum::Json;
use axum::extract::{Path, State};
use natter_shared::api::{ErrorBody, Mute, Muted, RoomUnread, SetRead, Settings, UnreadCounts};

/// `GET /api/v1/users/{user}/unread`: the user's marker and unread count
/// in each of their rooms, and the total.
#[utoipa::path(get, path = "/users/{user}/unread", tag = "users", params(("user" = String, Path, description = "User id")), responses((status = 200, description = "Read markers and unread counts", body = UnreadCounts)))]
pub(super) async fn unread(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(user): Path<String>,
) -> Result<Json<UnreadCounts>, ApiError> {
    let user = parse_user(user)?;
    if state
        .reads
        .has_pending(state.gate.user_key(&site.id, &user))
    {
        state.reads.flush().await?;
    }
    let rooms: Vec<RoomUnread> = state
        .store
        .unread_counts(&site.id, &user)
        .await?
        .into_iter()
        .map(|u| RoomUnread {
            room: u.room,
            read: u.read,
            unread: u.unread,
        })
        .collect();
    let total = rooms.iter().map(|r| u64::from(r.unread)).sum();
    Ok(Json(UnreadCounts { total, rooms }))
}

/// `PUT /api/v1/rooms/{room}/members/{user}/read`: moves the member's
/// marker (never back, never past the room's latest event), tells their
/// devices and, where receipts show, the room; answers where it stands.
#[utoipa::path(put, path = "/rooms/{room}/members/{user}/read", tag = "rooms", params(("room" = String, Path, description = "Room id"), ("user" = String, Path, description = "User id")), request_body = SetRead, responses((status = 200, description = "Where the marker stands", body = RoomUnread), (status = 403, description = "Not a member", body = ErrorBody)))]
pub(super) async fn set_read(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path((room, user)): Path<(String, String)>,
    ApiJson(req): ApiJson<SetRead>,
) -> Result<Json<RoomUnread>, ApiError> {
    let (room, user) = (parse_room(room)?, parse_user(user)?);
    let info = state
        .store
        .room_for_user(&site.id, &room, &user)
        .await?
        .ok_or(StoreError::NotMember)?;
    let seq = req.seq.min(info.last_seq);
    if seq > info.read {
        let key = state.gate.user_key(&site.id, &user);
        state.reads.note(key, &room, &user, seq);
        state.reads.flush().await?;
        let public = site.settings.receipts(info.kind);
        let moved = Moved {
            after: info.read,
            seq,
        };
        state.broker.read(&room, &user, moved, public, None);
    }
    let info = state
        .store
        .room_for_user(&site.id, &room, &user)
        .await?
        .ok_or(StoreError::NotMember)?;
    Ok(Json(RoomUnread {
        room,
        read: info.read,
        unread: info.unread,
    }))
}

/// `GET /api/v1/settings`.
#[utoipa::path(get, path = "/settings", tag = "site", responses((status = 200, description = "What the site shows its people", body = Settings)))]
pub(super) async fn get_settings(ApiSite(site): ApiSite) -> Json<Settings> {
    Json(site.settings)
}

/// `PUT /api/v1/settings`: replaces them; connections opened from now on
/// follow the new ones.
#[utoipa::path(put, path = "/settings", tag = "site", request_body = Settings, responses((status = 200, description = "The settings now", body = Settings)))]
pub(super) async fn put_settings(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    ApiJson(settings): ApiJson<Settings>,
) -> Result<Json<Settings>, ApiError> {
    state.store.set_site_settings(&site.id, settings).await?;
    let detail = serde_json::to_string(&settings).ok();
    super::audit::record(
        &state,
        &site.id,
        "settings.change",
        "settings",
        detail.as_deref(),
    )
    .await;
    Ok(Json(settings))
}

/// `PUT /api/v1/users/{user}/ban`: bans a user from the site. Their
/// connections on every node close at once (`banned`), and their tokens
/// no longer connect. 204.
#[utoipa::path(put, path = "/users/{user}/ban", tag = "users", params(("user" = String, Path, description = "User id")), responses((status = 204, description = "Banned")))]
pub(super) async fn ban(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(user): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    let user = parse_user(user)?;
    moderation::set_ban(&state, &site.id, &user, true, API_ACTOR).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/users/{user}/ban`: lifts a ban. 204.
#[utoipa::path(delete, path = "/users/{user}/ban", tag = "users", params(("user" = String, Path, description = "User id")), responses((status = 204, description = "The ban is lifted")))]
pub(super) async fn unban(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path(user): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    let user = parse_user(user)?;
    moderation::set_ban(&state, &site.id, &user, false, API_ACTOR).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/rooms/{room}/members/{user}/mute", tag = "rooms", params(("room" = String, Path, description = "Room id"), ("user" = String, Path, description = "User id")), request_body = Mute, responses((status = 200, description = "Muted until then", body = Muted), (status = 400, description = "A duration out of range", body = ErrorBody), (status = 403, description = "Not a member", body = ErrorBody), (status = 404, description = "No such room", body = ErrorBody)))]
/// `PUT /api/v1/rooms/{room}/members/{user}/mute`: the member reads the
/// room but may not post in it for `secs` (a new mute replaces the last).
pub(super) async fn mute(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path((room, user)): Path<(String, String)>,
    ApiJson(req): ApiJson<Mute>,
) -> Result<Json<Muted>, ApiError> {
    let (room, user) = (parse_room(room)?, parse_user(user)?);
    let until = moderation::set_mute(&state, &site.id, &room, &user, Some(req.secs), API_ACTOR)
        .await?
        .unwrap_or_default();
    Ok(Json(Muted { room, user, until }))
}

#[utoipa::path(delete, path = "/rooms/{room}/members/{user}/mute", tag = "rooms", params(("room" = String, Path, description = "Room id"), ("user" = String, Path, description = "User id")), responses((status = 204, description = "The member may post again"), (status = 403, description = "Not a member", body = ErrorBody), (status = 404, description = "No such room", body = ErrorBody)))]
/// `DELETE /api/v1/rooms/{room}/members/{user}/mute`: lifts a mute.
pub(super) async fn unmute(
    State(state): State<AppState>,
    ApiSite(site): ApiSite,
    Path((room, user)): Path<(String, String)>,
) -> Result<axum::http::StatusCode, ApiError> {
    let (room, user) = (parse_room(room)?, parse_user(user)?);
    moderation::set_mute(&state, &site.id, &room, &user, None, API_ACTOR).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
