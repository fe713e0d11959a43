//! Reading a room's events by seq: catch-up after a cursor, history
//! before one, and pages of either that say whether more follow. Writing
//! them is the [`super::writer`]'s job.

use super::rows::{event_columns, event_from_row};
use super::{Store, StoreError, seq_to_db};
use natter_shared::api::EventPage;
use natter_shared::{Event, RoomId, Seq};

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
