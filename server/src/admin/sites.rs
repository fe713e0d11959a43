//! Sites in the panel: the list, creating one (its secrets shown once),
//! its page (settings, live numbers, reports, webhooks, the latest of its
//! audit log), renaming, allowed origins, rotating the token secret (with
//! a grace period) and the API key, and deleting it (asked twice).

use super::pages::{crumbs, csrf, notice, page, seg, site_base, when};
use super::session::{Change, Viewer};
use super::{AdminError, managed_site};
use crate::moderation::{self, MAX_GRACE_SECS, MAX_NAME_CHARS, record};
use crate::state::AppState;
use crate::store::{Site, StoreError};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use natter_shared::EventKind;
use serde::Deserialize;
use std::collections::HashMap;

/// What a page's query may carry: the notice of a change just made, a
/// search and where a page starts.
#[derive(Debug, Default, Deserialize)]
pub struct PageQuery {
    pub done: Option<String>,
    pub q: Option<String>,
    pub after: Option<String>,
    pub before: Option<String>,
}

fn sites_crumb() -> Vec<(&'static str, String)> {
    vec![("Sites", "/admin/sites".to_string())]
}

/// `GET /admin/sites`: the sites this admin manages; a form for a new one
/// when they may create sites.
pub async fn list(State(state): State<AppState>, viewer: Viewer) -> Result<Markup, AdminError> {
    let sites: Vec<Site> = state
        .store
        .sites()
        .await?
        .into_iter()
        .filter(|s| viewer.admin.manages(&s.id))
        .collect();
    let may_create = viewer.admin.sites.is_none();
    Ok(page(
        "Sites",
        Some(&viewer),
        &[],
        html! {
            @if sites.is_empty() {
                p { "No sites yet." }
            } @else {
                table {
                    thead { tr { th { "Name" } th { "Id" } th { "Origins" } } }
                    tbody {
                        @for site in &sites {
                            tr {
                                td { a href={"/admin/sites/" (seg(site.id.as_str()))} { (site.name) } }
                                td { code { (site.id) } }
                                td { (site.origins.join(" ")) }
                            }
                        }
                    }
                }
            }
            @if may_create {
                section.live data-live="/admin/live" {
                    h2 { "Live" }
                    p {
                        "This node: connections " strong data-field="connections" { "…" }
                        " · messages a minute " strong data-field="per_minute" { "…" }
                    }
                    svg.chart viewBox="0 0 600 120" preserveAspectRatio="none" role="img" aria-label="This node's connections (blue) and messages a minute (green), last hour" {}
                    table.nodes {
                        thead { tr { th { "Node" } th { "Connections" } th { "Messages a minute" } th { "Heard from" } } }
                        tbody {}
                    }
                }
            }
            @if may_create {
                h2 { "New site" }
                form.stack method="post" action="/admin/sites" {
                    (csrf(&viewer))
                    label { "Name" input name="name" required maxlength=(MAX_NAME_CHARS); }
                    label { "Origins allowed to embed the widget, one a line"
                        textarea name="origins" rows="3" required placeholder="https://www.example.com" {} }
                    button type="submit" { "Create the site" }
                }
            }
        },
    ))
}

/// A page that shows new credentials once.
fn credentials(
    viewer: &Viewer,
    site: &Site,
    title: &str,
    rows: &[(&str, &str)],
    note: &str,
) -> Markup {
    page(
        title,
        Some(viewer),
        &crumbs(site),
        html! {
            p.notice role="status" { (note) }
            dl.secrets {
                @for (label, value) in rows {
                    dt { (label) }
                    dd { code.secret { (value) } }
                }
            }
            p { a href={"/admin/sites/" (seg(site.id.as_str()))} { "Back to the site" } }
        },
    )
}

