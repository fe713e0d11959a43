//! Pages of events in their wire form. Catch-up and history move many
//! rows: on SQLite each row is written as JSON straight from the
//! database's columns, on the thread that read it, with no [`Event`] (and
//! no copy of its strings) in between. The JSON is the same as the
//! [`Event`]'s own (a test holds them equal); MySQL's rows still become
//! events first, then JSON.

use super::StoreError;
use super::rows::seq_from_db;
use natter_shared::{Attachment, ClientId, Event, RoomId, Seq};
use serde::Serialize;
use std::borrow::Cow;

/// A page of a room's events as JSON, ascending, and whether more lie
/// beyond it in the direction it was read.
#[derive(Debug, Clone, Default)]
pub struct JsonPage {
    /// Each event's JSON, each preceded by a comma (UTF-8: serde_json
    /// writes nothing else).
    elements: Vec<u8>,
    /// Where each event starts in `elements` (at its comma), its seq and
    /// time.
    items: Vec<(usize, Seq, i64)>,
    pub more: bool,
}

impl JsonPage {
    pub(super) fn with_capacity(events: usize) -> JsonPage {
        JsonPage {
            elements: Vec::with_capacity(events * 160),
            items: Vec::with_capacity(events),
            more: false,
        }
    }

    /// A page of events read as [`Event`]s.
    pub(super) fn from_events(events: &[Event], more: bool) -> Result<JsonPage, StoreError> {
        let mut page = JsonPage::with_capacity(events.len());
        for event in events {
            page.push(event.seq, event.ts, event)?;
        }
        page.more = more;
        Ok(page)
    }

