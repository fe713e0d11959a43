//! Rooms, users, messages, reports and webhooks in the panel: searching
//! and paging through a site's rooms and users, a room's members and
//! history, a user's rooms; deleting a message, muting a member, banning
//! a user, dismissing a report, resuming a paused webhook endpoint.

use super::pages::{crumbs, csrf, notice, page, seg, site_base, when};
use super::session::{Change, Viewer};
use super::sites::PageQuery;
use super::{AdminError, managed_site};
use crate::moderation;
use crate::state::AppState;
use crate::store::PageFrom;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use natter_shared::{EventKind, RoomId, Seq, UserId};

/// Rows on a page of rooms, users or members.
const PAGE: u32 = 50;

/// Events on a page of a room's history.
const HISTORY: u32 = 50;

/// The mutes the panel offers, in seconds.
const MUTES: [(u64, &str); 4] = [
    (600, "10 minutes"),
    (3600, "an hour"),
    (86_400, "a day"),
    (604_800, "a week"),
];

fn room_id(text: String) -> Result<RoomId, AdminError> {
    RoomId::parse(text).map_err(|_| AdminError::NotFound)
}

fn user_id(text: String) -> Result<UserId, AdminError> {
    UserId::parse(text).map_err(|_| AdminError::NotFound)
}

/// A search form and the link to the next page.
fn search(query: &str, placeholder: &str) -> Markup {
    html! {
        form.inline method="get" {
            input type="search" name="q" value=(query) placeholder=(placeholder);
            button type="submit" { "Search" }
        }
    }
}

fn next_link(query: &str, after: Option<&str>) -> Markup {
    html! {
        @if let Some(after) = after {
            p { a href={"?q=" (seg(query)) "&after=" (seg(after))} { "Next page" } }
        }
    }
}

