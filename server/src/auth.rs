//! Authentication: the JWTs a site's backend signs for its users (HS256
//! with the site's token secret), and the API keys it calls the HTTP API
//! with. Both secrets are wrapped in [`Secret`] so they never print.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use natter_shared::{ErrorCode, SiteId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECS: i64 = 30;

/// A secret string whose `Debug` and `Display` hide it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the few places that must use it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The claims of a user token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user's id in the site.
    pub sub: String,
    /// The site the token was signed for.
    pub site: String,
    /// Expiry, seconds since the Unix epoch. Required.
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A verified token's identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub site: SiteId,
    pub user: UserId,
    pub name: Option<String>,
    /// When the token expires, seconds since the Unix epoch: a connection
    /// lives past it only with a fresh token.
    pub exp: i64,
}

/// Why a token is refused. Each maps to a stable error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed: {0}")]
    Malformed(String),
    #[error("token algorithm {0:?} is not accepted; sign with HS256")]
    Algorithm(String),
    #[error("token signature does not match the site's secret")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was signed for another site")]
    WrongSite,
    #[error("token lasts {0} s, longer than this server takes ({1} s); sign shorter-lived tokens")]
    TooLong(i64, i64),
}

impl TokenError {
    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            TokenError::Malformed(_) | TokenError::Signature | TokenError::TooLong(..) => {
                ErrorCode::TokenInvalid
            }
            TokenError::Algorithm(_) => ErrorCode::TokenAlgorithm,
            TokenError::Expired => ErrorCode::TokenExpired,
            TokenError::NotYetValid => ErrorCode::TokenNotYetValid,
            TokenError::WrongSite => ErrorCode::TokenWrongSite,
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
}

/// Signs claims as an HS256 JWT. The server uses it only in demo mode;
/// a site's backend does the same with any JWT library.
pub fn sign(claims: &Claims, secret: &Secret) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    // Serialising a struct of strings and integers cannot fail.
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let sig = URL_SAFE_NO_PAD.encode(
        mac(secret, signing_input.as_bytes())
            .finalize()
            .into_bytes(),
    );
    format!("{signing_input}.{sig}")
}

fn mac(secret: &Secret, data: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    mac
}

/// Verifies a token for `site` against the site's secret at time `now`
/// (seconds since the Unix epoch). A token may last at most `max_ttl`
/// seconds, from its `iat` (or from now, without one) to its `exp`: a
/// leaked token is worth little for long.
pub fn verify(
    token: &str,
    site: &SiteId,
    secret: &Secret,
    now: i64,
    max_ttl: i64,
) -> Result<Identity, TokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    let header: Header = decode_part(h, "header")?;
    if header.alg != "HS256" {
        return Err(TokenError::Algorithm(header.alg.chars().take(16).collect()));
    }
    let claims: Claims = decode_part(p, "claims")?;
    if claims.site != site.as_str() {
        return Err(TokenError::WrongSite);
    }
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| TokenError::Malformed("signature is not base64url".into()))?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    mac(secret, signing_input.as_bytes())
        .verify_slice(&sig)
        .map_err(|_| TokenError::Signature)?;
    if now > claims.exp.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = claims.nbf
        && now.saturating_add(LEEWAY_SECS) < nbf
    {
        return Err(TokenError::NotYetValid);
    }
    let issued = claims.iat.map_or(now, |iat| iat.min(now));
    let lifetime = claims.exp.saturating_sub(issued);
    if lifetime > max_ttl.saturating_add(LEEWAY_SECS) {
        return Err(TokenError::TooLong(lifetime, max_ttl));
    }
    let user = UserId::parse(claims.sub).map_err(|e| TokenError::Malformed(format!("sub: {e}")))?;
    let name = match &claims.name {
        Some(name) => Some(
            natter_shared::text::clean_label("name", name, natter_shared::limits::MAX_NAME_BYTES)
                .map_err(|e| TokenError::Malformed(e.to_string()))?,
        ),
        None => None,
    };
    Ok(Identity {
        site: site.clone(),
        user,
        name,
        exp: claims.exp,
    })
}

/// [`verify`] against the site's secret, or within the grace period of a
/// rotation against the one before it.
pub fn verify_for(
    token: &str,
    site: &crate::store::Site,
    now: i64,
    max_ttl: i64,
) -> Result<Identity, TokenError> {
    match verify(token, &site.id, &site.token_secret, now, max_ttl) {
        Err(TokenError::Signature) => match &site.previous_secret {
            Some((old, until)) if now < *until => verify(token, &site.id, old, now, max_ttl),
            _ => Err(TokenError::Signature),
        },
        other => other,
    }
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(format!("{what} is not base64url")))?;
    serde_json::from_slice(&bytes).map_err(|e| TokenError::Malformed(format!("{what}: {e}")))
}

/// A new random secret: 32 bytes, base64url.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new API key. Only its hash is stored.
pub fn new_api_key() -> Secret {
    Secret(format!("nk_{}", random_secret()))
}

