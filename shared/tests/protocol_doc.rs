//! Keeps `docs/protocol.md` true to the types of this crate.
//!
//! - Every fenced block whose info string is `json <tag>` is decoded into the
//!   type the tag names, re-encoded and decoded again. The re-encoding must
//!   say exactly what the example says: a misspelt optional field, which
//!   serde would silently ignore, fails here.
//! - `text session` blocks are transcripts, one frame a line: `C: {...}` a
//!   client frame, `S: {...}` a server frame.
//! - The `text jwt-example` block's token must be the HS256 signature of the
//!   `json jwt-claims` block under its secret.
//! - Every client frame type, server frame type, event kind and error code
//!   (as serde itself names them, so a new variant is noticed without
//!   touching this file) must be documented, and the limits table must match
//!   `natter_shared::limits`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use natter_shared::api::{
    AddMember, AuditLog, CreateRoom, ErrorBody, EventPage, FileTypes, MemberList, Mute, Muted,
    NewApiKey, NewReport, NewTokenSecret, OpenDialog, PostMessage, Report, ReportList, RoomList,
    RoomUnread, RotateSecret, SetRead, Settings, SiteChange, SiteInfo, UnreadCounts,
};
use natter_shared::webhooks::{
    NewWebhook, Webhook, WebhookAttempts, WebhookChange, WebhookList, WebhookPayload,
};
use natter_shared::{
    ClientFrame, ClientId, ErrorCode, Event, EventKind, Limits, PROTOCOL, RoomId, RoomInfo,
    ServerFrame, SiteId, UserId, limits,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::Sha256;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::path::Path;

mod doc;
use doc::{blocks, is_fence};

fn read_doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/protocol.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A line of the document, and whether it is inside a fenced block
/// (fence lines included).
struct Line<'a> {
    no: usize,
    text: &'a str,
    fenced: bool,
}

fn lines(doc: &str) -> Vec<Line<'_>> {
    let mut open = false;
    doc.lines()
        .enumerate()
        .map(|(i, text)| {
            let fence = is_fence(text);
            let fenced = open || fence;
            if fence {
                open = !open;
            }
            Line {
                no: i + 1,
                text,
                fenced,
            }
        })
        .collect()
}

/// Whether everything `example` says is in `encoded`: each non-null member
/// of an example object is in the encoded object with the same value (the
/// encoding may add members the example leaves to their defaults).
fn said_by(example: &Value, encoded: &Value) -> bool {
    match (example, encoded) {
        (Value::Object(ex), Value::Object(en)) => ex
            .iter()
            .filter(|(_, v)| !v.is_null())
            .all(|(k, v)| en.get(k).is_some_and(|e| said_by(v, e))),
        (Value::Array(ex), Value::Array(en)) => {
            ex.len() == en.len() && ex.iter().zip(en).all(|(x, e)| said_by(x, e))
        }
        (ex, en) => ex == en,
    }
}

/// Decodes `text` with `decode`, re-encodes it and decodes that again: the
/// two values must be equal and the re-encoding must say all the example
/// says.
fn round_trip<T>(text: &str, decode: impl Fn(&str) -> Result<T, String>) -> Result<T, String>
where
    T: Serialize + PartialEq + Debug,
{
    let example: Value =
        serde_json::from_str(text).map_err(|e| format!("the example is not JSON: {e}"))?;
    let value = decode(text).map_err(|e| format!("does not decode: {e}"))?;
    let encoded = serde_json::to_string(&value).map_err(|e| format!("does not encode: {e}"))?;
    let again = decode(&encoded).map_err(|e| format!("its re-encoding {encoded} fails: {e}"))?;
    if again != value {
        return Err(format!(
            "re-encoding changes it:\n  decoded: {value:?}\n  again:   {again:?}"
        ));
    }
    let canonical = serde_json::to_value(&value).map_err(|e| e.to_string())?;
    if !said_by(&example, &canonical) {
        return Err(format!(
            "the example says something its type does not (a misspelt or unknown field?):\n  \
             example: {example}\n  encoded: {canonical}"
        ));
    }
    Ok(value)
}

fn serde_decode<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

fn client_decode(text: &str) -> Result<ClientFrame, String> {
    ClientFrame::decode(text).map_err(|e| e.to_string())
}

/// The value of a serialised enum's tag field (`type`, `kind`).
fn tag_of(value: &impl Serialize, field: &str) -> String {
    serde_json::to_value(value).expect("encodes")[field]
        .as_str()
        .expect("has a string tag")
        .to_owned()
}

