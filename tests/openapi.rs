//! The OpenAPI document at `/api/v1/openapi.json` cannot drift: every
//! operation it lists is answered by the running server (not "no such
//! endpoint", not 405), it lists exactly the endpoints of the README's
//! HTTP API table, and every JSON example of the HTTP API in
//! docs/protocol.md is valid against the schema of its type.

use natter_tests::*;
use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

async fn document(app: &TestApp) -> Value {
    let res = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .expect("the document is answered");
    assert_eq!(res.status(), 200);
    res.json().await.expect("JSON")
}

/// `METHOD /path` of every operation in the document.
fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "put", "post", "delete", "patch"] {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// `METHOD /path` of the README's HTTP API table, where a cell may name
/// several (`` `GET`, `PUT /settings` `` or `` `GET /a`, `GET /b` ``).
fn readme_operations() -> BTreeSet<(String, String)> {
    let readme = read("README.md");
    let section = readme
        .split("\n## HTTP API\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("the README's HTTP API section");
    let mut ops = BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cell = row.split('|').nth(1).unwrap_or_default();
        let names: Vec<&str> = cell.split('`').skip(1).step_by(2).map(str::trim).collect();
        let path = names
            .iter()
            .rev()
            .find_map(|n| n.split_once(' ').map(|(_, p)| p))
            .expect("a path in the row");
        for name in names {
            let (method, own) = name.split_once(' ').unwrap_or((name, path));
            let own = own.split('?').next().unwrap_or(own);
            ops.insert((method.to_string(), own.to_string()));
        }
    }
    ops
}

async fn the_document_is_the_router(db: Db) {
    let app = spawn_app(db).await;
    let doc = document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    assert_eq!(
        ops,
        readme_operations(),
        "the README's table and the OpenAPI document list other endpoints"
    );
    for (method, path) in &ops {
        let concrete = path
            .replace("{room}", "r_0")
            .replace("{user}", "nobody")
            .replace("{seq}", "1")
            .replace("{id}", "wh_0");
        let method = Method::from_bytes(method.as_bytes()).expect("a method");
        let res = app
            .api(method.clone(), &concrete)
            .json(&serde_json::json!({}))
            .send()
            .await
            .expect("answered");
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_ne!(status, 405, "{method} {path} is not routed");
        assert_ne!(
            body["error"]["message"], "no such endpoint",
            "{method} {path} is not routed"
        );
        for (status, response) in doc["paths"][path][method.as_str().to_lowercase()]["responses"]
            .as_object()
            .expect("responses")
        {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} {status} has no description"
            );
        }
    }
    // Unknown paths are not in the document and not routed.
    let res = app
        .api(Method::GET, "/nothing-here")
        .send()
        .await
        .expect("answered");
    assert_eq!(res.status(), 404);
    app.stop().await;
}

/// The schema a protocol.md example tag is of.
fn schema_of(tag: &str) -> Option<&'static str> {
    Some(match tag {
        "create-room" => "CreateRoom",
        "open-dialog" => "OpenDialog",
        "add-member" => "AddMember",
        "post-message" => "PostMessage",
        "room-info" => "RoomInfo",
        "event" => "Event",
        "event-page" => "EventPage",
        "room-list" => "RoomList",
        "error-body" => "ErrorBody",
        "file-types" => "FileTypes",
        "unread-counts" => "UnreadCounts",
        "room-unread" => "RoomUnread",
        "set-read" => "SetRead",
        "settings" => "Settings",
        "site-info" => "SiteInfo",
        "site-change" => "SiteChange",
        "rotate-secret" => "RotateSecret",
        "new-token-secret" => "NewTokenSecret",
        "new-api-key" => "NewApiKey",
        "new-webhook" => "NewWebhook",
        "webhook" => "Webhook",
        "webhook-attempts" => "WebhookAttempts",
        "webhook-list" => "WebhookList",
        "webhook-change" => "WebhookChange",
        "member-list" => "MemberList",
        "mute" => "Mute",
        "report-list" => "ReportList",
        "audit-log" => "AuditLog",
        "report" => "Report",
        "muted" => "Muted",
        _ => return None,
    })
}

