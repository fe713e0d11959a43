//! The `Range` header of a download: one byte range (`bytes=a-b`,
//! `bytes=a-`, `bytes=-n`). Several ranges are answered with the whole
//! file, as RFC 9110 allows; a range outside the file is 416.

use std::ops::Range;

/// What to send of a file of `size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// The whole file (no header, several ranges, or one we ignore).
    Whole,
    /// These bytes (206).
    Part(Range<u64>),
    /// Nothing of the file is in the range (416).
    Unsatisfiable,
}

/// Reads a `Range` header value against a file of `size` bytes.
pub fn wanted(header: Option<&str>, size: u64) -> Wanted {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let num = |s: &str| s.trim().parse::<u64>().ok();
    let range = match (first.trim().is_empty(), last.trim().is_empty()) {
        // The last n bytes.
        (true, false) => match num(last) {
            Some(0) => return Wanted::Unsatisfiable,
            Some(n) => size.saturating_sub(n)..size,
            None => return Wanted::Whole,
        },
        (false, true) => match num(first) {
            Some(a) => a..size,
            None => return Wanted::Whole,
        },
        (false, false) => match (num(first), num(last)) {
            (Some(a), Some(b)) if a <= b => a..b.saturating_add(1).min(size),
            _ => return Wanted::Whole,
        },
        (true, true) => return Wanted::Whole,
    };
    if range.start >= size || range.is_empty() {
        Wanted::Unsatisfiable
    } else {
        Wanted::Part(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_of_a_ten_byte_file() {
        let w = |h: &str| wanted(Some(h), 10);
        assert_eq!(wanted(None, 10), Wanted::Whole);
        assert_eq!(w("bytes=0-4"), Wanted::Part(0..5));
        assert_eq!(w("bytes=5-"), Wanted::Part(5..10));
        assert_eq!(w("bytes=-3"), Wanted::Part(7..10));
        assert_eq!(w("bytes=-30"), Wanted::Part(0..10));
        assert_eq!(w("bytes=8-100"), Wanted::Part(8..10));
        assert_eq!(w("bytes=10-"), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=-0"), Wanted::Unsatisfiable);
        assert_eq!(w("bytes=0-1,4-5"), Wanted::Whole);
        assert_eq!(w("bytes=5-2"), Wanted::Whole);
        assert_eq!(w("items=0-1"), Wanted::Whole);
        assert_eq!(w("bytes=x-"), Wanted::Whole);
        assert_eq!(wanted(Some("bytes=0-"), 0), Wanted::Unsatisfiable);
    }
}
