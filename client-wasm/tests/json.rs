//! The widget reads and writes JSON through the browser (`JSON.parse`,
//! `JSON.stringify`) and its stored-value decoder, not through the JSON
//! library the server uses. Every frame `docs/protocol.md` shows must come
//! out of it as the server's library reads it, and every frame the widget
//! writes must say what the server's library would write. A sign-in
//! token's claims are read the same way, after the browser's `atob`. Run with
//! `cargo test -p natter-client --target wasm32-unknown-unknown`.
#![cfg(target_arch = "wasm32")]

use base64::Engine as _;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use natter_client::json::{self, JsonError};
use natter_client::trust::{Claims, claims};
use natter_shared::api::{ErrorBody, NewReport};
use natter_shared::{ClientFrame, Event, ServerFrame, UserId};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const DOC: &str = include_str!("../../docs/protocol.md");

#[path = "../../shared/tests/doc/mod.rs"]
mod doc;

/// The document's examples of a kind, each with its line: the bodies of
/// the fenced blocks tagged `json TAG`, and the frames of its session
/// transcripts on lines starting with `prefix`.
fn examples(tag: &str, prefix: Option<&str>) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for block in doc::blocks(DOC).expect("docs/protocol.md's blocks") {
        match (block.lang.as_str(), block.tag.as_deref(), prefix) {
            ("json", Some(t), _) if t == tag => found.push((block.line, block.body)),
            ("text", Some("session"), Some(prefix)) => {
                let lines = block.body.lines().enumerate();
                found.extend(lines.filter_map(|(i, line)| {
                    let frame = line.strip_prefix(prefix)?;
                    Some((block.line + 1 + i, frame.to_owned()))
                }));
            }
            _ => {}
        }
    }
    assert!(
        !found.is_empty(),
        "no `json {tag}` example in docs/protocol.md"
    );
    found
}

/// Each example reads the same through the widget as through the server's
/// JSON library.
fn reads_alike<T: DeserializeOwned + PartialEq + Debug>(tag: &str, prefix: Option<&str>) -> Vec<T> {
    examples(tag, prefix)
        .iter()
        .map(|(line, text)| {
            let at = format!("docs/protocol.md:{line}: {text}");
            let server: T =
                serde_json::from_str(text).unwrap_or_else(|e| panic!("{at}: serde_json: {e}"));
            let widget: T = json::parse(text).unwrap_or_else(|e| panic!("{at}: widget: {e}"));
            assert_eq!(widget, server, "{at}");
            server
        })
        .collect()
}

/// The widget writes `value` as the server's JSON library does.
fn writes_alike<T: Serialize + Debug>(value: &T) {
    let text = json::stringify(value).unwrap_or_else(|| panic!("widget writes {value:?}"));
    let written: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let expected = serde_json::to_value(value).expect("serde_json writes it");
    assert_eq!(written, expected, "{value:?}");
}

#[wasm_bindgen_test]
fn every_documented_server_frame_reads_as_the_server_wrote_it() {
    let frames: Vec<ServerFrame> = reads_alike("server-frame", Some("S: "));
    assert!(frames.len() > 19, "the blocks and the session's lines");
    reads_alike::<Event>("event", None);
    reads_alike::<ErrorBody>("error-body", None);
}

#[wasm_bindgen_test]
fn every_documented_client_frame_is_written_as_the_server_reads_it() {
    let frames: Vec<ClientFrame> = reads_alike("client-frame", Some("C: "));
    for frame in &frames {
        writes_alike(frame);
        let text = json::stringify(frame).expect("written");
        assert_eq!(ClientFrame::decode(&text).as_ref(), Ok(frame), "{text}");
    }
    for report in reads_alike::<NewReport>("new-report", None) {
        writes_alike(&report);
    }
}

/// A token with `claims` as its payload, encoded by `engine`; the
/// signature is never looked at.
fn token(claims: &str, engine: &GeneralPurpose) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
    format!("{header}.{}.c2lnbmF0dXJl", engine.encode(claims))
}