/// The stored form of an API key: SHA-256, hex.
pub fn hash_api_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The default longest lifetime.
    const DAY: i64 = 86_400;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "alice".into(),
            site: "s1".into(),
            exp,
            nbf: None,
            iat: None,
            name: Some("Alice".into()),
        }
    }

    #[test]
    fn a_signed_token_verifies_and_variants_are_refused() {
        let site = SiteId::parse("s1").unwrap();
        let secret = Secret::new("k");
        let token = sign(&claims(2000), &secret);
        let id = verify(&token, &site, &secret, 1000, DAY).unwrap();
        assert_eq!(id.user.as_str(), "alice");
        assert_eq!(
            verify(&token, &site, &secret, 3000, DAY),
            Err(TokenError::Expired)
        );
        assert_eq!(
            verify(&token, &site, &Secret::new("other"), 1000, DAY),
            Err(TokenError::Signature)
        );
        let other = SiteId::parse("s2").unwrap();
        assert_eq!(
            verify(&token, &other, &secret, 1000, DAY),
            Err(TokenError::WrongSite)
        );
        let mut early = claims(2000);
        early.nbf = Some(1500);
        let token = sign(&early, &secret);
        assert_eq!(
            verify(&token, &site, &secret, 1000, DAY),
            Err(TokenError::NotYetValid)
        );
        assert!(verify(&token, &site, &secret, 1490, DAY).is_ok());
    }

    #[test]
    fn a_token_that_lasts_longer_than_the_server_takes_is_refused() {
        let site = SiteId::parse("s1").unwrap();
        let secret = Secret::new("k");
        // Issued a day ago, valid an hour more: 25 hours in all.
        let mut old = claims(100_000 + 3_600);
        old.iat = Some(100_000 - DAY);
        let token = sign(&old, &secret);
        assert_eq!(
            verify(&token, &site, &secret, 100_000, DAY),
            Err(TokenError::TooLong(DAY + 3_600, DAY))
        );
        // Times at the ends of the range are refused, not overflowed.
        for (exp, nbf) in [
            (i64::MAX, None),
            (i64::MAX, Some(i64::MAX)),
            (0, Some(i64::MIN)),
        ] {
            let mut far = claims(exp);
            far.nbf = nbf;
            let token = sign(&far, &secret);
            assert!(verify(&token, &site, &secret, 100_000, DAY).is_err());
        }
        // Without `iat`, the lifetime counts from now.
        let token = sign(&claims(100_000 + 2 * DAY), &secret);
        assert!(matches!(
            verify(&token, &site, &secret, 100_000, DAY),
            Err(TokenError::TooLong(..))
        ));
        let token = sign(&claims(100_000 + DAY), &secret);
        assert!(verify(&token, &site, &secret, 100_000, DAY).is_ok());
        assert_eq!(TokenError::TooLong(1, 0).code(), ErrorCode::TokenInvalid);
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(2000)).unwrap());
        let token = format!("{header}.{payload}.");
        let site = SiteId::parse("s1").unwrap();
        assert!(matches!(
            verify(&token, &site, &Secret::new("k"), 1000, DAY),
            Err(TokenError::Algorithm(_))
        ));
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(4096))]

            /// Any token, signed or not, with any claims: an identity or a
            /// refusal, never a panic.
            #[test]
            fn any_token_is_verified_or_refused_cleanly(
                header in "\\PC{0,40}",
                claims in proptest::collection::vec(
                    (proptest::sample::select(&["sub", "site", "exp", "nbf", "iat", "name", "x"][..]),
                     prop_oneof![
                        any::<i64>().prop_map(serde_json::Value::from),
                        "\\PC{0,12}".prop_map(serde_json::Value::from),
                        Just(serde_json::Value::Null),
                        Just(serde_json::Value::from("s1")),
                     ]),
                    0..7,
                ),
                signed in any::<bool>(),
                now in any::<i64>(),
                max_ttl in any::<i64>(),
            ) {
                let site = SiteId::parse("s1").unwrap();
                let secret = Secret::new("k");
                let claims: serde_json::Map<String, serde_json::Value> =
                    claims.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
                let h = if signed {
                    URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256"}"#)
                } else {
                    URL_SAFE_NO_PAD.encode(header.as_bytes())
                };
                let p = URL_SAFE_NO_PAD.encode(serde_json::Value::Object(claims).to_string());
                let input = format!("{h}.{p}");
                let sig = URL_SAFE_NO_PAD.encode(mac(&secret, input.as_bytes()).finalize().into_bytes());
                let _ = verify(&format!("{input}.{sig}"), &site, &secret, now, max_ttl);
                let _ = verify(&format!("{input}.{header}"), &site, &secret, now, max_ttl);
                let _ = verify(&header, &site, &secret, now, max_ttl);
            }
        }
    }

    #[test]
    fn secrets_do_not_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }
}