/// What the examples of a document contain, and what is wrong with them.
#[derive(Default)]
struct Examples {
    errors: Vec<String>,
    typed: usize,
    client_types: BTreeSet<String>,
    server_types: BTreeSet<String>,
    event_kinds: BTreeSet<String>,
    auth_tokens: Vec<(usize, String)>,
    jwt_claims: Option<Value>,
    jwt_example: Option<(usize, String)>,
}

impl Examples {
    fn of(doc: &str) -> Self {
        let mut ex = Examples::default();
        let blocks = match blocks(doc) {
            Ok(blocks) => blocks,
            Err(e) => {
                ex.errors.push(e);
                return ex;
            }
        };
        for block in blocks {
            let (line, body) = (block.line, block.body.as_str());
            match (block.lang.as_str(), block.tag.as_deref()) {
                ("json", None) => {
                    if let Err(e) = serde_json::from_str::<Value>(body) {
                        ex.fail(line, format!("not JSON: {e}"));
                    }
                }
                ("json", Some(tag)) => ex.typed(line, tag, body),
                ("text", Some("session")) => ex.session(line, body),
                ("text", Some("jwt-example")) => ex.jwt_example = Some((line, body.to_owned())),
                ("text", Some(tag)) => ex.fail(line, format!("unknown text block tag {tag:?}")),
                _ => {}
            }
        }
        ex
    }

    fn fail(&mut self, line: usize, msg: impl AsRef<str>) {
        self.errors.push(format!("line {line}: {}", msg.as_ref()));
    }

    fn check<T: Serialize + DeserializeOwned + PartialEq + Debug>(
        &mut self,
        line: usize,
        tag: &str,
        body: &str,
    ) -> Option<T> {
        self.typed += 1;
        round_trip(body, serde_decode::<T>)
            .map_err(|e| self.fail(line, format!("{tag}: {e}")))
            .ok()
    }

    fn typed(&mut self, line: usize, tag: &str, body: &str) {
        match tag {
            "client-frame" => {
                self.typed += 1;
                match round_trip(body, client_decode) {
                    Ok(frame) => self.client_frame(line, &frame),
                    Err(e) => self.fail(line, format!("client-frame: {e}")),
                }
            }
            "server-frame" => {
                if let Some(frame) = self.check::<ServerFrame>(line, tag, body) {
                    self.server_frame(line, &frame);
                }
            }
            "event" => {
                if let Some(event) = self.check::<Event>(line, tag, body) {
                    self.event(line, &event);
                }
            }
            "event-page" => {
                if let Some(page) = self.check::<EventPage>(line, tag, body) {
                    let room = page.events.first().map(|e| e.room.clone());
                    self.events(line, room.as_ref(), &page.events);
                }
            }
            "post-message" => {
                if let Some(post) = self.check::<PostMessage>(line, tag, body) {
                    self.client_id(line, post.client_id.as_ref());
                }
            }
            "room-info" => drop(self.check::<RoomInfo>(line, tag, body)),
            "room-list" => drop(self.check::<RoomList>(line, tag, body)),
            "create-room" => drop(self.check::<CreateRoom>(line, tag, body)),
            "open-dialog" => drop(self.check::<OpenDialog>(line, tag, body)),
            "add-member" => drop(self.check::<AddMember>(line, tag, body)),
            "error-body" => drop(self.check::<ErrorBody>(line, tag, body)),
            "file-types" => drop(self.check::<FileTypes>(line, tag, body)),
            "unread-counts" => drop(self.check::<UnreadCounts>(line, tag, body)),
            "room-unread" => drop(self.check::<RoomUnread>(line, tag, body)),
            "set-read" => drop(self.check::<SetRead>(line, tag, body)),
            "settings" => drop(self.check::<Settings>(line, tag, body)),
            "site-info" => drop(self.check::<SiteInfo>(line, tag, body)),
            "site-change" => drop(self.check::<SiteChange>(line, tag, body)),
            "rotate-secret" => drop(self.check::<RotateSecret>(line, tag, body)),
            "new-token-secret" => drop(self.check::<NewTokenSecret>(line, tag, body)),
            "new-api-key" => drop(self.check::<NewApiKey>(line, tag, body)),
            "new-webhook" => drop(self.check::<NewWebhook>(line, tag, body)),
            "webhook" => drop(self.check::<Webhook>(line, tag, body)),
            "webhook-list" => drop(self.check::<WebhookList>(line, tag, body)),
            "webhook-change" => drop(self.check::<WebhookChange>(line, tag, body)),
            "member-list" => drop(self.check::<MemberList>(line, tag, body)),
            "mute" => drop(self.check::<Mute>(line, tag, body)),
            "report-list" => drop(self.check::<ReportList>(line, tag, body)),
            "audit-log" => drop(self.check::<AuditLog>(line, tag, body)),
            "new-report" => drop(self.check::<NewReport>(line, tag, body)),
            "report" => drop(self.check::<Report>(line, tag, body)),
            "muted" => drop(self.check::<Muted>(line, tag, body)),
            "webhook-attempts" => drop(self.check::<WebhookAttempts>(line, tag, body)),
            "webhook-payload" => drop(self.check::<WebhookPayload>(line, tag, body)),
            "jwt-claims" => match serde_json::from_str(body) {
                Ok(claims) => self.jwt_claims = Some(claims),
                Err(e) => self.fail(line, format!("jwt-claims: not JSON: {e}")),
            },
            other => self.fail(line, format!("unknown json block tag {other:?}")),
        }
    }