    fn push(&mut self, seq: Seq, ts: i64, event: &impl Serialize) -> Result<(), StoreError> {
        let start = self.elements.len();
        self.elements.push(b',');
        if let Err(e) = serde_json::to_writer(&mut self.elements, event) {
            self.elements.truncate(start);
            return Err(StoreError::Corrupt(format!("an event as JSON: {e}")));
        }
        self.items.push((start, seq, ts));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The seq and time of the first (oldest) event.
    pub fn first(&self) -> Option<(Seq, i64)> {
        self.items.first().map(|&(_, seq, ts)| (seq, ts))
    }

    /// The seq of the last (newest) event.
    pub fn last_seq(&self) -> Option<Seq> {
        self.items.last().map(|&(_, seq, _)| seq)
    }

    /// Leaves the first event out.
    pub fn drop_first(&mut self) {
        if self.items.is_empty() {
            return;
        }
        self.items.remove(0);
        let cut = self.items.first().map_or(self.elements.len(), |i| i.0);
        self.elements.drain(..cut);
        for item in &mut self.items {
            item.0 -= cut;
        }
    }

    /// Turns the events' order around (a page read newest first).
    pub(super) fn reverse(&mut self) {
        let mut elements = Vec::with_capacity(self.elements.len());
        let mut items = Vec::with_capacity(self.items.len());
        let mut end = self.elements.len();
        for &(start, seq, ts) in self.items.iter().rev() {
            items.push((elements.len(), seq, ts));
            elements.extend_from_slice(self.elements.get(start..end).unwrap_or_default());
            end = start;
        }
        self.elements = elements;
        self.items = items;
    }

    /// Leaves the last event out.
    pub(super) fn drop_last(&mut self) {
        if let Some((start, _, _)) = self.items.pop() {
            self.elements.truncate(start);
        }
    }

    /// The frame that carries the page to a client, as the protocol's
    /// `page` (`kind` "page", with `reset`) or `history` frame writes it:
    /// `{"type":kind,"room":…,"events":[…],"more":…}`.
    pub fn frame(&self, kind: &str, room: &RoomId, reset: bool) -> Result<String, StoreError> {
        let room = serde_json::to_string(room)
            .map_err(|e| StoreError::Corrupt(format!("a room id as JSON: {e}")))?;
        let mut frame = Vec::with_capacity(self.elements.len() + room.len() + kind.len() + 64);
        frame.extend_from_slice(br#"{"type":""#);
        frame.extend_from_slice(kind.as_bytes());
        frame.extend_from_slice(br#"","room":"#);
        frame.extend_from_slice(room.as_bytes());
        frame.extend_from_slice(br#","events":["#);
        frame.extend_from_slice(self.elements.get(1..).unwrap_or_default());
        frame.extend_from_slice(if self.more {
            br#"],"more":true"#.as_slice()
        } else {
            br#"],"more":false"#.as_slice()
        });
        if reset {
            frame.extend_from_slice(br#","reset":true"#);
        }
        frame.push(b'}');
        String::from_utf8(frame).map_err(|_| StoreError::Corrupt("a page that is not UTF-8".into()))
    }
}

/// An event's JSON written from its columns: the fields of every kind,
/// each present only where its kind has it, in the order [`Event`]
/// writes them.
#[derive(Serialize)]
struct Wire<'a> {
    room: &'a str,
    seq: Seq,
    ts: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender: Option<&'a str>,
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<Attachment>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<Seq>,
}

/// An event's columns, borrowed from the row that holds them, in
/// [`super::rows::event_columns!`] order.
pub(super) struct Columns<'a> {
    pub room_id: &'a str,
    pub seq: i64,
    pub ts: i64,
    pub kind: &'a str,
    pub sender: Option<&'a str>,
    pub client_id: Option<&'a str>,
    pub body: Option<&'a str>,
    pub subject: Option<&'a str>,
    pub files: Option<&'a str>,
}

impl JsonPage {
    /// Adds an event from its columns; the same checks as reading it as an
    /// [`Event`], where they cost nothing.
    pub(super) fn push_columns(&mut self, c: Columns<'_>) -> Result<(), StoreError> {
        let seq = seq_from_db(c.seq)?;
        let mut wire = Wire {
            room: c.room_id,
            seq,
            ts: c.ts,
            sender: c.sender,
            kind: c.kind,
            body: None,
            client_id: None,
            files: None,
            user: None,
            target: None,
        };
        let subject = || {
            c.subject
                .filter(|s| !s.is_empty())
                .ok_or_else(|| StoreError::Corrupt(format!("a {} without its user", c.kind)))
        };
        match c.kind {
            "message" => {
                wire.body = Some(c.body.unwrap_or_default());
                wire.client_id = c.client_id.map(client_id).transpose()?;
                wire.files = match c.files {
                    Some(json) => Some(
                        serde_json::from_str::<Vec<Attachment>>(json)
                            .map_err(|e| StoreError::Corrupt(format!("attachments: {e}")))?,
                    )
                    .filter(|files| !files.is_empty()),
                    None => None,
                };
            }
            "member_joined" | "member_left" => wire.user = Some(subject()?),
            "deleted" => wire.client_id = c.client_id.map(client_id).transpose()?,
            "message_deleted" => {
                wire.target =
                    Some(c.body.and_then(|b| b.trim().parse().ok()).ok_or_else(|| {
                        StoreError::Corrupt("a tombstone without its target".into())
                    })?);
            }
            other => return Err(StoreError::Corrupt(format!("event kind {other}"))),
        }
        self.push(seq, c.ts, &wire)
    }
}

/// A stored client id as the protocol writes it: as stored when it is
/// already in that form (the writer stores it so), else parsed and
/// written anew.
fn client_id(stored: &str) -> Result<Cow<'_, str>, StoreError> {
    let canonical = stored.len() == 36
        && stored.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        });
    if canonical {
        return Ok(Cow::Borrowed(stored));
    }
    let id = ClientId::parse(stored).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Cow::Owned(String::from(id)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::rows::{EventColumns, event_from_columns};
    use natter_shared::{FileId, ServerFrame};

    /// Columns as a row holds them, owned.
    struct Row {
        kind: &'static str,
        sender: Option<&'static str>,
        client_id: Option<String>,
        body: Option<String>,
        subject: Option<&'static str>,
        files: Option<String>,
    }

    fn row(kind: &'static str) -> Row {
        Row {
            kind,
            sender: Some("alice"),
            client_id: None,
            body: None,
            subject: None,
            files: None,
        }
    }

    fn rows() -> Vec<Row> {
        let files = vec![Attachment {
            id: FileId::parse("f_1").expect("a file id"),
            name: "a \"quoted\" <name>.png".into(),
            size: 42,
            mime: "image/png".into(),
            width: Some(3),
            height: Some(2),
            thumb: true,
        }];
        let id = ClientId::parse("0192d3a4-5b6c-7d8e-9f01-23456789abcd").expect("an id");
        vec![
            Row {
                body: Some("hi \u{1F600} \"there\"\n\\ </script>".into()),
                client_id: Some(id.to_string()),
                ..row("message")
            },
            // The same id as a client may have written it.
            Row {
                body: Some("upper".into()),
                client_id: Some(id.to_string().to_uppercase()),
                ..row("message")
            },
            Row {
                body: Some("with files".into()),
                files: Some(serde_json::to_string(&files).expect("JSON")),
                ..row("message")
            },
            Row {
                files: Some("[]".into()),
                ..row("message")
            },
            Row {
                sender: None,
                body: Some("from the site".into()),
                ..row("message")
            },
            Row {
                subject: Some("bob"),
                ..row("member_joined")
            },
            Row {
                subject: Some("bob"),
                sender: None,
                ..row("member_left")
            },
            Row {
                client_id: Some(id.to_string()),
                ..row("deleted")
            },
            Row {
                body: Some("3".into()),
                sender: None,
                ..row("message_deleted")
            },
        ]
    }

    fn columns(r: &Row, seq: i64) -> Columns<'_> {
        Columns {
            room_id: "r_1",
            seq,
            ts: 1_700_000_000_000 + seq,
            kind: r.kind,
            sender: r.sender,
            client_id: r.client_id.as_deref(),
            body: r.body.as_deref(),
            subject: r.subject,
            files: r.files.as_deref(),
        }
    }

