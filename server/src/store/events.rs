//! Reading a room's events by seq: catch-up after a cursor, history
//! before one, and pages of either that say whether more follow. Writing
//! them is the [`super::writer`]'s job.

use super::pages::JsonPage;
use super::rows::{event_columns, event_from_row};
use super::{Store, StoreError, seq_to_db};
use natter_shared::api::EventPage;
use natter_shared::{Event, RoomId, Seq};

/// Most places [`Store::events_at`] asks for in one query (two bound
/// values each, well within every driver's limit).
const EVENTS_AT_PER_QUERY: usize = 100;

/// Where a page of events starts, exclusive of the seq given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageFrom {
    /// The oldest events after this seq (catch-up).
    After(Seq),
    /// The newest events before this seq (history), still ascending.
    Before(Seq),
}

impl Store {
    /// Up to `limit` events from `from`, ascending, and whether more lie
    /// beyond them in the same direction (one extra row is read to know).
    pub async fn events_page(
        &self,
        room: &RoomId,
        from: PageFrom,
        limit: u32,
    ) -> Result<EventPage, StoreError> {
        let limit = limit.max(1);
        let ask = limit.saturating_add(1);
        let keep = limit as usize;
        let (events, more) = match from {
            PageFrom::After(after) => {
                let mut events = self.events_after(room, after, ask).await?;
                let more = events.len() > keep;
                events.truncate(keep);
                (events, more)
            }
            PageFrom::Before(before) => {
                let mut events = self.events_before(room, before, ask).await?;
                let more = events.len() > keep;
                if more {
                    // Ascending: the extra row is the oldest, at the front.
                    events.drain(..events.len() - keep);
                }
                (events, more)
            }
        };
        Ok(EventPage { events, more })
    }

    /// [`Store::events_page`] in its wire form: on SQLite written as JSON
    /// straight from the rows.
    pub async fn events_page_json(
        &self,
        room: &RoomId,
        from: PageFrom,
        limit: u32,
    ) -> Result<JsonPage, StoreError> {
        let limit = limit.max(1);
        if let Some(reader) = &self.reader {
            return reader.page_json(room, from, limit).await;
        }
        let page = self.events_page(room, from, limit).await?;
        JsonPage::from_events(&page.events, page.more)
    }

    /// Up to `limit` events with seq > `after`, ascending.
    pub async fn events_after(
        &self,
        room: &RoomId,
        after: Seq,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        if let Some(reader) = &self.reader {
            return reader.events(room, after, true, limit).await;
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            event_columns!(),
            " FROM events \
             WHERE room_id = ? AND seq > ? ORDER BY seq ASC LIMIT ?"
        ))
        .bind(room.as_str())
        .bind(seq_to_db(after))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The events at these places (room, seq), in one query; a place
    /// without an event is left out. In no particular order.
    pub async fn events_at(&self, places: &[(RoomId, Seq)]) -> Result<Vec<Event>, StoreError> {
        let mut events = Vec::with_capacity(places.len());
        for chunk in places.chunks(EVENTS_AT_PER_QUERY) {
            // Only placeholders are formatted in; the values are bound.
            let sql = format!(
                "SELECT {} FROM events WHERE {}",
                event_columns!(),
                vec!["(room_id = ? AND seq = ?)"; chunk.len()].join(" OR ")
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (room, seq) in chunk {
                query = query.bind(room.as_str()).bind(seq_to_db(*seq));
            }
            let rows = query.fetch_all(&self.pool).await?;
            for row in &rows {
                events.push(event_from_row(row)?);
            }
        }
        Ok(events)
    }

    /// Up to `limit` events with seq < `before`, returned ascending (the
    /// newest `limit` of them).
    pub async fn events_before(
        &self,
        room: &RoomId,
        before: Seq,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        let mut events = match &self.reader {
            Some(reader) => reader.events(room, before, false, limit).await?,
            None => {
                let rows = sqlx::query(concat!(
                    "SELECT ",
                    event_columns!(),
                    " FROM events \
                     WHERE room_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?"
                ))
                .bind(room.as_str())
                .bind(seq_to_db(before))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(event_from_row)
                    .collect::<Result<Vec<_>, _>>()?
            }
        };
        events.reverse();
        Ok(events)
    }
}