/// Why `value` does not fit `schema` (the parts of JSON Schema the
/// document uses), if it does not.
fn misfit(doc: &Value, schema: &Value, value: &Value, at: &str) -> Option<String> {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or_default();
        return misfit(doc, &doc["components"]["schemas"][name], value, at);
    }
    if let Some(all) = schema["allOf"].as_array() {
        return all.iter().find_map(|s| misfit(doc, s, value, at));
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            let fits = options
                .iter()
                .filter(|s| misfit(doc, s, value, at).is_none())
                .count();
            let ok = if key == "oneOf" { fits == 1 } else { fits >= 1 };
            if !ok {
                return Some(format!("{at}: fits {fits} of the {key} options"));
            }
        }
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        return Some(format!("{at}: {value} is not one of {options:?}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if !types.is_empty() {
        let fits = types.iter().any(|t| match *t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        });
        if !fits {
            return Some(format!("{at}: {value} is not {types:?}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"].as_object();
        for required in schema["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                return Some(format!("{at}: {name} is missing"));
            }
        }
        for (name, field) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(property) => {
                    if let Some(why) = misfit(doc, property, field, &format!("{at}.{name}")) {
                        return Some(why);
                    }
                }
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    return Some(format!("{at}: {name} is not in the schema"));
                }
                // Unknown fields are protocol_doc's to catch (a flattened
                // part of an allOf lists only its own).
                None => {}
            }
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, item) in values.iter().enumerate() {
            if let Some(why) = misfit(doc, items, item, &format!("{at}[{i}]")) {
                return Some(why);
            }
        }
    }
    None
}

async fn every_example_fits_its_schema(db: Db) {
    let app = spawn_app(db).await;
    let doc = document(&app).await;
    let protocol = read("docs/protocol.md");
    let api = protocol
        .split("\n## HTTP API\n")
        .nth(1)
        .expect("protocol.md's HTTP API section");
    let mut checked = BTreeSet::new();
    for block in api.split("```").skip(1).step_by(2) {
        let (info, body) = block.split_once('\n').unwrap_or((block, ""));
        let mut words = info.split_whitespace();
        if words.next() != Some("json") {
            continue;
        }
        // Untagged blocks are not bodies of a named type (`/healthz`,
        // the demo's token, a bare list); payloads go to the site, and
        // `POST /reports` is the members' (outside `/api/v1`).
        let Some(tag) = words
            .next()
            .filter(|t| !["webhook-payload", "new-report"].contains(t))
        else {
            continue;
        };
        let name =
            schema_of(tag).unwrap_or_else(|| panic!("no schema for the example tag {tag:?}"));
        let schema = &doc["components"]["schemas"][name];
        assert!(schema.is_object(), "the document has no schema {name}");
        let value: Value = serde_json::from_str(body).expect("the example is JSON");
        if let Some(why) = misfit(&doc, schema, &value, name) {
            panic!("protocol.md's {tag} example does not fit {name}: {why}\n{body}");
        }
        checked.insert(name);
    }
    // Each body an operation takes or gives has an example.
    let mut bodies = BTreeSet::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().into_iter().flat_map(|o| o.values()) {
            let contents = operation["responses"]
                .as_object()
                .into_iter()
                .flat_map(|r| r.values())
                .chain(std::iter::once(&operation["requestBody"]))
                .filter_map(|r| r["content"]["application/json"]["schema"]["$ref"].as_str());
            for reference in contents {
                bodies.insert(reference.rsplit('/').next().unwrap_or_default().to_string());
            }
        }
    }
    let missing: Vec<&String> = bodies
        .iter()
        .filter(|b| !checked.contains(b.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "no example in protocol.md of {missing:?}"
    );
    app.stop().await;
}

on_both!(the_document_is_the_router, every_example_fits_its_schema);
