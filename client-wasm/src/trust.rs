//! Whether a sign-in token may open what the browser keeps for its user
//! before the server has seen it. The token's user is read, not verified,
//! in the browser (only the server holds the site's secret), so anyone
//! could write a token naming someone else. Each user's database keeps the
//! SHA-256 digest of the last token the server accepted for it (never the
//! token): only that token, while it is not expired, shows the database at
//! once, also offline. Any other token is asked about first
//! (`GET /session`, or the `hello` of the connection): the database shows
//! once the server takes the token, never while it refuses it, and is
//! deleted when the server says the site banned the user.

use crate::files::fetch_as_user;
use natter_shared::{ErrorCode, UserId};
use serde::Deserialize;
use wasm_bindgen_futures::JsFuture;

/// What a sign-in token says of itself, read WITHOUT checking its
/// signature: fit only to pick local state (the user's database, whether
/// it may show at once) before the server, which answers with the same
/// user or refuses the token, has seen it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// The user it names.
    pub sub: Option<String>,
    /// When it expires, Unix seconds.
    pub exp: Option<i64>,
}

impl Claims {
    /// The user it names, when that is a valid user id.
    pub fn subject(&self) -> Option<UserId> {
        UserId::parse(self.sub.clone()?).ok()
    }
}

/// The claims of `token`, an HS256 JWT (`header.claims.signature`, each
/// part base64url, the standard alphabet and padding taken too, as `atob`
/// takes them); `None` when it is not one.
pub fn claims(token: &str) -> Option<Claims> {
    let part: String = token
        .split('.')
        .nth(1)?
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    // One character per byte.
    let binary = web_sys::window()?.atob(&part).ok()?;
    let bytes = binary
        .chars()
        .map(|c| u8::try_from(c).ok())
        .collect::<Option<Vec<u8>>>()?;
    crate::json::parse(std::str::from_utf8(&bytes).ok()?).ok()
}

/// The SHA-256 digest of `token`, in hex; `None` where the browser offers
/// no SubtleCrypto (a page neither on HTTPS nor on localhost): there every
/// start waits for the server's word.
pub async fn digest(token: &str) -> Option<String> {
    let subtle = web_sys::window()?.crypto().ok()?.subtle();
    let promise = subtle
        .digest_with_str_and_u8_array("SHA-256", token.as_bytes())
        .ok()?;
    let hash = JsFuture::from(promise).await.ok()?;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = js_sys::Uint8Array::new(&hash).to_vec();
    let hex = bytes
        .iter()
        .flat_map(|b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]])
        .map(char::from)
        .collect();
    Some(hex)
}

/// Whether `token` is the one the server last accepted for this database
/// (`known`: that token's digest), and not expired by its own `exp`.
pub async fn is_known(token: &str, known: Option<&str>) -> bool {
    let unexpired = claims(token)
        .and_then(|c| c.exp)
        .is_some_and(|exp| exp as f64 * 1000.0 > js_sys::Date::now());
    unexpired && known.is_some() && digest(token).await.as_deref() == known
}

/// The server's word on a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It takes the token.
    Taken,
    /// It refuses the token (a bad signature, expired, another site's).
    Refused { code: ErrorCode, reason: String },
    /// The site banned the token's user.
    Banned(String),
    /// No answer (offline, the server down or busy): ask again later.
    Unreachable,
}

/// Asks the server whether it takes `token` for `site` now.
pub async fn ask(site: &str, token: &str) -> Verdict {
    match fetch_session(site, token).await {
        Some((status, body)) => verdict(status, body),
        None => Verdict::Unreachable,
    }
}

/// A refusal's error: its code (`None` for one this widget does not
/// know) and message.
type Refusal = (Option<ErrorCode>, String);

/// The answer's status and, for a refusal, its error.
async fn fetch_session(site: &str, token: &str) -> Option<(u16, Option<Refusal>)> {
    let response = fetch_as_user("GET", "/session", site, token, None).await?;
    let error = match response.json() {
        Ok(json) if !response.ok() => JsFuture::from(json).await.ok().and_then(|body| {
            // `{"error": {"code", "message"}}`, read as it is (no decoder
            // of its own in the widget).
            let error = js_sys::Reflect::get(&body, &"error".into()).ok()?;
            let field = |name: &str| js_sys::Reflect::get(&error, &name.into()).ok()?.as_string();
            let code = ErrorCode::parse(&field("code")?);
            Some((code, field("message").unwrap_or_default()))
        }),
        _ => None,
    };
    Some((response.status(), error))
}

fn verdict(status: u16, error: Option<Refusal>) -> Verdict {
    match (status, error) {
        (200, _) => Verdict::Taken,
        (403, Some((Some(ErrorCode::Banned), message))) => Verdict::Banned(message),
        (400..=499, Some((code, message))) if code != Some(ErrorCode::TooManyRequests) => {
            Verdict::Refused {
                code: code.unwrap_or(ErrorCode::Unauthorized),
                reason: message,
            }
        }
        (401 | 403, None) => Verdict::Refused {
            code: ErrorCode::Unauthorized,
            reason: format!("the chat server answered {status}"),
        },
        _ => Verdict::Unreachable,
    }
}
