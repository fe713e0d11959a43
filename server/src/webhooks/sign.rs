//! Signing as the Standard Webhooks specification says: the secret is
//! `whsec_` and base64 of random bytes; the signature of a message is
//! `v1,` and base64 of HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`
//! keyed with the secret's bytes. Sites verify it with any library that
//! implements the specification.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The secret's prefix.
const PREFIX: &str = "whsec_";

/// A secret that cannot sign.
#[derive(Debug, thiserror::Error)]
#[error("a webhook secret is `whsec_` and base64 of at least 24 bytes")]
pub struct BadSecret;

/// A new random secret (24 bytes).
pub fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!("{PREFIX}{}", STANDARD.encode(bytes))
}

/// The `webhook-signature` header's value for one message.
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, BadSecret> {
    let key = STANDARD
        .decode(secret.strip_prefix(PREFIX).ok_or(BadSecret)?)
        .map_err(|_| BadSecret)?;
    if key.len() < 24 {
        return Err(BadSecret);
    }
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).map_err(|_| BadSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_specifications_example() {
        // The example of the Standard Webhooks specification.
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        )
        .expect("a valid secret");
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn new_secrets_sign_and_bad_ones_are_refused() {
        let secret = new_secret();
        assert!(secret.starts_with("whsec_"));
        assert_ne!(secret, new_secret());
        assert!(sign(&secret, "msg_1", 1, b"{}").is_ok());
        assert!(sign("nope", "msg_1", 1, b"{}").is_err());
        assert!(sign("whsec_!!", "msg_1", 1, b"{}").is_err());
        assert!(sign("whsec_c2hvcnQ=", "msg_1", 1, b"{}").is_err());
    }
}
