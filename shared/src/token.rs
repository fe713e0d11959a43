//! What a client may read from a sign-in token before the server checked
//! it: the user it names. A token is an HS256 JWT
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

/// The user a token names (its `sub` claim), read WITHOUT checking the
/// signature: fit only to pick local state (the widget's database) before
/// the server, which answers with the same user or refuses the token, has
/// seen it. `None` when the token is not a JWT or its `sub` is not a
/// valid user id.
pub fn unverified_subject(token: &str) -> Option<UserId> {
    #[derive(Deserialize)]
    struct Claims {
        sub: String,
    }
    let claims: Claims = unverified_claims(token)?;
    UserId::parse(claims.sub).ok()
}

/// When a token expires (its `exp` claim, Unix seconds), read WITHOUT
/// checking the signature. `None` when it is not a JWT or has no `exp`.
pub fn unverified_expiry(token: &str) -> Option<i64> {
    #[derive(Deserialize)]
    struct Claims {
        exp: i64,
    }
    unverified_claims::<Claims>(token).map(|c| c.exp)
}

/// The claims part of a JWT, decoded.
fn unverified_claims<T: serde::de::DeserializeOwned>(token: &str) -> Option<T> {
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
    let json = CLAIMS_B64.decode(claims).ok()?;
    serde_json::from_slice(&json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

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