/// `POST /admin/sites`: creates a site (admins of every site only) and
/// shows its token secret and API key, this once.
pub async fn create(State(state): State<AppState>, change: Change) -> Result<Markup, AdminError> {
    let viewer = change.viewer();
    if change.admin.sites.is_some() {
        return Err(AdminError::Forbidden(
            "only an admin of every site may create sites".into(),
        ));
    }
    let name = moderation::parse_name(change.field("name"))?;
    let origins = moderation::parse_origins(change.field("origins").lines())?;
    let new = state.store.create_site(None, name, &origins).await?;
    let detail = format!("{name} {}", origins.join(" "));
    record(
        &state.store,
        &new.site.id,
        &change.actor(),
        "site.create",
        new.site.id.as_str(),
        Some(&detail),
    )
    .await;
    tracing::info!(site = %new.site.id, admin = %change.admin.email, "site created");
    Ok(credentials(
        &viewer,
        &new.site,
        "Site created",
        &[
            ("Site id", new.site.id.as_str()),
            ("Token secret", new.site.token_secret.expose()),
            ("API key", new.api_key.expose()),
        ],
        "Keep the token secret and the API key now: the key is stored hashed and shown only this once.",
    ))
}

/// `GET /admin/sites/{site}`.
pub async fn show(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Markup, AdminError> {
    let site = managed_site(&state, &viewer.admin, &id).await?;
    let base = site_base(&site);
    let (reports, _) = state.store.reports(&site.id, None, 50).await?;
    let places: Vec<_> = reports.iter().map(|r| (r.room.clone(), r.seq)).collect();
    let events: HashMap<_, _> = (state.store.events_at(&places).await?)
        .into_iter()
        .map(|e| ((e.room.clone(), e.seq), e))
        .collect();
    let reported: Vec<_> = reports
        .into_iter()
        .map(|report| {
            let event = events.get(&(report.room.clone(), report.seq)).cloned();
            (report, event)
        })
        .collect();
    let webhooks = state.store.webhooks(&site.id).await?;
    let (audit, _) = state.store.audit_log(&site.id, None, 15).await?;
    let grace = site.previous_secret.as_ref().map(|(_, until)| *until);
    Ok(page(
        &site.name,
        Some(&viewer),
        &sites_crumb(),
        html! {
            (notice(query.done.as_deref()))
            nav.tabs {
                a href={(base) "/rooms"} { "Rooms" }
                a href={(base) "/users"} { "Users" }
                a href={(base) "/audit"} { "Audit log" }
            }
            section {
                h2 { "Reported messages" }
                @if reported.is_empty() {
                    p { "Nothing reported." }
                } @else {
                    table.reports {
                        thead { tr { th { "When" } th { "Room" } th { "Message" } th { "Reporter's note" } th {} } }
                        tbody {
                            @for (report, event) in &reported {
                                tr {
                                    td { (when(report.created_at)) }
                                    td { a href={(base) "/rooms/" (seg(report.room.as_str()))} { (report.room) } }
                                    td {
                                        @match event.as_ref().map(|e| (&e.sender, &e.kind)) {
                                            Some((sender, EventKind::Message { body, .. })) => {
                                                span.sender { (sender.as_ref().map_or("", |s| s.as_str())) ": " }
                                                span.body { (body) }
                                            }
                                            Some((_, EventKind::Deleted { .. })) => em { "deleted" },
                                            _ => em { "gone" },
                                        }
                                    }
                                    td { (report.note.as_deref().unwrap_or("")) " — " (report.reporter) }
                                    td.actions {
                                        @if matches!(event.as_ref().map(|e| &e.kind), Some(EventKind::Message { .. })) {
                                            form method="post" action={(base) "/rooms/" (seg(report.room.as_str())) "/messages/" (report.seq) "/delete"} {
                                                (csrf(&viewer))
                                                input type="hidden" name="back" value="site";
                                                button.danger type="submit" { "Delete message" }
                                            }
                                        }
                                        form method="post" action={(base) "/reports/" (seg(&report.id)) "/dismiss"} {
                                            (csrf(&viewer))
                                            button type="submit" { "Dismiss" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Webhooks" }
                @if webhooks.is_empty() {
                    p { "No endpoints. The site's backend adds them through " code { "POST /api/v1/webhooks" } "." }
                } @else {
                    table {
                        thead { tr { th { "Endpoint" } th { "Status" } th { "Waiting" } th {} } }
                        tbody {
                            @for hook in &webhooks {
                                tr {
                                    td { a href={(base) "/webhooks/" (seg(&hook.id))} { (hook.url) } }
                                    td.status { (format!("{:?}", hook.status).to_lowercase())
                                        @if let Some(at) = hook.paused_at { " since " (when(at)) } }
                                    td { (hook.pending) }
                                    td.actions {
                                        @if hook.paused_at.is_some() {
                                            form method="post" action={(base) "/webhooks/" (seg(&hook.id)) "/resume"} {
                                                (csrf(&viewer))
                                                button type="submit" { "Resume and replay" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section {
                h2 { "Settings" }
                p { "Site id " code { (site.id) } }
                form.inline method="post" action={(base) "/rename"} {
                    (csrf(&viewer))
                    label { "Name " input name="name" value=(site.name) required maxlength=(MAX_NAME_CHARS); }
                    button type="submit" { "Rename" }
                }
                form.stack method="post" action={(base) "/origins"} {
                    (csrf(&viewer))
                    label { "Origins allowed to embed the widget, one a line"
                        textarea name="origins" rows=(site.origins.len().clamp(2, 8)) required { (site.origins.join("\n")) } }
                    button type="submit" { "Save origins" }
                }
                form.inline method="post" action={(base) "/rotate-secret"} {
                    (csrf(&viewer))
                    label { "Old secret keeps working for "
                        input type="number" name="grace_secs" value="86400" min="0" max=(MAX_GRACE_SECS) required; " s" }
                    button type="submit" { "Rotate the token secret" }
                    @if let Some(until) = grace {
                        " " span.hint { "(the previous one works until " (when(until.saturating_mul(1000))) ")" }
                    }
                }
                form.inline method="post" action={(base) "/rotate-key"} {
                    (csrf(&viewer))
                    button type="submit" { "Replace the API key" }
                    " " span.hint { "(the old key stops working at once)" }
                }
                p { a.danger href={(base) "/delete"} { "Delete this site…" } }
            }
            section {
                h2 { "Latest changes" }
                (audit_table(&audit))
                p { a href={(base) "/audit"} { "The whole audit log" } }
            }
        },
    ))
}

/// The audit log entries, as a table.
pub fn audit_table(entries: &[natter_shared::api::AuditEntry]) -> Markup {
    html! {
        @if entries.is_empty() {
            p { "Nothing yet." }
        } @else {
            table.audit {
                thead { tr { th { "When" } th { "Who" } th { "What" } th { "To" } th { "Detail" } } }
                tbody {
                    @for entry in entries {
                        tr {
                            td { (when(entry.at)) }
                            td { (entry.actor) }
                            td { code { (entry.action) } }
                            td { (entry.subject) }
                            td { (entry.detail.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /admin/sites/{site}/audit?before=`.
pub async fn audit(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Markup, AdminError> {
    let site = managed_site(&state, &viewer.admin, &id).await?;
    let before = match query.before.as_deref() {
        Some(b) => Some(
            b.parse::<u64>()
                .map_err(|_| AdminError::Invalid("before: an entry id".into()))?,
        ),
        None => None,
    };
    let (entries, more) = state.store.audit_log(&site.id, before, 100).await?;
    let next = more.then(|| entries.last().map(|e| e.id)).flatten();
    Ok(page(
        "Audit log",
        Some(&viewer),
        &crumbs(&site),
        html! {
            (audit_table(&entries))
            @if let Some(next) = next {
                p { a href={"?before=" (next)} { "Older" } }
            }
        },
    ))
}

fn back_to(site: &Site, done: &str) -> Response {
    Redirect::to(&format!("{}?done={done}", site_base(site))).into_response()
}

/// `POST /admin/sites/{site}/rename`.
pub async fn rename(
    State(state): State<AppState>,
    Path(id): Path<String>,
    change: Change,
) -> Result<Response, AdminError> {
    let site = managed_site(&state, &change.admin, &id).await?;
    moderation::rename_site(&state, &site.id, change.field("name"), &change.actor()).await?;
    Ok(back_to(&site, "renamed"))
}

/// `POST /admin/sites/{site}/origins`.
pub async fn origins(
    State(state): State<AppState>,
    Path(id): Path<String>,
    change: Change,
) -> Result<Response, AdminError> {
    let site = managed_site(&state, &change.admin, &id).await?;
    let lines = change.field("origins").lines();
    moderation::set_origins(&state, &site.id, lines, &change.actor()).await?;
    Ok(back_to(&site, "origins"))
}

/// `POST /admin/sites/{site}/rotate-secret`: a new token secret, shown
/// once; the old one verifies tokens for `grace_secs` more.
pub async fn rotate_secret(
    State(state): State<AppState>,
    Path(id): Path<String>,
    change: Change,
) -> Result<Markup, AdminError> {
    let viewer = change.viewer();
    let site = managed_site(&state, &change.admin, &id).await?;
    let grace: u64 = change
        .field("grace_secs")
        .parse()
        .map_err(|_| AdminError::Invalid(format!("grace: 0 to {MAX_GRACE_SECS} seconds")))?;
    let (secret, _) =
        moderation::rotate_secret(&state.store, &site.id, grace, &change.actor()).await?;
    Ok(credentials(
        &viewer,
        &site,
        "New token secret",
        &[("Token secret", secret.expose())],
        &format!(
            "Sign new tokens with this secret. Tokens signed with the old one work for {grace} s more."
        ),
    ))
}

/// `POST /admin/sites/{site}/rotate-key`: a new API key, shown once; the
/// old one stops working at once.
pub async fn rotate_key(
    State(state): State<AppState>,
    Path(id): Path<String>,
    change: Change,
) -> Result<Markup, AdminError> {
    let viewer = change.viewer();
    let site = managed_site(&state, &change.admin, &id).await?;
    let key = moderation::rotate_key(&state.store, &site.id, &change.actor()).await?;
    Ok(credentials(
        &viewer,
        &site,
        "New API key",
        &[("API key", key.expose())],
        "The old key no longer works. Keep this one: it is shown only now.",
    ))
}

/// `GET /admin/sites/{site}/delete`: asks again, with the site's name to
/// type.
pub async fn confirm_delete(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Markup, AdminError> {
    let site = managed_site(&state, &viewer.admin, &id).await?;
    Ok(page(
        "Delete the site?",
        Some(&viewer),
        &crumbs(&site),
        html! {
            p.problem {
                "This deletes " strong { (site.name) } " with all its rooms, messages, users, files, webhooks, reports and audit log. It cannot be undone."
            }
            form.stack method="post" action={"/admin/sites/" (seg(site.id.as_str())) "/delete"} {
                (csrf(&viewer))
                label { "Type the site's name to confirm" input name="confirm" required autocomplete="off"; }
                button.danger type="submit" { "Delete the site for good" }
            }
        },
    ))
}

/// `POST /admin/sites/{site}/delete`: deletes it when the typed name
/// matches.
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
    change: Change,
) -> Result<Response, AdminError> {
    let site = managed_site(&state, &change.admin, &id).await?;
    if change.field("confirm") != site.name.trim() {
        return Err(AdminError::Invalid(
            "the name typed is not the site's: nothing was deleted".into(),
        ));
    }
    let files = state
        .store
        .remove_site(&site.id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AdminError::NotFound,
            e => AdminError::Store(e),
        })?;
    for file in &files {
        state.files.remove(file).await;
    }
    tracing::info!(site = %site.id, name = %site.name, admin = %change.admin.email, files = files.len(), "site deleted from the admin panel");
    Ok(Redirect::to("/admin/sites").into_response())
}
