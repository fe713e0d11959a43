//! The protocol's unit tests.

use super::*;

#[test]
fn unknown_type_and_malformed_frames_get_different_codes() {
    let unknown = ClientFrame::decode(r#"{"type":"teleport"}"#).unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::UnknownFrame);
    let malformed = ClientFrame::decode(r#"{"type":"send","room":"r"}"#).unwrap_err();
    assert_eq!(malformed.code(), ErrorCode::BadFrame);
    let not_json = ClientFrame::decode("{{{").unwrap_err();
    assert_eq!(not_json.code(), ErrorCode::BadFrame);
}

/// Each variant's `type` as serde writes it; the match fails to
/// compile when a variant is added, so the list below cannot miss one.
fn type_of(frame: &ClientFrame) -> &'static str {
    match frame {
        ClientFrame::Auth { .. } => "auth",
        ClientFrame::Sync { .. } => "sync",
        ClientFrame::Send { .. } => "send",
        ClientFrame::History { .. } => "history",
        ClientFrame::Typing { .. } => "typing",
        ClientFrame::Read { .. } => "read",
        ClientFrame::Members { .. } => "members",
        ClientFrame::Ping { .. } => "ping",
    }
}

#[test]
fn every_client_frame_with_a_bad_field_is_malformed_not_unknown() {
    let room = RoomId::parse("r1").unwrap();
    let frames = [
        ClientFrame::Auth { token: "t".into() },
        ClientFrame::Sync { cursors: vec![] },
        ClientFrame::Send {
            client_id: ClientId::parse("019ad9b2-a3c4-7d5e-8f9a-0b1c2d3e4f50").unwrap(),
            room: room.clone(),
            body: "hi".into(),
            files: vec![],
        },
        ClientFrame::History {
            room: room.clone(),
            before: 5,
            limit: None,
        },
        ClientFrame::Typing { room: room.clone() },
        ClientFrame::Read {
            room: room.clone(),
            seq: 1,
        },
        ClientFrame::Members {
            room,
            after: None,
            limit: None,
        },
        ClientFrame::Ping { nonce: None },
    ];
    let types: Vec<&str> = frames.iter().map(type_of).collect();
    assert_eq!(
        types, CLIENT_TYPES,
        "one frame of each type, in the list's order"
    );
    for frame in &frames {
        let mut json = serde_json::to_value(frame).unwrap();
        assert_eq!(json["type"], type_of(frame));
        assert_eq!(ClientFrame::decode(&json.to_string()).unwrap(), *frame);
        json["bogus"] = serde_json::json!(1);
        let err = ClientFrame::decode(&json.to_string()).unwrap_err();
        assert_eq!(err.code(), ErrorCode::BadFrame, "{json}");
    }
}

#[test]
fn a_cursor_with_an_unknown_field_is_malformed() {
    let ok = r#"{"type":"sync","cursors":[{"room":"r1","seq":3,"ts":9}]}"#;
    assert!(ClientFrame::decode(ok).is_ok());
    let odd = r#"{"type":"sync","cursors":[{"room":"r1","seq":3,"colour":"red"}]}"#;
    assert_eq!(
        ClientFrame::decode(odd).unwrap_err().code(),
        ErrorCode::BadFrame
    );
}

#[test]
fn events_flatten_their_kind() {
    let ev = Event {
        room: RoomId::parse("r1").unwrap(),
        seq: 3,
        ts: 1,
        sender: None,
        kind: EventKind::MemberJoined {
            user: UserId::parse("bob").unwrap(),
        },
    };
    let json = serde_json::to_value(&ev).unwrap();
    assert_eq!(json["kind"], "member_joined");
    assert_eq!(json["user"], "bob");
    assert!(json.get("sender").is_none());
    let back: Event = serde_json::from_value(json).unwrap();
    assert_eq!(back, ev);
}