    fn session(&mut self, first: usize, body: &str) {
        for (i, text) in body.lines().enumerate() {
            let line = first + 1 + i;
            if text.trim().is_empty() {
                continue;
            }
            if let Some(json) = text.strip_prefix("C: ") {
                self.typed(line, "client-frame", json);
            } else if let Some(json) = text.strip_prefix("S: ") {
                self.typed(line, "server-frame", json);
            } else {
                self.fail(line, "a session line starts with `C: ` or `S: `");
            }
        }
    }

    fn client_frame(&mut self, line: usize, frame: &ClientFrame) {
        self.client_types.insert(tag_of(frame, "type"));
        match frame {
            ClientFrame::Auth { token } => self.auth_tokens.push((line, token.clone())),
            ClientFrame::Send { client_id, .. } => self.client_id(line, Some(client_id)),
            _ => {}
        }
    }

    fn server_frame(&mut self, line: usize, frame: &ServerFrame) {
        self.server_types.insert(tag_of(frame, "type"));
        match frame {
            ServerFrame::Hello {
                protocol, limits, ..
            } => {
                if protocol != PROTOCOL {
                    self.fail(line, format!("hello names protocol {protocol:?}"));
                }
                if *limits != Limits::default() {
                    self.fail(line, "hello's limits are not the defaults");
                }
            }
            ServerFrame::Page { room, events, .. } | ServerFrame::History { room, events, .. } => {
                self.events(line, Some(room), events);
            }
            ServerFrame::Event { event } => self.event(line, event),
            ServerFrame::Ack { client_id, .. } => self.client_id(line, Some(client_id)),
            ServerFrame::Error { client_id, .. } => self.client_id(line, client_id.as_ref()),
            _ => {}
        }
    }

    /// A list of events of one room: contiguous seqs, ascending.
    fn events(&mut self, line: usize, room: Option<&RoomId>, events: &[Event]) {
        for event in events {
            if Some(&event.room) != room {
                self.fail(line, format!("event {} is of another room", event.seq));
            }
            self.event(line, event);
        }
        for pair in events.windows(2) {
            if pair[1].seq != pair[0].seq + 1 {
                self.fail(
                    line,
                    format!("seq {} follows seq {}", pair[1].seq, pair[0].seq),
                );
            }
        }
    }

    fn event(&mut self, line: usize, event: &Event) {
        self.event_kinds.insert(event.kind.name().to_owned());
        if let EventKind::Message { client_id, .. } = &event.kind {
            self.client_id(line, client_id.as_ref());
        }
    }

    fn client_id(&mut self, line: usize, id: Option<&ClientId>) {
        if let Some(id) = id
            && id.as_uuid().get_version_num() != 7
        {
            self.fail(line, format!("client id {id} is not a UUIDv7"));
        }
    }
}

