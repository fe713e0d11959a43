//! What a client may read from a sign-in token before the server checked
//! it: the user it names and when it expires. A token is an HS256 JWT
//! (`header.claims.signature`, each part base64url); only the server holds
//! the secret that verifies it.

use crate::ids::UserId;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;

/// base64url, with or without the padding JWTs leave out.
const CLAIMS_B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What a client reads of a token's claims, WITHOUT checking the
/// signature: fit only to pick local state (the widget's database, whether
/// a cached session may show) before the server, which answers with the
/// same user or refuses the token, has seen it.
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

/// The claims part of a JWT, decoded from base64 to its JSON text (read
/// it as [`Claims`] with the reader's own JSON decoder). `None` when the
/// token is not a JWT.
pub fn unverified_claims(token: &str) -> Option<String> {
    let claims = token.split('.').nth(1)?;
    // The standard alphabet is read too, as the browser's `atob` would.
    let claims: String = claims
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    String::from_utf8(CLAIMS_B64.decode(claims).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

    fn claims(token: &str) -> Option<Claims> {
        serde_json::from_str(&unverified_claims(token)?).ok()
    }

    fn unverified_subject(token: &str) -> Option<UserId> {
        claims(token)?.subject()
    }

    fn unverified_expiry(token: &str) -> Option<i64> {
        claims(token)?.exp
    }

    /// A token with `claims` as its payload, encoded by `engine`; the
    /// signature is never looked at.
    fn token(claims: &str, engine: &GeneralPurpose) -> String {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#);
        format!("{header}.{}.c2lnbmF0dXJl", engine.encode(claims))
    }

    #[test]
    fn the_sub_claim_names_the_user() {
        let t = token(
            r#"{"sub":"alice","site":"demo","exp":1764312000}"#,
            &URL_SAFE_NO_PAD,
        );
        assert_eq!(unverified_subject(&t), UserId::parse("alice").ok());
        assert_eq!(unverified_expiry(&t), Some(1764312000));
        let forever = token(r#"{"sub":"alice"}"#, &URL_SAFE_NO_PAD);
        assert_eq!(unverified_expiry(&forever), None);
    }

    #[test]
    fn padding_and_either_alphabet_are_read() {
        // Encodes to both `-`/`_` (base64url) and `+`/`/` (standard).
        let claims = r#"{"sub":"bob","n":"??>>~~"}"#;
        let url = URL_SAFE_NO_PAD.encode(claims);
        let std = STANDARD.encode(claims);
        assert!(url.contains(['-', '_']) && std.contains(['+', '/']));
        assert!(std.ends_with('='), "the standard encoding is padded");
        for t in [token(claims, &URL_SAFE_NO_PAD), token(claims, &STANDARD)] {
            assert_eq!(unverified_subject(&t), UserId::parse("bob").ok(), "{t}");
        }
    }

    #[test]
    fn anything_else_names_nobody() {
        let bad_sub = token(r#"{"sub":"no spaces"}"#, &URL_SAFE_NO_PAD);
        let no_sub = token(r#"{"user":"alice"}"#, &URL_SAFE_NO_PAD);
        let number = token(r#"{"sub":42}"#, &URL_SAFE_NO_PAD);
        let not_json = token("alice", &URL_SAFE_NO_PAD);
        let made = [bad_sub, no_sub, number, not_json];
        let odd = ["", "no-dots", "a.%%%.c"];
        for t in odd.into_iter().chain(made.iter().map(String::as_str)) {
            assert_eq!(unverified_subject(t), None, "{t}");
        }
    }
}
