//! Property-based fuzzing of everything one side reads from the other:
//! client frames (the server), server frames, events and cursors (the
//! widget) and the widget page's query.
//! Whatever comes in, the answer is a value or an error, never a panic;
//! what decodes encodes back to the same value.
//!
//! The inputs are JSON documents built from the protocol's own field
//! names and tags (so most reach deep into the decoders), raw text, and
//! mangled valid frames. `PROPTEST_CASES` raises the count for a longer
//! run; a failure proptest finds is kept in `proptest-regressions/` and
//! replayed first from then on.

use natter_shared::{ClientFrame, Cursor, Event, ServerFrame, query};
use proptest::prelude::*;
use serde_json::{Map, Value};

/// Field names and tags of the protocol, and a few hostile strings.
const WORDS: &[&str] = &[
    "type",
    "auth",
    "token",
    "sync",
    "cursors",
    "send",
    "client_id",
    "room",
    "body",
    "files",
    "history",
    "before",
    "limit",
    "typing",
    "read",
    "seq",
    "ping",
    "nonce",
    "ts",
    "hello",
    "protocol",
    "site",
    "user",
    "name",
    "limits",
    "rooms",
    "page",
    "events",
    "more",
    "reset",
    "synced",
    "event",
    "ack",
    "resync",
    "reason",
    "error",
    "code",
    "message",
    "retry_after_ms",
    "pong",
    "presence",
    "users",
    "online",
    "last_seen",
    "kind",
    "message",
    "member_joined",
    "member_left",
    "sender",
    "id",
    "size",
    "width",
    "height",
    "thumb",
    "not_member",
    "too_many_requests",
    "r1",
    "alice",
    "019ac931-94e5-7473-9e3a-265e16eee03f",
    "",
    " ",
    "\u{0}",
    "\u{202e}",
    "é",
    "💬",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(str::to_string),
        1 => ".{0,12}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        Just(Value::from(u64::MAX)),
        Just(Value::from(-1)),
        word().prop_map(Value::String),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::vec((word(), inner), 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// An object with a `type` (or `kind`) tag the decoders know, and fields.
fn tagged(tag_field: &'static str) -> impl Strategy<Value = Value> {
    (word(), proptest::collection::vec((word(), json()), 0..8)).prop_map(move |(tag, fields)| {
        let mut object: Map<String, Value> = fields.into_iter().collect();
        object.insert(tag_field.to_string(), Value::String(tag));
        Value::Object(object)
    })
}

/// Valid frames, then cut short or with a byte changed.
fn mangled() -> impl Strategy<Value = String> {
    const FRAMES: &[&str] = &[
        r#"{"type":"send","client_id":"019ac931-94e5-7473-9e3a-265e16eee03f","room":"r1","body":"hi"}"#,
        r#"{"type":"sync","cursors":[{"room":"r1","seq":3,"ts":1764312000000}]}"#,
        r#"{"type":"history","room":"r1","before":10,"limit":50}"#,
        r#"{"type":"page","room":"r1","events":[{"room":"r1","seq":1,"ts":5,"kind":"message","body":"a"}],"more":false}"#,
        r#"{"type":"error","code":"not_member","message":"no","room":"r1"}"#,
    ];
    (
        proptest::sample::select(FRAMES),
        any::<usize>(),
        any::<u8>(),
        any::<bool>(),
    )
        .prop_map(|(frame, at, byte, cut)| {
            let mut bytes = frame.as_bytes().to_vec();
            let at = at % bytes.len();
            if cut {
                bytes.truncate(at);
            } else {
                bytes[at] = byte;
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        2 => tagged("type").prop_map(|v| v.to_string()),
        1 => json().prop_map(|v| v.to_string()),
        2 => mangled(),
        1 => ".{0,64}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn client_frames_decode_or_fail_cleanly(text in any_text()) {
        if let Ok(frame) = ClientFrame::decode(&text) {
            let again = serde_json::to_string(&frame).expect("a decoded frame encodes");
            prop_assert_eq!(ClientFrame::decode(&again).ok(), Some(frame));
        }
    }

    #[test]
    fn server_frames_decode_or_fail_cleanly(text in any_text()) {
        if let Ok(frame) = serde_json::from_str::<ServerFrame>(&text) {
            let again = serde_json::to_string(&frame).expect("a decoded frame encodes");
            prop_assert_eq!(serde_json::from_str::<ServerFrame>(&again).ok(), Some(frame));
        }
    }

    #[test]
    fn events_and_cursors_decode_or_fail_cleanly(value in prop_oneof![tagged("kind"), json()]) {
        if let Ok(event) = serde_json::from_value::<Event>(value.clone()) {
            let again = serde_json::to_value(&event).expect("an event encodes");
            prop_assert_eq!(serde_json::from_value::<Event>(again).ok(), Some(event));
        }
        if let Ok(cursor) = serde_json::from_value::<Cursor>(value) {
            let again = serde_json::to_value(&cursor).expect("a cursor encodes");
            prop_assert_eq!(serde_json::from_value::<Cursor>(again).ok(), Some(cursor));
        }
    }

    #[test]
    fn page_queries_never_panic(text in ".{0,80}", raw in any_text()) {
        let _ = query::site(&text);
        let _ = query::site(&format!("site={text}&%73ite={raw}"));
    }
}
