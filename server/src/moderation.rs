//! Changes to a site's chat that the HTTP API and the admin panel both
//! make. Each one makes the change, then what must follow it (connections
//! closed, files deleted, the webhook dispatcher woken), then records it
//! in the site's audit log under its actor: `api` for the site's API key,
//! `admin:EMAIL` for an admin, `cli` for the command line.

use crate::state::AppState;
use crate::store::StoreError;
use crate::store::writer::{WriteOp, Written};
use natter_shared::{RoomId, Seq, SiteId, UserId};

/// The longest mute, in seconds (a year).
pub const MAX_MUTE_SECS: u64 = 366 * 24 * 3600;

/// Records a change once made. The change stands whatever happens here: a
/// failure to record it is logged.
pub async fn record(
    state: &AppState,
    site: &SiteId,
    actor: &str,
    action: &str,
    subject: &str,
    detail: Option<&str>,
) {
    let recorded = state
        .store
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
        record(state, site, actor, "message.delete", &subject, None).await;
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
    record(state, site, actor, action, user.as_str(), None).await;
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
            record(state, site, actor, "member.mute", &subject, Some(&detail)).await;
        }
        None => record(state, site, actor, "member.unmute", &subject, None).await,
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
    record(state, site, actor, "webhook.resume", id, None).await;
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
    record(state, site, actor, "report.dismiss", id, None).await;
    Ok(())
}
