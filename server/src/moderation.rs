//! Changes to a site's chat that the HTTP API and the admin panel both
//! make. Each one makes the change, then what must follow it (connections
//! closed, files deleted, the webhook dispatcher woken), then records it
//! in the site's audit log under its actor: `api` for the site's API key,
//! `admin:EMAIL` for an admin, `cli` for the command line.

use crate::state::AppState;
use crate::store::writer::{WriteOp, Written};
use crate::store::{Store, StoreError};
use natter_shared::{RoomId, Seq, SiteId, UserId};

/// The longest mute, in seconds (a year).
pub const MAX_MUTE_SECS: u64 = 366 * 24 * 3600;

/// Records a change once made. The change stands whatever happens here: a
/// failure to record it is logged.
pub async fn record(
    store: &Store,
    site: &SiteId,
    actor: &str,
    action: &str,
    subject: &str,
    detail: Option<&str>,
) {
    let recorded = store
        .record_audit(site, actor, action, subject, detail)
        .await;
    if let Err(err) = recorded {
        tracing::error!(site = %site, actor, action, subject, error = %err, "could not record an audit entry");
    }
}

/// Deletes a message for everyone: a `message_deleted` tombstone goes to
/// the room, and the message's files are deleted.
pub async fn delete_message(
    state: &AppState,
    site: &SiteId,
    room: &RoomId,
    seq: Seq,
    actor: &str,
) -> Result<Written, StoreError> {
    let op = WriteOp::Delete {
        site: site.clone(),
        room: room.clone(),
        seq,
    };
    let written = state.writer.write(op).await?;
    if !written.duplicate {
        let subject = format!("{room}/{seq}");
        record(&state.store, site, actor, "message.delete", &subject, None).await;
    }
    for file in &written.freed {
        state.files.remove(&file.id).await;
        if let Err(err) = state.store.delete_file(&file.id).await {
            tracing::warn!(file = %file.id, error = %err, "a deleted message's file row stayed");
        }
    }
    Ok(written)
}

/// Bans a user from a site (their connections on every node close at
/// once, their tokens no longer connect) or lifts the ban.
pub async fn set_ban(
    state: &AppState,
    site: &SiteId,
    user: &UserId,
    banned: bool,
    actor: &str,
) -> Result<(), StoreError> {
    state.store.set_banned(site, user, banned).await?;
    let action = if banned {
        state.broker.ban(site, user);
        "user.ban"
    } else {
        "user.unban"
    };
    record(&state.store, site, actor, action, user.as_str(), None).await;
    tracing::info!(site = %site, %user, banned, actor, "ban changed");
    Ok(())
}

/// Mutes a member of a room for `secs` (1 to [`MAX_MUTE_SECS`]); returns
/// until when (ms since the Unix epoch). `None` lifts the mute.
pub async fn set_mute(
    state: &AppState,
    site: &SiteId,
    room: &RoomId,
    user: &UserId,
    secs: Option<u64>,
    actor: &str,
) -> Result<Option<i64>, StoreError> {
    let until = match secs {
        Some(secs) => {
            let secs = i64::try_from(secs)
                .ok()
                .filter(|s| (1..=MAX_MUTE_SECS as i64).contains(s))
                .ok_or_else(|| {
                    StoreError::Invalid(format!("secs: 1 to {MAX_MUTE_SECS} (a year)"))
                })?;
            Some(crate::store::now_ms().saturating_add(secs.saturating_mul(1000)))
        }
        None => None,
    };
    state.store.set_muted(site, room, user, until).await?;
    let subject = format!("{room}/{user}");
    match until {
        Some(until) => {
            let detail = format!("until {until}");
            record(
                &state.store,
                site,
                actor,
                "member.mute",
                &subject,
                Some(&detail),
            )
            .await;
        }
        None => record(&state.store, site, actor, "member.unmute", &subject, None).await,
    }
    tracing::info!(site = %site, room = %room, user = %user, until, actor, "mute changed");
    Ok(until)
}

/// Resumes a paused webhook endpoint: what queued meanwhile is sent.
pub async fn resume_webhook(
    state: &AppState,
    site: &SiteId,
    id: &str,
    actor: &str,
) -> Result<natter_shared::webhooks::Webhook, StoreError> {
    let webhook = state.store.resume_webhook(site, id).await?;
    record(&state.store, site, actor, "webhook.resume", id, None).await;
    state.webhooks.wake();
    Ok(webhook)
}

/// Dismisses a report: it leaves the list, the message stays.
pub async fn dismiss_report(
    state: &AppState,
    site: &SiteId,
    id: &str,
    actor: &str,
) -> Result<(), StoreError> {
    state.store.dismiss_report(site, id).await?;
    record(&state.store, site, actor, "report.dismiss", id, None).await;
    Ok(())
}

/// The longest grace the old token secret may get: 30 days.
pub const MAX_GRACE_SECS: u64 = 30 * 24 * 3600;

/// The longest site name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Most origins a site may list.
pub const MAX_ORIGINS: usize = 50;

