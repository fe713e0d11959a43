//! What a file is, from its bytes: the type sniffed from its first bytes
//! (the declared one is never trusted), whether a site's allow-list takes
//! it, and whether it is inert enough to be shown inline.

/// Types a site takes when it has no list of its own.
pub use natter_shared::limits::DEFAULT_FILE_TYPES as DEFAULT_TYPES;

/// How many leading bytes sniffing looks at.
pub const SNIFF_BYTES: usize = 8192;

/// The type of a file whose first bytes are `head`: a known signature,
/// else `text/plain` when the bytes are UTF-8 without control characters
/// other than whitespace, else `application/octet-stream`.
pub fn sniff(head: &[u8]) -> String {
    if let Some(t) = infer::get(head) {
        return t.mime_type().to_string();
    }
    if looks_like_markup(head) {
        return "text/html".into();
    }
    if is_text(head) {
        return "text/plain".into();
    }
    "application/octet-stream".into()
}

/// HTML and SVG start with markup; they are never served as text/plain,
/// so an allow-list that takes text does not take them by accident.
fn looks_like_markup(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(&head[..head.len().min(512)]).to_ascii_lowercase();
    let t = text.trim_start_matches('\u{feff}').trim_start();
    t.starts_with("<!doctype")
        || t.starts_with("<html")
        || t.starts_with("<svg")
        || t.starts_with("<?xml")
        || t.starts_with("<script")
}

fn is_text(head: &[u8]) -> bool {
    // A cut in the middle of a character at the end of the head is fine.
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if e.error_len().is_none() => match std::str::from_utf8(&head[..e.valid_up_to()]) {
            Ok(s) => s,
            Err(_) => return false,
        },
        Err(_) => return false,
    };
    !valid
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t' | '\u{c}'))
}

pub use natter_shared::mime::{allowed, inline};

/// Raster images the server reads for dimensions, strips of metadata and
/// makes thumbnails of.
pub fn raster(mime: &str) -> bool {
    matches!(
        mime,
        "image/jpeg" | "image/png" | "image/gif" | "image/webp"
    )
}

/// Parses an allow-list given as text: comma-separated, trimmed, lower
/// case; each entry a type, a family (`image/*`) or `*`.
pub fn parse_list(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let ok = entry == "*"
            || entry.split_once('/').is_some_and(|(a, b)| {
                let token = |s: &str| {
                    !s.is_empty()
                        && s.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "!#$&^_.+-".contains(c))
                };
                token(a) && (b == "*" || token(b))
            });
        if !ok {
            return Err(format!(
                "{entry:?} is not a type, a family like image/* or *"
            ));
        }
        out.push(entry.to_ascii_lowercase());
    }
    if out.is_empty() {
        return Err("the list of file types is empty".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffing_trusts_bytes_not_names() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(sniff("plain words, ünïcode\n".as_bytes()), "text/plain");
        assert_eq!(sniff(b"<!DOCTYPE html><script>x</script>"), "text/html");
        assert_eq!(sniff(b"<svg onload=alert(1)>"), "text/html");
        // Served as text/plain with nosniff, it never runs.
        assert_eq!(sniff(b"hello <script>alert(1)</script>"), "text/plain");
        assert_eq!(sniff(&[0, 1, 2, 3, 255]), "application/octet-stream");
    }

    #[test]
    fn allow_lists_take_types_families_and_everything() {
        let list = parse_list("image/*, application/pdf").unwrap();
        assert!(allowed("image/png", &list));
        assert!(allowed("application/pdf", &list));
        assert!(!allowed("text/html", &list));
        assert!(allowed("text/html", &parse_list("*").unwrap()));
        assert!(parse_list("image/").is_err());
        assert!(parse_list(" , ").is_err());
        let default = parse_list(DEFAULT_TYPES).unwrap();
        assert!(!allowed("text/html", &default));
        assert!(allowed("audio/mpeg", &default));
    }
}
