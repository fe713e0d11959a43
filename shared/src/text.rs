//! Checks on the text people write: message bodies, titles and display
//! names. Each is refused with a [`TextError`] naming what is wrong.

use serde::Serialize;

/// Why a message body, title or name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("{what} is {len} bytes, over the limit of {max}")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{0} contains a NUL character")]
    Nul(&'static str),
}

/// A message body that passed its checks: not blank, at most the limit
/// it was parsed against, no NUL. Past the boundary that parsed it,
/// nothing checks a body again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Body(String);

impl Body {
    /// Parses a body of at most `max` bytes.
    pub fn parse(text: String, max: usize) -> Result<Body, TextError> {
        check_body(&text, max)?;
        Ok(Body(text))
    }

    /// Parses the caption of a message with files: like [`Body::parse`],
    /// but it may be empty.
    pub fn caption(text: String, max: usize) -> Result<Body, TextError> {
        if text.trim().is_empty() {
            return Ok(Body(String::new()));
        }
        Body::parse(text, max)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for Body {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a message body without keeping it: see [`Body::parse`].
pub fn check_body(body: &str, max: usize) -> Result<(), TextError> {
    check_text("message body", body, max)
}

/// A display name or title as kept: characters that hide or reorder text
/// (controls, bidirectional overrides and isolates, zero-width spaces and
/// other invisible format characters; the joiners emoji need stay) are
/// removed and spaces trimmed, then it is checked as [`check_text`] does.
pub fn clean_label(what: &'static str, text: &str, max: usize) -> Result<String, TextError> {
    let cleaned: String = text.chars().filter(|c| !hides_text(*c)).collect();
    let cleaned = cleaned.trim().to_string();
    check_text(what, &cleaned, max)?;
    Ok(cleaned)
}

/// True for the characters [`clean_label`] removes.
fn hides_text(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{180E}'
                | '\u{200B}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
        )
}

/// Checks a title or a display name: not blank, at most `max` bytes, no NUL.
pub fn check_text(what: &'static str, text: &str, max: usize) -> Result<(), TextError> {
    if text.trim().is_empty() {
        return Err(TextError::Empty(what));
    }
    if text.len() > max {
        return Err(TextError::TooLong {
            what,
            len: text.len(),
            max,
        });
    }
    if text.contains('\0') {
        return Err(TextError::Nul(what));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_lose_what_hides_or_reorders_text() {
        let clean = |t: &str| clean_label("name", t, 64);
        assert_eq!(clean("\u{202E}gpj.exe"), Ok("gpj.exe".into()));
        assert_eq!(clean("Al\u{200B}ice\u{2066}\u{2069}"), Ok("Alice".into()));
        assert_eq!(clean(" Bob\u{FEFF} "), Ok("Bob".into()));
        // The joiner that makes one emoji of two stays.
        assert_eq!(clean("👩\u{200D}🔬 Eve"), Ok("👩\u{200D}🔬 Eve".into()));
        assert_eq!(clean("\u{202E}\u{200F}"), Err(TextError::Empty("name")));
        assert_eq!(clean("tab\there"), Ok("tabhere".into()));
    }

    #[test]
    fn bodies_are_checked() {
        assert!(check_body("hi", 10).is_ok());
        assert_eq!(check_body("  ", 10), Err(TextError::Empty("message body")));
        assert!(matches!(
            check_body("x".repeat(11).as_str(), 10),
            Err(TextError::TooLong { .. })
        ));
        assert!(check_body("a\0b", 10).is_err());
        assert_eq!(
            Body::parse("hi".into(), 10).map(Body::into_string),
            Ok("hi".into())
        );
        assert!(Body::parse(" \n".into(), 10).is_err());
        assert!(Body::parse("x".repeat(11), 10).is_err());
    }
}
