//! Short-lived signed links, for what a page cannot send headers with
//! (`<img src>`, `<audio src>`, a download link): the file, which variant,
//! and an expiry, signed with HMAC-SHA256 under a key derived from the
//! site's token secret. Guessing one is as hard as forging a token;
//! rotating the secret revokes them all.

use crate::auth::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use natter_shared::FileId;
use sha2::Sha256;

/// The original or its thumbnail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Original,
    Thumb,
}

impl Variant {
    fn as_str(self) -> &'static str {
        match self {
            Variant::Original => "original",
            Variant::Thumb => "thumb",
        }
    }
}

fn mac(secret: &Secret, file: &FileId, variant: Variant, exp: i64) -> Hmac<Sha256> {
    // Keyed apart from tokens: a link's signature is never a token's.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"natter-file-link\0");
    mac.update(file.as_str().as_bytes());
    mac.update(b"\0");
    mac.update(variant.as_str().as_bytes());
    mac.update(b"\0");
    mac.update(exp.to_string().as_bytes());
    mac
}

/// The signature of a link to `file` valid until `exp` (Unix seconds).
pub fn sign(secret: &Secret, file: &FileId, variant: Variant, exp: i64) -> String {
    URL_SAFE_NO_PAD.encode(mac(secret, file, variant, exp).finalize().into_bytes())
}

/// Why a link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link has expired")]
    Expired,
    #[error("the link's signature is wrong")]
    BadSignature,
}

/// Checks a link's signature (in constant time) and expiry.
pub fn verify(
    secret: &Secret,
    file: &FileId,
    variant: Variant,
    exp: i64,
    sig: &str,
    now: i64,
) -> Result<(), LinkError> {
    let Ok(raw) = URL_SAFE_NO_PAD.decode(sig) else {
        return Err(LinkError::BadSignature);
    };
    mac(secret, file, variant, exp)
        .verify_slice(&raw)
        .map_err(|_| LinkError::BadSignature)?;
    if exp < now {
        return Err(LinkError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_verify_until_they_expire_and_only_for_their_file() {
        let secret = Secret::new("s3cret");
        let file = FileId::parse("f_1").unwrap();
        let sig = sign(&secret, &file, Variant::Original, 100);
        assert_eq!(
            verify(&secret, &file, Variant::Original, 100, &sig, 99),
            Ok(())
        );
        assert_eq!(
            verify(&secret, &file, Variant::Original, 100, &sig, 101),
            Err(LinkError::Expired)
        );
        let other = FileId::parse("f_2").unwrap();
        for (f, v, exp) in [
            (&other, Variant::Original, 100),
            (&file, Variant::Thumb, 100),
            (&file, Variant::Original, 200),
        ] {
            assert_eq!(
                verify(&secret, f, v, exp, &sig, 0),
                Err(LinkError::BadSignature)
            );
        }
        let rotated = Secret::new("other");
        assert_eq!(
            verify(&rotated, &file, Variant::Original, 100, &sig, 0),
            Err(LinkError::BadSignature)
        );
        assert_eq!(
            verify(&secret, &file, Variant::Original, 100, "!!", 0),
            Err(LinkError::BadSignature)
        );
    }
}