/// `scheme://host[:port]`, the origin `text` names; an error says why not.
pub fn parse_origin(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("{text:?} is not a URL: {e}"))?;
    let has_path = url.path() != "/" && !url.path().is_empty();
    if !matches!(url.scheme(), "http" | "https")
        || url.host_str().is_none()
        || has_path
        || url.query().is_some()
        || !url.username().is_empty()
    {
        return Err(format!(
            "{text:?} is not an origin: give https://host or http://host:port, nothing after"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// A site's origins, checked and normalized, each once; at least one.
pub fn parse_origins<'a>(
    list: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<String>, StoreError> {
    let mut origins = Vec::new();
    for text in list.into_iter().map(str::trim).filter(|l| !l.is_empty()) {
        let origin = parse_origin(text).map_err(StoreError::Invalid)?;
        if !origins.contains(&origin) {
            origins.push(origin);
        }
    }
    if origins.is_empty() {
        return Err(StoreError::Invalid(
            "give at least one origin allowed to embed the widget".into(),
        ));
    }
    if origins.len() > MAX_ORIGINS {
        return Err(StoreError::Invalid(format!(
            "at most {MAX_ORIGINS} origins"
        )));
    }
    Ok(origins)
}

/// A site's name, trimmed: 1 to [`MAX_NAME_CHARS`] characters.
pub fn parse_name(text: &str) -> Result<&str, StoreError> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(StoreError::Invalid(format!(
            "a site's name is 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name)
}

/// Renames a site.
pub async fn rename_site(
    state: &AppState,
    site: &SiteId,
    name: &str,
    actor: &str,
) -> Result<(), StoreError> {
    change_site(state, site, Some(name), None::<[&str; 0]>, actor).await
}

/// Replaces the origins allowed to embed a site's widget.
pub async fn set_origins<'a>(
    state: &AppState,
    site: &SiteId,
    origins: impl IntoIterator<Item = &'a str>,
    actor: &str,
) -> Result<(), StoreError> {
    change_site(state, site, None, Some(origins), actor).await
}

/// Renames a site and/or replaces its origins: both are checked, then
/// made in one transaction, then each is put on the audit log.
pub async fn change_site<'a>(
    state: &AppState,
    site: &SiteId,
    name: Option<&str>,
    origins: Option<impl IntoIterator<Item = &'a str>>,
    actor: &str,
) -> Result<(), StoreError> {
    let name = name.map(parse_name).transpose()?;
    let origins = origins.map(parse_origins).transpose()?;
    state
        .store
        .change_site(site, name, origins.as_deref())
        .await?;
    if let Some(name) = name {
        record(
            &state.store,
            site,
            actor,
            "site.rename",
            site.as_str(),
            Some(name),
        )
        .await;
    }
    if let Some(origins) = origins {
        let detail = origins.join(" ");
        record(
            &state.store,
            site,
            actor,
            "site.origins",
            site.as_str(),
            Some(&detail),
        )
        .await;
    }
    Ok(())
}

/// Replaces a site's token secret; the old one verifies tokens for
/// `grace_secs` more (up to [`MAX_GRACE_SECS`]). Returns the new secret
/// and until when (Unix seconds) the old one works.
pub async fn rotate_secret(
    store: &Store,
    site: &SiteId,
    grace_secs: u64,
    actor: &str,
) -> Result<(crate::auth::Secret, i64), StoreError> {
    if grace_secs > MAX_GRACE_SECS {
        return Err(StoreError::Invalid(format!(
            "grace_secs: 0 to {MAX_GRACE_SECS} (30 days)"
        )));
    }
    let until = crate::store::now_ms() / 1000 + grace_secs as i64;
    let secret = store.rotate_token_secret(site, until).await?;
    let detail = format!("the old secret works for {grace_secs} s more");
    record(
        store,
        site,
        actor,
        "site.rotate_secret",
        site.as_str(),
        Some(&detail),
    )
    .await;
    Ok((secret, until))
}

/// Replaces a site's API key; the old one stops working at once.
pub async fn rotate_key(
    store: &Store,
    site: &SiteId,
    actor: &str,
) -> Result<crate::auth::Secret, StoreError> {
    let key = store.rotate_api_key(site).await?;
    record(store, site, actor, "site.rotate_key", site.as_str(), None).await;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized_or_refused() {
        assert_eq!(
            parse_origin("https://Example.com").as_deref(),
            Ok("https://example.com")
        );
        assert_eq!(
            parse_origin("http://localhost:8080/").as_deref(),
            Ok("http://localhost:8080")
        );
        assert!(parse_origin("https://example.com/path").is_err());
        assert!(parse_origin("ftp://example.com").is_err());
        assert!(parse_origin("example.com").is_err());
        assert_eq!(
            parse_origins(["https://a.example", " https://a.example/ ", ""]).ok(),
            Some(vec!["https://a.example".to_string()])
        );
        assert!(parse_origins(["", " "]).is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Shop ").ok(), Some("Shop"));
        assert!(parse_name("   ").is_err());
        assert!(parse_name(&"x".repeat(MAX_NAME_CHARS + 1)).is_err());
    }
}
