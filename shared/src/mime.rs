//! File types, as both sides judge them: whether a site's allow-list takes
//! a type, and which types are inert enough to show inline. The server
//! decides on the type it sniffs from the bytes; the widget checks the
//! type the browser declares, to refuse early what the server would.

/// True when `mime` matches an entry of `allowed`: the same type, a family
/// (`image/*`) or `*`.
pub fn allowed(mime: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|entry| {
        let entry = entry.trim();
        entry == "*"
            || entry.eq_ignore_ascii_case(mime)
            || entry
                .strip_suffix("/*")
                .is_some_and(|family| mime.split('/').next() == Some(family))
    })
}

/// Types shown inline (images a browser decodes without script, audio,
/// video); everything else is served, and opened, as a download.
pub fn inline(mime: &str) -> bool {
    matches!(
        mime,
        "image/jpeg" | "image/png" | "image/gif" | "image/webp"
    ) || mime.starts_with("audio/")
        || mime.starts_with("video/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_take_types_families_and_everything() {
        let list = vec!["image/*".to_string(), "application/pdf".to_string()];
        assert!(allowed("image/png", &list));
        assert!(allowed("application/pdf", &list));
        assert!(!allowed("text/html", &list));
        assert!(!allowed("imagex/png", &list));
        assert!(allowed("text/html", &["*".to_string()]));
    }

    #[test]
    fn only_inert_types_show_inline() {
        assert!(inline("image/png"));
        assert!(inline("video/mp4"));
        assert!(!inline("text/html"));
        assert!(!inline("image/svg+xml"));
        assert!(!inline("application/pdf"));
    }
}
