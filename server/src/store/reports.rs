//! Messages members report to the site's moderators. A report is kept
//! once per member and message, and queued for the site's
//! `message.reported` webhooks in its own transaction.

use super::rows::{event_columns, event_from_row, parse_id, seq_from_db};
use super::{Store, StoreError, is_unique_violation, new_id, now_ms, seq_to_db};
use natter_shared::api::Report;
use natter_shared::webhooks::WebhookType;
use natter_shared::{EventKind, RoomId, Seq, SiteId, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

fn report_from_row(row: &AnyRow) -> Result<Report, StoreError> {
    Ok(Report {
        id: row.try_get("id")?,
        room: parse_id(RoomId::parse, row.try_get::<String, _>("room_id")?)?,
        seq: seq_from_db(row.try_get("seq")?)?,
        reporter: parse_id(UserId::parse, row.try_get::<String, _>("reporter")?)?,
        note: row.try_get("note")?,
        created_at: row.try_get("created_at")?,
    })
}

const REPORT_COLUMNS: &str = "id, room_id, seq, reporter, note, created_at";

impl Store {
    /// `reporter` reports the message at `seq`: a member of the room, and
    /// someone else's message (`NotMember`, `NotFound`, `Invalid`
    /// otherwise). True when the report is new: a repeat answers the
    /// first report (its note kept) and queues nothing.
    pub async fn report(
        &self,
        site: &SiteId,
        room: &RoomId,
        seq: Seq,
        reporter: &UserId,
        note: Option<&str>,
    ) -> Result<(Report, bool), StoreError> {
        if !self.is_member(site, room, reporter).await? {
            return Err(StoreError::NotMember);
        }
        if let Some(earlier) = self.report_of(room, seq, reporter).await? {
            return Ok((earlier, false));
        }
        let sql = concat!(
            "SELECT ",
            event_columns!(),
            " FROM events WHERE room_id = ? AND seq = ?"
        );
        let row = sqlx::query(sql)
            .bind(room.as_str())
            .bind(seq_to_db(seq))
            .fetch_optional(&self.pool)
            .await?;
        let event = row.as_ref().map(event_from_row).transpose()?;
        let Some(event) = event.filter(|e| matches!(e.kind, EventKind::Message { .. })) else {
            return Err(StoreError::NotFound);
        };
        if event.sender.as_ref().is_none_or(|s| s == reporter) {
            return Err(StoreError::Invalid(
                "only someone else's message can be reported".into(),
            ));
        }
        let report = Report {
            id: new_id("rp")?,
            room: room.clone(),
            seq,
            reporter: reporter.clone(),
            note: note.map(str::to_owned),
            created_at: now_ms(),
        };
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO reports (id, site_id, room_id, seq, reporter, note, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(report.id.as_str())
        .bind(site.as_str())
        .bind(room.as_str())
        .bind(seq_to_db(seq))
        .bind(reporter.as_str())
        .bind(report.note.as_deref())
        .bind(report.created_at)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // The same report, sent twice at once: the first one stands.
            Err(err) if is_unique_violation(&err) => {
                tx.rollback().await?;
                let earlier = self.report_of(room, seq, reporter).await?;
                return earlier.map(|r| (r, false)).ok_or(StoreError::NotFound);
            }
            Err(err) => return Err(err.into()),
        }
        let bit = WebhookType::MessageReported.bit();
        sqlx::query(
            "INSERT INTO webhook_outbox (webhook_id, room_id, seq, type, created_at, report_id) \
             SELECT id, ?, ?, ?, ?, ? FROM webhooks WHERE site_id = ? AND (events & ?) <> 0",
        )
        .bind(room.as_str())
        .bind(seq_to_db(seq))
        .bind(bit)
        .bind(report.created_at)
        .bind(report.id.as_str())
        .bind(site.as_str())
        .bind(bit)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((report, true))
    }

    async fn report_of(
        &self,
        room: &RoomId,
        seq: Seq,
        reporter: &UserId,
    ) -> Result<Option<Report>, StoreError> {
        let sql = format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE room_id = ? AND seq = ? AND reporter = ?"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(room.as_str())
            .bind(seq_to_db(seq))
            .bind(reporter.as_str())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(report_from_row)
            .transpose()
    }

    /// One report of a site.
    pub async fn report_by_id(
        &self,
        site: &SiteId,
        id: &str,
    ) -> Result<Option<Report>, StoreError> {
        let sql = format!("SELECT {REPORT_COLUMNS} FROM reports WHERE site_id = ? AND id = ?");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(site.as_str())
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(report_from_row)
            .transpose()
    }

    /// A site's reports, newest first, before the report `before` (ids
    /// sort by time); one more than `limit` is read to know whether more
    /// follow.
    pub async fn reports(
        &self,
        site: &SiteId,
        before: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<Report>, bool), StoreError> {
        let sql = format!(
            "SELECT {REPORT_COLUMNS} FROM reports WHERE site_id = ? AND id < ? \
             ORDER BY id DESC LIMIT ?"
        );
        // Ids are `rp_` and hex: `rp_~` sorts after every one of them.
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(site.as_str())
            .bind(before.unwrap_or("rp_~"))
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        let mut reports = rows
            .iter()
            .map(report_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let more = reports.len() > limit as usize;
        reports.truncate(limit as usize);
        Ok((reports, more))
    }

    /// Dismisses a report (the moderators dealt with it).
    pub async fn dismiss_report(&self, site: &SiteId, id: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM reports WHERE site_id = ? AND id = ?")
            .bind(site.as_str())
            .bind(id)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }
}