    fn event(r: &Row, seq: i64) -> Event {
        event_from_columns(EventColumns {
            room_id: "r_1".into(),
            seq,
            ts: 1_700_000_000_000 + seq,
            kind: r.kind.into(),
            sender: r.sender.map(Into::into),
            client_id: r.client_id.clone(),
            body: r.body.clone(),
            subject: r.subject.map(Into::into),
            files: r.files.clone(),
        })
        .expect("a valid event")
    }

    #[test]
    fn columns_are_written_as_their_event_would_be() {
        let rows = rows();
        let room = RoomId::parse("r_1").expect("a room id");
        let mut page = JsonPage::default();
        let mut events = Vec::new();
        for (i, r) in rows.iter().enumerate() {
            let seq = i as i64 + 1;
            page.push_columns(columns(r, seq)).expect("written");
            events.push(event(r, seq));
        }
        page.more = true;
        let expected = serde_json::to_string(&ServerFrame::History {
            room: room.clone(),
            events: events.clone(),
            more: true,
        })
        .expect("JSON");
        assert_eq!(
            page.frame("history", &room, false).expect("a frame"),
            expected
        );
        assert_eq!(
            JsonPage::from_events(&events, true)
                .and_then(|p| p.frame("history", &room, false))
                .expect("a frame"),
            expected
        );

        // Turned around, as a page read newest first is, and back.
        let mut turned = JsonPage::from_events(&events, true).expect("a page");
        turned.reverse();
        let mut reversed = events.clone();
        reversed.reverse();
        assert_eq!(turned.first().map(|f| f.0), Some(rows.len() as Seq));
        let expected_turned = serde_json::to_string(&ServerFrame::History {
            room: room.clone(),
            events: reversed,
            more: true,
        })
        .expect("JSON");
        assert_eq!(
            turned.frame("history", &room, false).expect("a frame"),
            expected_turned
        );
        turned.reverse();
        assert_eq!(
            turned.frame("history", &room, false).expect("a frame"),
            expected
        );

        // Either end left out, as a page read one row too far does.
        page.drop_first();
        page.drop_last();
        page.more = false;
        assert_eq!(page.first(), Some((2, 1_700_000_000_002)));
        assert_eq!(page.last_seq(), Some(rows.len() as Seq - 1));
        let expected = serde_json::to_string(&ServerFrame::Page {
            room: room.clone(),
            events: events[1..events.len() - 1].to_vec(),
            more: false,
            reset: true,
        })
        .expect("JSON");
        assert_eq!(page.frame("page", &room, true).expect("a frame"), expected);
    }

    #[test]
    fn an_empty_page_is_an_empty_array() {
        let room = RoomId::parse("r_1").expect("a room id");
        let mut page = JsonPage::default();
        page.drop_first();
        page.drop_last();
        let expected = serde_json::to_string(&ServerFrame::Page {
            room: room.clone(),
            events: Vec::new(),
            more: false,
            reset: false,
        })
        .expect("JSON");
        assert_eq!(page.frame("page", &room, false).expect("a frame"), expected);
    }

    #[test]
    fn a_corrupt_row_is_an_error() {
        let mut page = JsonPage::default();
        for bad in [
            row("no_such_kind"),
            row("member_joined"),
            Row {
                body: Some("x".into()),
                ..row("message_deleted")
            },
            Row {
                client_id: Some("not an id".into()),
                ..row("message")
            },
            Row {
                files: Some("{".into()),
                ..row("message")
            },
        ] {
            let err = page.push_columns(columns(&bad, 1));
            assert!(matches!(err, Err(StoreError::Corrupt(_))), "{}", bad.kind);
        }
        let err = page.push_columns(columns(&row("message"), -1));
        assert!(matches!(err, Err(StoreError::Corrupt(_))));
    }
}