/// `GET /admin/sites/{site}/rooms?q=&after=`.
pub async fn rooms(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Markup, AdminError> {
    let site = managed_site(&state, &viewer.admin, &id).await?;
    let q = query.q.as_deref().unwrap_or("").trim();
    let (rooms, more) = state
        .store
        .search_rooms(&site.id, q, query.after.as_deref(), PAGE)
        .await?;
    let base = site_base(&site);
    let after = more.then(|| rooms.last().map(|r| r.id.as_str())).flatten();
    Ok(page(
        "Rooms",
        Some(&viewer),
        &crumbs(&site),
        html! {
            (search(q, "Room id or title"))
            @if rooms.is_empty() { p { "No rooms found." } } @else {
                table {
                    thead { tr { th { "Room" } th { "Kind" } th { "Members" } th { "Events" } th { "Created" } } }
                    tbody {
                        @for room in &rooms {
                            tr {
                                td { a href={(base) "/rooms/" (seg(room.id.as_str()))} {
                                    (room.title.as_deref().unwrap_or(room.id.as_str())) } }
                                td { (room.kind.as_str()) }
                                td { (room.members) }
                                td { (room.last_seq) }
                                td { (when(room.created_at)) }
                            }
                        }
                    }
                }
            }
            (next_link(q, after))
        },
    ))
}

/// `GET /admin/sites/{site}/rooms/{room}?before=&after=`: its members
/// (with mutes) and a page of its history, newest last.
pub async fn room(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, room)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Result<Markup, AdminError> {
    let site = managed_site(&state, &viewer.admin, &id).await?;
    let room = room_id(room)?;
    let info = state
        .store
        .room(&site.id, &room)
        .await?
        .ok_or(AdminError::NotFound)?;
    let after_member = query.after.clone().map(user_id).transpose()?;
    let (members, next_member) = state
        .store
        .members_page(&room, after_member.as_ref(), PAGE)
        .await?;
    let muted = state.store.muted_members(&room).await?;
    let before: Seq = match query.before.as_deref() {
        Some(b) => b
            .parse()
            .map_err(|_| AdminError::Invalid("before: a seq".into()))?,
        None => info.last_seq.saturating_add(1),
    };
    let history = state
        .store
        .events_page(&room, PageFrom::Before(before), HISTORY)
        .await?;
    let base = format!("{}/rooms/{}", site_base(&site), seg(room.as_str()));
    let title = info.title.clone().unwrap_or_else(|| {
        let names: Vec<&str> = info
            .members
            .iter()
            .map(|m| m.name.as_deref().unwrap_or(m.id.as_str()))
            .collect();
        format!("Dialog of {}", names.join(" and "))
    });
    Ok(page(
        &title,
        Some(&viewer),
        &crumbs(&site),
        html! {
            (notice(query.done.as_deref()))
            p { code { (room) } " · " (info.kind.as_str()) " · " (info.member_count) " members · created " (when(info.created_at)) }
            section {
                h2 { "Messages" }
                @if history.more {
                    @if let Some(first) = history.events.first() {
                        p { a href={"?before=" (first.seq)} { "Older" } }
                    }
                }
                @if history.events.is_empty() { p { "No messages yet." } }
                ol.history {
                    @for event in &history.events {
                        li data-seq=(event.seq) {
                            span.when { (when(event.ts)) }
                            " "
                            span.sender { (event.sender.as_ref().map_or("system", |s| s.as_str())) }
                            " "
                            @match &event.kind {
                                EventKind::Message { body, files, .. } => {
                                    span.body { (body) }
                                    @for file in files { " " span.file { "[" (file.name) "]" } }
                                    form.inline method="post" action={(base) "/messages/" (event.seq) "/delete"} {
                                        (csrf(&viewer))
                                        button.danger.small type="submit" { "Delete" }
                                    }
                                }
                                EventKind::MemberJoined { user } => em { "added " (user) }
                                EventKind::MemberLeft { user } => em { "removed " (user) }
                                EventKind::Deleted { .. } => em.deleted { "deleted" }
                                EventKind::MessageDeleted { target } => em { "deleted message " (target) }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Members" }
                table {
                    thead { tr { th { "User" } th { "Name" } th { "Muted" } th {} } }
                    tbody {
                        @for member in &members {
                            @let until = muted.get(&member.id);
                            tr {
                                td { a href={(site_base(&site)) "/users/" (seg(member.id.as_str()))} { (member.id) } }
                                td { (member.name.as_deref().unwrap_or("")) }
                                td { @if let Some(until) = until { "until " (when(*until)) } }
                                td.actions {
                                    form.inline method="post" action={(base) "/members/" (seg(member.id.as_str())) "/mute"} {
                                        (csrf(&viewer))
                                        select name="secs" aria-label="Mute for" {
                                            @for (secs, label) in MUTES { option value=(secs) { "Mute " (label) } }
                                        }
                                        button type="submit" { "Mute" }
                                    }
                                    @if until.is_some() {
                                        form.inline method="post" action={(base) "/members/" (seg(member.id.as_str())) "/mute"} {
                                            (csrf(&viewer))
                                            input type="hidden" name="secs" value="0";
                                            button type="submit" { "Lift the mute" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if let Some(next) = next_member {
                    p { a href={"?after=" (seg(next.as_str()))} { "More members" } }
                }
            }
        },
    ))
}

/// `POST …/rooms/{room}/messages/{seq}/delete`.
pub async fn delete_message(
    State(state): State<AppState>,
    Path((id, room, seq)): Path<(String, String, String)>,
    change: Change,
) -> Result<Response, AdminError> {
    let site = managed_site(&state, &change.admin, &id).await?;
    let room = room_id(room)?;
    let seq: Seq = seq
        .parse()
        .ok()
        .filter(|s| *s > 0)
        .ok_or(AdminError::NotFound)?;
    moderation::delete_message(&state, &site.id, &room, seq, &change.actor()).await?;
    let to = if change.field("back") == "site" {
        format!("{}?done=deleted", site_base(&site))
    } else {
        format!(
            "{}/rooms/{}?done=deleted",
            site_base(&site),
            seg(room.as_str())
        )
    };
    Ok(Redirect::to(&to).into_response())
}

/// `POST …/rooms/{room}/members/{user}/mute` with `secs` (0 lifts it).
pub async fn mute(
    State(state): State<AppState>,
    Path((id, room, user)): Path<(String, String, String)>,
    change: Change,
) -> Result<Response, AdminError> {
    let site = managed_site(&state, &change.admin, &id).await?;
    let (room, user) = (room_id(room)?, user_id(user)?);
    let secs: u64 = change
        .field("secs")
        .parse()
        .map_err(|_| AdminError::Invalid("secs: a number of seconds".into()))?;
    let secs = (secs > 0).then_some(secs);
    moderation::set_mute(&state, &site.id, &room, &user, secs, &change.actor()).await?;
    let done = if secs.is_some() { "muted" } else { "unmuted" };
    let to = format!(
        "{}/rooms/{}?done={done}",
        site_base(&site),
        seg(room.as_str())
    );
    Ok(Redirect::to(&to).into_response())
}

/// `GET /admin/sites/{site}/users?q=&after=`.
pub async fn users(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Markup, AdminError> {
    let site = managed_site(&state, &viewer.admin, &id).await?;
    let q = query.q.as_deref().unwrap_or("").trim();
    let (users, more) = state
        .store
        .search_users(&site.id, q, query.after.as_deref(), PAGE)
        .await?;
    let base = site_base(&site);
    let after = more.then(|| users.last().map(|u| u.id.as_str())).flatten();
    Ok(page(
        "Users",
        Some(&viewer),
        &crumbs(&site),
        html! {
            (search(q, "User id or name"))
            @if users.is_empty() { p { "No users found." } } @else {
                table {
                    thead { tr { th { "User" } th { "Name" } th { "Last seen" } th { "Banned" } } }
                    tbody {
                        @for user in &users {
                            tr {
                                td { a href={(base) "/users/" (seg(user.id.as_str()))} { (user.id) } }
                                td { (user.name.as_deref().unwrap_or("")) }
                                td { (user.last_seen.map(when).unwrap_or_default()) }
                                td { @if user.banned { strong { "banned" } } }
                            }
                        }
                    }
                }
            }
            (next_link(q, after))
        },
    ))
}

/// `GET /admin/sites/{site}/users/{user}`: their rooms and ban.
pub async fn user(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, user)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Result<Markup, AdminError> {
    let site = managed_site(&state, &viewer.admin, &id).await?;
    let user = user_id(user)?;
    let row = state
        .store
        .user_row(&site.id, &user)
        .await?
        .ok_or(AdminError::NotFound)?;
    let after = query.after.clone().map(room_id).transpose()?;
    let rooms = state
        .store
        .rooms_for_user(&site.id, &user, after.as_ref(), PAGE as usize)
        .await?;
    let base = site_base(&site);
    let title = row.name.clone().unwrap_or_else(|| user.to_string());
    Ok(page(
        &title,
        Some(&viewer),
        &crumbs(&site),
        html! {
            (notice(query.done.as_deref()))
            p { code { (user) }
                @if let Some(seen) = row.last_seen { " · last seen " (when(seen)) } }
            form.inline method="post" action={(base) "/users/" (seg(user.as_str())) "/ban"} {
                (csrf(&viewer))
                @if row.banned {
                    p.problem { "Banned from the site." }
                    input type="hidden" name="banned" value="0";
                    button type="submit" { "Lift the ban" }
                } @else {
                    input type="hidden" name="banned" value="1";
                    button.danger type="submit" { "Ban from the site" }
                }
            }
            h2 { "Rooms" }
            @if rooms.is_empty() { p { "In no room." } }
            ul {
                @for room in &rooms {
                    li { a href={(base) "/rooms/" (seg(room.id.as_str()))} {
                        (room.title.as_deref().unwrap_or(room.id.as_str())) }
                        " (" (room.kind.as_str()) ", " (room.member_count) " members)" }
                }
            }
            @if rooms.len() == PAGE as usize {
                @if let Some(last) = rooms.last() {
                    p { a href={"?after=" (seg(last.id.as_str()))} { "More rooms" } }
                }
            }
        },
    ))
}

/// `POST /admin/sites/{site}/users/{user}/ban` with `banned` 1 or 0.
pub async fn ban(
    State(state): State<AppState>,
    Path((id, user)): Path<(String, String)>,
    change: Change,
) -> Result<Response, AdminError> {
    let site = managed_site(&state, &change.admin, &id).await?;
    let user = user_id(user)?;
    let banned = match change.field("banned") {
        "1" => true,
        "0" => false,
        _ => return Err(AdminError::Invalid("banned: 1 or 0".into())),
    };
    moderation::set_ban(&state, &site.id, &user, banned, &change.actor()).await?;
    let done = if banned { "banned" } else { "unbanned" };
    let to = format!(
        "{}/users/{}?done={done}",
        site_base(&site),
        seg(user.as_str())
    );
    Ok(Redirect::to(&to).into_response())
}

/// `POST /admin/sites/{site}/reports/{id}/dismiss`.
pub async fn dismiss_report(
    State(state): State<AppState>,
    Path((id, report)): Path<(String, String)>,
    change: Change,
) -> Result<Response, AdminError> {
    let site = managed_site(&state, &change.admin, &id).await?;
    moderation::dismiss_report(&state, &site.id, &report, &change.actor()).await?;
    Ok(Redirect::to(&format!("{}?done=dismissed", site_base(&site))).into_response())
}

/// `GET /admin/sites/{site}/webhooks/{id}`: the endpoint and its latest
/// delivery attempts.
pub async fn webhook(
    State(state): State<AppState>,
    viewer: Viewer,
    Path((id, hook)): Path<(String, String)>,
    Query(query): Query<PageQuery>,
) -> Result<Markup, AdminError> {
    let site = managed_site(&state, &viewer.admin, &id).await?;
    let webhook = state
        .store
        .webhook(&site.id, &hook)
        .await?
        .ok_or(AdminError::NotFound)?;
    let attempts = state.store.webhook_attempts(&site.id, &hook, 100).await?;
    let base = site_base(&site);
    Ok(page(
        &webhook.url,
        Some(&viewer),
        &crumbs(&site),
        html! {
            (notice(query.done.as_deref()))
            p { "Status: " strong.status { (format!("{:?}", webhook.status).to_lowercase()) }
                @if let Some(at) = webhook.paused_at { " since " (when(at)) }
                " · waiting: " (webhook.pending)
                " · events: " (webhook.events.iter().map(|e| e.name()).collect::<Vec<_>>().join(", ")) }
            @if webhook.paused_at.is_some() {
                form method="post" action={(base) "/webhooks/" (seg(&webhook.id)) "/resume"} {
                    (csrf(&viewer))
                    button type="submit" { "Resume and replay" }
                }
            }
            h2 { "Latest attempts" }
            @if attempts.is_empty() { p { "None yet." } } @else {
                table.attempts {
                    thead { tr { th { "When" } th { "Event" } th { "Id" } th { "Answer" } th { "Took" } } }
                    tbody {
                        @for attempt in &attempts {
                            tr.ok[attempt.ok] {
                                td { (when(attempt.at)) }
                                td { (attempt.kind.name()) }
                                td { code { (attempt.message_id) } }
                                td { @if let Some(status) = attempt.status { (status) " " }
                                     (attempt.error.as_deref().unwrap_or("")) }
                                td { (attempt.duration_ms) " ms" }
                            }
                        }
                    }
                }
            }
        },
    ))
}

/// `POST /admin/sites/{site}/webhooks/{id}/resume`.
pub async fn resume_webhook(
    State(state): State<AppState>,
    Path((id, hook)): Path<(String, String)>,
    change: Change,
) -> Result<Response, AdminError> {
    let site = managed_site(&state, &change.admin, &id).await?;
    moderation::resume_webhook(&state, &site.id, &hook, &change.actor()).await?;
    let to = format!("{}/webhooks/{}?done=resumed", site_base(&site), seg(&hook));
    Ok(Redirect::to(&to).into_response())
}