/// Every variant name serde knows for an enum, read from the error it gives
/// for an unknown one ("unknown variant `x`, expected one of `a`, `b`").
fn variants<T: DeserializeOwned + Debug>(probe: &str) -> BTreeSet<String> {
    let err = serde_json::from_str::<T>(probe)
        .expect_err("the probe names no variant")
        .to_string();
    let list = err
        .split_once("expected one of ")
        .unwrap_or_else(|| panic!("unexpected serde error: {err}"))
        .1;
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

fn all_client_types() -> BTreeSet<String> {
    let all = variants::<ClientFrame>(r#"{"type":"no such type"}"#);
    assert!(all.contains("auth") && all.contains("ping"), "{all:?}");
    all
}

fn all_server_types() -> BTreeSet<String> {
    let all = variants::<ServerFrame>(r#"{"type":"no such type"}"#);
    assert!(all.contains("hello") && all.contains("pong"), "{all:?}");
    all
}

fn all_event_kinds() -> BTreeSet<String> {
    let all = variants::<EventKind>(r#"{"kind":"no such kind"}"#);
    assert!(all.contains("message"), "{all:?}");
    all
}

fn all_error_codes() -> BTreeSet<String> {
    // `ALL` and the serde names come from one list (see `error_codes!`).
    ErrorCode::ALL
        .iter()
        .map(|code| code.as_str().to_string())
        .collect()
}

fn missing(all: &BTreeSet<String>, seen: &BTreeSet<String>) -> Vec<String> {
    all.difference(seen).cloned().collect()
}

#[test]
fn every_typed_example_decodes_and_round_trips() {
    let ex = Examples::of(&read_doc());
    assert!(
        ex.errors.is_empty(),
        "docs/protocol.md:\n{}",
        ex.errors.join("\n")
    );
    assert!(ex.typed >= 40, "only {} typed examples found", ex.typed);
}

#[test]
fn every_frame_type_event_kind_and_error_code_is_documented() {
    let doc = read_doc();
    let ex = Examples::of(&doc);
    let mut gaps = Vec::new();
    for t in missing(&all_client_types(), &ex.client_types) {
        gaps.push(format!("no `json client-frame` example of type {t:?}"));
    }
    for t in missing(&all_server_types(), &ex.server_types) {
        gaps.push(format!("no `json server-frame` example of type {t:?}"));
    }
    for k in missing(&all_event_kinds(), &ex.event_kinds) {
        gaps.push(format!("no example event of kind {k:?}"));
    }
    // Each code needs a row of the error table: "| `code` | ...".
    let rows: BTreeSet<String> = lines(&doc)
        .iter()
        .filter(|l| !l.fenced)
        .filter_map(|l| l.text.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(code, _)| code.to_owned())
        .collect();
    for code in all_error_codes() {
        if !rows.contains(&code) {
            gaps.push(format!("error code {code:?} has no table row"));
        }
    }
    assert!(gaps.is_empty(), "docs/protocol.md:\n{}", gaps.join("\n"));
}

#[test]
fn worked_token_example_is_signed_as_documented() {
    let ex = Examples::of(&read_doc());
    let claims = ex.jwt_claims.expect("a `json jwt-claims` block");
    let (line, block) = ex.jwt_example.expect("a `text jwt-example` block");
    let field = |name: &str| {
        block
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
            .unwrap_or_else(|| panic!("line {line}: jwt-example has no `{name}:`"))
    };
    let (secret, header, token) = (field("secret"), field("header"), field("token"));

    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "a JWT has three parts");
    let part = |i: usize| -> Value {
        let bytes = URL_SAFE_NO_PAD
            .decode(parts[i])
            .expect("unpadded base64url");
        serde_json::from_slice(&bytes).expect("a JSON part")
    };
    let header: Value = serde_json::from_str(header).unwrap();
    assert_eq!(part(0), header, "the token's header");
    assert_eq!(header["alg"], "HS256");
    assert_eq!(
        part(1),
        claims,
        "the token's claims are the jwt-claims block"
    );

    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{}.{}", parts[0], parts[1]).as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    assert_eq!(parts[2], signature, "HMAC-SHA256 of header.claims");

    UserId::parse(claims["sub"].as_str().expect("sub")).expect("sub is a user id");
    SiteId::parse(claims["site"].as_str().expect("site")).expect("site is a site id");
    let (iat, exp) = (claims["iat"].as_i64(), claims["exp"].as_i64());
    assert!(
        matches!((iat, exp), (Some(i), Some(e)) if e > i),
        "iat < exp"
    );

    // Tokens in example frames are the worked, verifiable one.
    assert!(!ex.auth_tokens.is_empty());
    for (line, t) in &ex.auth_tokens {
        assert_eq!(
            t, token,
            "line {line}: auth token is not the worked example"
        );
    }
}

#[test]
fn limits_table_matches_the_constants() {
    let doc = read_doc();
    let constants: [(&str, u64); 9] = [
        ("MAX_FRAME_BYTES", limits::MAX_FRAME_BYTES as u64),
        ("MAX_BODY_BYTES", limits::MAX_BODY_BYTES as u64),
        ("PAGE_SIZE", limits::PAGE_SIZE.into()),
        ("MAX_CURSORS", limits::MAX_CURSORS as u64),
        ("MAX_TITLE_BYTES", limits::MAX_TITLE_BYTES as u64),
        ("MAX_NAME_BYTES", limits::MAX_NAME_BYTES as u64),
        ("MAX_MEMBERS", limits::MAX_MEMBERS as u64),
        ("MAX_FILE_BYTES", limits::MAX_FILE_BYTES),
        (
            "MAX_FILES_PER_MESSAGE",
            limits::MAX_FILES_PER_MESSAGE as u64,
        ),
    ];
    for (name, value) in constants {
        let row = lines(&doc)
            .into_iter()
            .find(|l| !l.fenced && l.text.starts_with('|') && l.text.contains(&format!("`{name}`")))
            .unwrap_or_else(|| panic!("the limits table has no row for {name}"));
        assert!(
            row.text
                .split('|')
                .any(|cell| cell.trim() == value.to_string()),
            "line {}: {name} is {value}: {}",
            row.no,
            row.text
        );
    }
}

/// GitHub's heading anchors: lower case, punctuation dropped, spaces to
/// hyphens, "-1", "-2"... for repeats.
fn anchors(doc: &str) -> BTreeSet<String> {
    let mut count: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for line in lines(doc).iter().filter(|l| !l.fenced) {
        let Some(title) = line.text.strip_prefix('#') else {
            continue;
        };
        let slug: String = title
            .trim_start_matches('#')
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let n = count.entry(slug.clone()).or_default();
        out.insert(if *n == 0 {
            slug.clone()
        } else {
            format!("{slug}-{n}")
        });
        *n += 1;
    }
    out
}

#[test]
fn internal_links_resolve() {
    let doc = read_doc();
    let anchors = anchors(&doc);
    let mut broken = Vec::new();
    for line in lines(&doc).iter().filter(|l| !l.fenced) {
        for piece in line.text.split("](#").skip(1) {
            let target = piece.split(')').next().unwrap_or("");
            if !anchors.contains(target) {
                broken.push(format!("line {}: #{target}", line.no));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The checker itself must catch what it exists to catch.
#[test]
fn checker_rejects_wrong_examples() {
    let wrong = [
        // A misspelt optional field: serde ignores it, the checker must not.
        "```json server-frame\n{\"type\":\"pong\",\"nonse\":7}\n```\n",
        // An unknown field in a client frame.
        "```json client-frame\n{\"type\":\"ping\",\"nonce\":7,\"x\":1}\n```\n",
        // A wrong type.
        "```json event\n{\"room\":\"r_1\",\"seq\":\"1\",\"ts\":1,\"kind\":\"member_left\",\"user\":\"bob\"}\n```\n",
        // A client id that is not a UUIDv7 (this one is v4).
        "```json client-frame\n{\"type\":\"send\",\"client_id\":\"0191e6b2-7c3a-4d4e-8f00-123456789abc\",\"room\":\"r_1\",\"body\":\"hi\"}\n```\n",
        // A gap in a page.
        "```json event-page\n{\"events\":[{\"room\":\"r_1\",\"seq\":1,\"ts\":1,\"kind\":\"member_left\",\"user\":\"bob\"},{\"room\":\"r_1\",\"seq\":3,\"ts\":1,\"kind\":\"member_left\",\"user\":\"bob\"}],\"more\":false}\n```\n",
        // An unknown tag, an unterminated block, a bad session line.
        "```json frobnicate\n{}\n```\n",
        "```json event\n{}\n",
        "```text session\n> {\"type\":\"ping\"}\n```\n",
    ];
    for doc in wrong {
        assert!(!Examples::of(doc).errors.is_empty(), "accepted:\n{doc}");
    }
    let right = "```json server-frame\n{\"type\":\"pong\",\"nonce\":7}\n```\n";
    let ex = Examples::of(right);
    assert!(ex.errors.is_empty(), "{:?}", ex.errors);
    assert!(ex.server_types.contains("pong"));
}
