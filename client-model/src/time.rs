//! Timestamps as text, computed here rather than by the browser's `Date`
//! (whose `toISOString` throws on a time outside its range).

/// Milliseconds in a day.
const DAY_MS: i64 = 86_400_000;

/// The furthest a JavaScript `Date` reaches either side of 1970, in
/// milliseconds (100,000,000 days).
const DATE_RANGE_MS: i64 = 100_000_000 * DAY_MS;

/// Whether a JavaScript `Date` can hold this timestamp (milliseconds
/// since 1970).
pub fn in_date_range(ts: i64) -> bool {
    (-DATE_RANGE_MS..=DATE_RANGE_MS).contains(&ts)
}

/// A timestamp in milliseconds since 1970 as UTC ISO 8601 with
/// milliseconds (`2026-12-04T09:05:00.250Z`), as `Date.toISOString`
/// writes it; `None` outside a `Date`'s range.
pub fn iso_8601(ts: i64) -> Option<String> {
    if !in_date_range(ts) {
        return None;
    }
    let days = ts.div_euclid(DAY_MS);
    let ms = ts.rem_euclid(DAY_MS);
    let (year, month, day) = civil(days);
    let (h, m, s, milli) = (
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1_000 % 60,
        ms % 1_000,
    );
    let year = if (0..=9999).contains(&year) {
        format!("{year:04}")
    } else {
        // Beyond four digits, a signed six-digit year.
        format!("{}{:06}", if year < 0 { '-' } else { '+' }, year.abs())
    };
    Some(format!(
        "{year}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{milli:03}Z"
    ))
}

/// The proleptic Gregorian year, month (1–12) and day (1–31) of a count
/// of days since 1970-01-01.
fn civil(days: i64) -> (i64, i64, i64) {
    // Counted from 0000-03-01, in 400-year eras of 146,097 days, so
    // the leap day ends each year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_to_iso_string_writes() {
        for (ts, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_796_374_700_250, "2026-12-04T08:58:20.250Z"),
            (4_107_542_400_000, "2100-03-01T00:00:00.000Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
            (-62_198_755_200_000, "-000001-01-01T00:00:00.000Z"),
            (253_402_300_800_000, "+010000-01-01T00:00:00.000Z"),
            (DATE_RANGE_MS, "+275760-09-13T00:00:00.000Z"),
            (-DATE_RANGE_MS, "-271821-04-20T00:00:00.000Z"),
        ] {
            assert_eq!(iso_8601(ts).as_deref(), Some(text), "{ts}");
        }
    }

    #[test]
    fn a_time_out_of_range_has_no_text() {
        assert_eq!(iso_8601(DATE_RANGE_MS + 1), None);
        assert_eq!(iso_8601(-DATE_RANGE_MS - 1), None);
        assert_eq!(iso_8601(i64::MAX), None);
        assert_eq!(iso_8601(i64::MIN), None);
    }
}