#[wasm_bindgen_test]
fn a_tokens_claims_name_its_user_and_when_it_expires() {
    let documented: Vec<Claims> = reads_alike("jwt-claims", None);
    assert!(documented[0].subject().is_some() && documented[0].exp.is_some());
    let t = token(
        r#"{"sub":"alice","site":"demo","exp":1764312000}"#,
        &URL_SAFE_NO_PAD,
    );
    let read = claims(&t).expect("claims");
    assert_eq!(read.subject(), UserId::parse("alice").ok());
    assert_eq!(read.exp, Some(1764312000));
    let forever = token(r#"{"sub":"alice"}"#, &URL_SAFE_NO_PAD);
    assert_eq!(claims(&forever).and_then(|c| c.exp), None);
    // Not ASCII: the bytes are UTF-8.
    let accented = token(r#"{"sub":"zoë","exp":1}"#, &URL_SAFE_NO_PAD);
    assert_eq!(claims(&accented).and_then(|c| c.sub), Some("zoë".into()));
}

#[wasm_bindgen_test]
fn padding_and_either_alphabet_are_read() {
    // Encodes to both `-`/`_` (base64url) and `+`/`/` (standard).
    let text = r#"{"sub":"bob","n":"??>>~~"}"#;
    let url = URL_SAFE_NO_PAD.encode(text);
    let std = STANDARD.encode(text);
    assert!(url.contains(['-', '_']) && std.contains(['+', '/']));
    assert!(std.ends_with('='), "the standard encoding is padded");
    for t in [token(text, &URL_SAFE_NO_PAD), token(text, &STANDARD)] {
        let user = claims(&t).and_then(|c| c.subject());
        assert_eq!(user, UserId::parse("bob").ok(), "{t}");
    }
}

#[wasm_bindgen_test]
fn anything_else_names_nobody() {
    let bad_sub = token(r#"{"sub":"no spaces"}"#, &URL_SAFE_NO_PAD);
    let no_sub = token(r#"{"user":"alice"}"#, &URL_SAFE_NO_PAD);
    let number = token(r#"{"sub":42}"#, &URL_SAFE_NO_PAD);
    let not_json = token("alice", &URL_SAFE_NO_PAD);
    let latin1 = format!("e30.{}.x", STANDARD.encode([b'"', 0xe9, b'"']));
    let made = [bad_sub, no_sub, number, not_json, latin1];
    let odd = ["", "no-dots", "a.%%%.c", "a..c", "a.\u{3b1}\u{3b2}.c"];
    for t in odd.into_iter().chain(made.iter().map(String::as_str)) {
        assert_eq!(claims(t).and_then(|c| c.subject()), None, "{t}");
    }
}

#[wasm_bindgen_test]
fn what_is_not_a_frame_is_an_error_never_a_panic() {
    let text = |r: Result<ServerFrame, JsonError>| r.map(|_| ()).map_err(|e| e.to_string());
    assert!(matches!(
        json::parse::<ServerFrame>("{{"),
        Err(JsonError::Syntax(_))
    ));
    for bad in [
        r#"{"type":"teleport"}"#,
        r#"{"type":"ack","room":"r1","seq":1}"#,
        r#"{"type":"ack","client_id":"0191e6b2-7c3a-7d4e-8f00-123456789001","room":"r1","seq":-1,"ts":2}"#,
        r#"{"type":"typing","room":"r1","user":42}"#,
        "[]",
        "null",
    ] {
        let err = text(json::parse(bad)).expect_err(bad);
        assert!(!err.is_empty(), "{bad}");
    }
    // Fields a newer server adds are passed over.
    let pong: ServerFrame = json::parse(r#"{"type":"pong","nonce":7,"later":[1,{"a":null}]}"#)
        .expect("a pong with more");
    assert_eq!(pong, ServerFrame::Pong { nonce: Some(7) });
    // A number JavaScript cannot hold exactly is refused, not rounded.
    assert_eq!(
        json::stringify(&ClientFrame::Ping {
            nonce: Some(u64::MAX)
        }),
        None
    );
}
