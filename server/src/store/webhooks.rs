//! A site's webhook endpoints, their outbox and their delivery log. The
//! writer queues new events for them in the events' own transaction (see
//! `writer::statements`); new rooms are queued here, in the room's. The
//! delivery itself is [`crate::webhooks`]'s.

use super::{Store, StoreError, new_id, now_ms};
use crate::store::rows::seq_from_db;
use natter_shared::webhooks::{Webhook, WebhookAttempt, WebhookStatus, WebhookType};
use natter_shared::{RoomId, Seq, SiteId};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

/// An endpoint as the dispatcher needs it.
#[derive(Debug, Clone)]
pub struct Target {
    pub site: SiteId,
    pub url: String,
    pub secret: String,
    pub paused: bool,
}

/// One event waiting for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    pub id: i64,
    pub room: RoomId,
    /// 0 for `room.created`.
    pub seq: Seq,
    pub kind: WebhookType,
    pub attempts: i64,
    /// When it first failed, if it has.
    pub first_failed_at: Option<i64>,
    /// The report a `message.reported` is about.
    pub report: Option<String>,
}

/// What became of one delivery attempt.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub queued: Queued,
    /// The `webhook-id` it was sent with.
    pub message_id: String,
    /// The HTTP status the endpoint answered, if it did.
    pub status: Option<u16>,
    /// Why it failed, when no status says it.
    pub error: Option<String>,
    pub duration_ms: u64,
    /// `None`: delivered. Otherwise when to try again (ms).
    pub retry_at: Option<i64>,
}

/// How many of the latest attempts (of all endpoints) the log keeps.
const ATTEMPTS_KEPT: i64 = 1000;

const WEBHOOK_COLUMNS: &str = "w.id, w.url, w.secret, w.events, w.created_at, w.paused_at, \
     (SELECT COUNT(*) FROM webhook_outbox o WHERE o.webhook_id = w.id) AS pending";

fn webhook_from_row(row: &AnyRow) -> Result<Webhook, StoreError> {
    let paused_at: Option<i64> = row.try_get("paused_at")?;
    Ok(Webhook {
        id: row.try_get("id")?,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        events: WebhookType::from_mask(row.try_get("events")?),
        status: if paused_at.is_some() {
            WebhookStatus::Paused
        } else {
            WebhookStatus::Active
        },
        created_at: row.try_get("created_at")?,
        paused_at,
        pending: u64::try_from(row.try_get::<i64, _>("pending")?).unwrap_or(0),
    })
}

/// The `type` column: a [`WebhookType`]'s bit.
fn type_column(row: &AnyRow) -> Result<WebhookType, StoreError> {
    let bit: i64 = row.try_get("type")?;
    WebhookType::from_bit(bit).ok_or_else(|| StoreError::Corrupt(format!("webhook type {bit}")))
}

