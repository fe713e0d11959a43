//! The widget page's query, read the same way by the server (for the
//! `frame-ancestors` it sends) and by the app (for the site it runs as):
//! names and values percent-decoded (`+` is a space), and a `site` given
//! twice refused, so that no spelling of the URL can make the two read
//! different sites.

use crate::ids::{IdError, SiteId};

/// Why a query names no usable site.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("the query names the site more than once")]
    Duplicate,
    #[error("the query's site is malformed: {0}")]
    BadSite(#[from] IdError),
    #[error("the query is not valid percent-encoded UTF-8")]
    Encoding,
}

/// The `site` of a query (without its `?`); `None` when it names none.
pub fn site(query: &str) -> Result<Option<SiteId>, QueryError> {
    let mut found = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(name)? != "site" {
            continue;
        }
        if found.is_some() {
            return Err(QueryError::Duplicate);
        }
        found = Some(decode(value)?);
    }
    Ok(found.map(SiteId::parse).transpose()?)
}

/// Percent-decodes one name or value (`+` is a space).
fn decode(text: &str) -> Result<String, QueryError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(QueryError::Encoding)?;
                let hex = std::str::from_utf8(hex).map_err(|_| QueryError::Encoding)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| QueryError::Encoding)?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| QueryError::Encoding)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site_id(s: &str) -> Option<SiteId> {
        Some(SiteId::parse(s).unwrap())
    }

    #[test]
    fn the_site_is_read_decoded_and_only_once() {
        assert_eq!(site("site=demo"), Ok(site_id("demo")));
        assert_eq!(site("x=1&%73ite=demo"), Ok(site_id("demo")));
        assert_eq!(site("site=de%6Do&v=2"), Ok(site_id("demo")));
        assert_eq!(site(""), Ok(None));
        assert_eq!(site("sites=demo"), Ok(None));
        assert_eq!(
            site("%73ite=victim&site=attacker"),
            Err(QueryError::Duplicate)
        );
        assert_eq!(site("site=a&site=a"), Err(QueryError::Duplicate));
        assert_eq!(site("site=%zz"), Err(QueryError::Encoding));
        assert_eq!(site("site=%"), Err(QueryError::Encoding));
        assert!(matches!(site("site=a%20b"), Err(QueryError::BadSite(_))));
    }
}