/// Queues a new room for the site's webhooks that want `room.created`,
/// inside the room's transaction.
pub(super) async fn queue_room_created(
    tx: &mut Transaction<'_, Any>,
    site: &SiteId,
    room: &RoomId,
    now: i64,
) -> Result<(), StoreError> {
    let bit = WebhookType::RoomCreated.bit();
    sqlx::query(
        "INSERT INTO webhook_outbox (webhook_id, room_id, seq, type, created_at) \
         SELECT id, ?, 0, ?, ? FROM webhooks WHERE site_id = ? AND (events & ?) <> 0",
    )
    .bind(room.as_str())
    .bind(bit)
    .bind(now)
    .bind(site.as_str())
    .bind(bit)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Adds an endpoint to a site.
    pub async fn create_webhook(
        &self,
        site: &SiteId,
        url: &str,
        events: &[WebhookType],
        secret: &str,
        max: usize,
    ) -> Result<Webhook, StoreError> {
        let id: String = new_id("wh")?;
        let mut tx = self.pool.begin().await?;
        // Two endpoints added at once are counted one after the other.
        super::sites::lock_site(&mut tx, site).await?;
        let row = sqlx::query("SELECT COUNT(*) AS n FROM webhooks WHERE site_id = ?")
            .bind(site.as_str())
            .fetch_one(&mut *tx)
            .await?;
        if usize::try_from(row.try_get::<i64, _>("n")?).unwrap_or(usize::MAX) >= max {
            return Err(StoreError::Invalid(format!(
                "a site has at most {max} webhook endpoints"
            )));
        }
        sqlx::query(
            "INSERT INTO webhooks (id, site_id, url, secret, events, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(site.as_str())
        .bind(url)
        .bind(secret)
        .bind(WebhookType::mask(events))
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.webhook(site, &id).await?.ok_or(StoreError::NotFound)
    }

    /// A site's endpoints, oldest first.
    pub async fn webhooks(&self, site: &SiteId) -> Result<Vec<Webhook>, StoreError> {
        let sql = format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.site_id = ? ORDER BY w.created_at, w.id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(site.as_str())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(webhook_from_row)
            .collect()
    }

    /// One endpoint of a site.
    pub async fn webhook(&self, site: &SiteId, id: &str) -> Result<Option<Webhook>, StoreError> {
        let sql =
            format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks w WHERE w.site_id = ? AND w.id = ?");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(site.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(webhook_from_row)
            .transpose()
    }

    /// Changes an endpoint's URL and/or types; `NotFound` if the site has
    /// no such endpoint.
    pub async fn update_webhook(
        &self,
        site: &SiteId,
        id: &str,
        url: Option<&str>,
        events: Option<&[WebhookType]>,
    ) -> Result<Webhook, StoreError> {
        // MySQL counts only rows that changed: the lookup after says
        // whether the endpoint exists.
        sqlx::query(
            "UPDATE webhooks SET url = COALESCE(?, url), events = COALESCE(?, events) \
             WHERE site_id = ? AND id = ?",
        )
        .bind(url)
        .bind(events.map(WebhookType::mask))
        .bind(site.as_str())
        .bind(id)
        .execute(&self.pool)
        .await?;
        self.webhook(site, id).await?.ok_or(StoreError::NotFound)
    }

    /// Deletes an endpoint with what waits for it and its log.
    pub async fn delete_webhook(&self, site: &SiteId, id: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("DELETE FROM webhooks WHERE site_id = ? AND id = ?")
            .bind(site.as_str())
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        for sql in [
            "DELETE FROM webhook_outbox WHERE webhook_id = ?",
            "DELETE FROM webhook_attempts WHERE webhook_id = ?",
        ] {
            sqlx::query(sql).bind(id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Resumes a paused endpoint: everything that waits for it is tried
    /// again at once, from its first retry on.
    pub async fn resume_webhook(&self, site: &SiteId, id: &str) -> Result<Webhook, StoreError> {
        let mut tx = self.pool.begin().await?;
        let found = sqlx::query("SELECT id FROM webhooks WHERE site_id = ? AND id = ?")
            .bind(site.as_str())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query("UPDATE webhooks SET paused_at = NULL WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE webhook_outbox SET attempts = 0, next_at = 0, first_failed_at = NULL \
             WHERE webhook_id = ?",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.webhook(site, id).await?.ok_or(StoreError::NotFound)
    }

    /// An endpoint's latest attempts, newest first.
    pub async fn webhook_attempts(
        &self,
        site: &SiteId,
        id: &str,
        limit: u32,
    ) -> Result<Vec<WebhookAttempt>, StoreError> {
        let exists = sqlx::query("SELECT 1 FROM webhooks WHERE site_id = ? AND id = ?")
            .bind(site.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        let rows = sqlx::query(
            "SELECT message_id, type, at, status, error, ok, duration_ms FROM webhook_attempts \
             WHERE webhook_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WebhookAttempt {
                    message_id: row.try_get("message_id")?,
                    kind: type_column(row)?,
                    at: row.try_get("at")?,
                    status: row
                        .try_get::<Option<i64>, _>("status")?
                        .and_then(|s| u16::try_from(s).ok()),
                    error: row.try_get("error")?,
                    ok: row.try_get::<i64, _>("ok")? != 0,
                    duration_ms: u64::try_from(row.try_get::<i64, _>("duration_ms")?).unwrap_or(0),
                })
            })
            .collect()
    }

    /// Endpoints with something to deliver, not paused and not leased by
    /// another node (or whose lease ran out).
    pub async fn webhooks_with_work(&self, owner: &str) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT w.id FROM webhooks w WHERE w.paused_at IS NULL \
             AND (w.lease_until < ? OR w.lease_owner = ?) \
             AND EXISTS (SELECT 1 FROM webhook_outbox o WHERE o.webhook_id = w.id)",
        )
        .bind(now_ms())
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| row.try_get("id").map_err(StoreError::from))
            .collect()
    }

    /// Takes or renews the endpoint's lease until `until` (ms); false when
    /// another node holds it.
    pub async fn lease_webhook(
        &self,
        id: &str,
        owner: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhooks SET lease_owner = ?, lease_until = ? \
             WHERE id = ? AND paused_at IS NULL AND (lease_owner = ? OR lease_until < ?)",
        )
        .bind(owner)
        .bind(until)
        .bind(id)
        .bind(owner)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives the lease back, so another node may take it at once.
    pub async fn release_webhook(&self, id: &str, owner: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhooks SET lease_owner = NULL, lease_until = 0 WHERE id = ? AND lease_owner = ?",
        )
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Where and how to deliver an endpoint's events.
    pub async fn webhook_target(&self, id: &str) -> Result<Option<Target>, StoreError> {
        let row = sqlx::query("SELECT site_id, url, secret, paused_at FROM webhooks WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Target {
            site: super::rows::parse_id(SiteId::parse, row.try_get::<String, _>("site_id")?)?,
            url: row.try_get("url")?,
            secret: row.try_get("secret")?,
            paused: row.try_get::<Option<i64>, _>("paused_at")?.is_some(),
        }))
    }

    /// What may go out now: of each room, its oldest waiting event, if
    /// its retry time has come; oldest first.
    pub async fn webhook_heads(&self, id: &str, limit: u32) -> Result<Vec<Queued>, StoreError> {
        let rows = sqlx::query(
            "SELECT o.id, o.room_id, o.seq, o.type, o.attempts, o.first_failed_at, o.report_id \
             FROM webhook_outbox o WHERE o.webhook_id = ? AND o.next_at <= ? \
             AND NOT EXISTS (SELECT 1 FROM webhook_outbox p \
                 WHERE p.webhook_id = o.webhook_id AND p.room_id = o.room_id AND p.id < o.id) \
             ORDER BY o.id LIMIT ?",
        )
        .bind(id)
        .bind(now_ms())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Queued {
                    id: row.try_get("id")?,
                    room: super::rows::parse_id(
                        RoomId::parse,
                        row.try_get::<String, _>("room_id")?,
                    )?,
                    seq: seq_from_db(row.try_get("seq")?)?,
                    kind: type_column(row)?,
                    attempts: row.try_get("attempts")?,
                    first_failed_at: row.try_get("first_failed_at")?,
                    report: row.try_get("report_id")?,
                })
            })
            .collect()
    }

    /// When the endpoint's next retry is due (ms), if anything waits.
    pub async fn webhook_next_due(&self, id: &str) -> Result<Option<i64>, StoreError> {
        let row =
            sqlx::query("SELECT MIN(next_at) AS due FROM webhook_outbox WHERE webhook_id = ?")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get("due")?)
    }

    /// Records a round of attempts in one transaction: each is logged; a
    /// delivered event leaves the outbox, a failed one waits for its
    /// retry. Now and then the endpoint's attempts older than the last
    /// [`ATTEMPTS_KEPT`] logged (of any endpoint) are dropped.
    pub async fn settle_webhook(
        &self,
        webhook: &str,
        outcomes: &[Outcome],
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut last_logged = 0;
        let mut prune = false;
        for outcome in outcomes {
            let logged = sqlx::query(
                "INSERT INTO webhook_attempts \
                 (webhook_id, message_id, type, at, status, error, ok, duration_ms) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(webhook)
            .bind(outcome.message_id.as_str())
            .bind(outcome.queued.kind.bit())
            .bind(now)
            .bind(outcome.status.map(i64::from))
            .bind(outcome.error.as_deref())
            .bind(i64::from(outcome.retry_at.is_none()))
            .bind(i64::try_from(outcome.duration_ms).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
            if let Some(id) = logged.last_insert_id() {
                last_logged = id;
                prune |= id % 64 == 0;
            }
            match outcome.retry_at {
                None => {
                    sqlx::query("DELETE FROM webhook_outbox WHERE id = ?")
                        .bind(outcome.queued.id)
                        .execute(&mut *tx)
                        .await?;
                }
                Some(at) => {
                    sqlx::query(
                        "UPDATE webhook_outbox SET attempts = attempts + 1, next_at = ?, \
                         first_failed_at = COALESCE(first_failed_at, ?) WHERE id = ?",
                    )
                    .bind(at)
                    .bind(now)
                    .bind(outcome.queued.id)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        if prune {
            sqlx::query("DELETE FROM webhook_attempts WHERE webhook_id = ? AND id <= ?")
                .bind(webhook)
                .bind(last_logged - ATTEMPTS_KEPT)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Pauses an endpoint that kept failing, and gives its lease back.
    pub async fn pause_webhook(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE webhooks SET paused_at = ?, lease_owner = NULL, lease_until = 0 WHERE id = ?",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
