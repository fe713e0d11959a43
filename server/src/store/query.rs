//! Reads that either driver runs: through rusqlite on a blocking thread
//! with SQLite (one hand-off per query, where sqlx's SQLite driver hands
//! every row from its worker thread through a channel and its `Any`
//! driver copies every value once more), through the pool with MySQL.
//! Rows are decoded once, by column name, whichever driver read them
//! ([`Cols`]). What connections read takes this way: at their start the
//! user, their rooms and their room mates' last sight (a storm of
//! reconnecting clients makes thousands of these a second), later a room
//! announced to them, its members, their marker's room.

use super::{Store, StoreError};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::borrow::Cow;

/// A value bound to a query, in the order of its placeholders (`?`).
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Text(s.to_string())
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(v)
    }
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Arg::Text(s) => s.to_sql(),
            Arg::Int(v) => v.to_sql(),
        }
    }
}

/// A row as either driver read it: its columns by name.
pub(crate) trait Cols {
    fn text(&self, col: &str) -> Result<String, StoreError>;
    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError>;
    fn int(&self, col: &str) -> Result<i64, StoreError>;
    /// True when the query selected a column of that name.
    fn has(&self, col: &str) -> bool;
}

impl Cols for AnyRow {
    fn text(&self, col: &str) -> Result<String, StoreError> {
        Ok(self.try_get(col)?)
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        Ok(self.try_get(col)?)
    }

    fn int(&self, col: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(col)?)
    }

    fn has(&self, col: &str) -> bool {
        use sqlx::Column;
        self.columns().iter().any(|c| c.name() == col)
    }
}

impl Cols for rusqlite::Row<'_> {
    fn text(&self, col: &str) -> Result<String, StoreError> {
        Ok(self.get(col)?)
    }

    fn opt_text(&self, col: &str) -> Result<Option<String>, StoreError> {
        Ok(self.get(col)?)
    }

    fn int(&self, col: &str) -> Result<i64, StoreError> {
        Ok(self.get(col)?)
    }

    fn has(&self, col: &str) -> bool {
        self.as_ref().column_index(col).is_ok()
    }
}

impl Store {
    /// Runs a query that only reads, decoding each row with `decode`. A
    /// formatted `sql` holds placeholders only, never a value.
    pub(crate) async fn read_rows<T: Send + 'static>(
        &self,
        sql: impl Into<Cow<'static, str>>,
        args: Vec<Arg>,
        decode: impl Fn(&dyn Cols) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<Vec<T>, StoreError> {
        let sql = sql.into();
        if let Some(reader) = &self.reader {
            return reader
                .with(move |conn| {
                    // Kept prepared, as sqlx keeps its statements: a
                    // formatted text comes in few shapes (the number of
                    // its placeholders), and the least used are dropped.
                    let mut stmt = conn.prepare_cached(&sql)?;
                    let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
                    let mut out = Vec::new();
                    while let Some(row) = rows.next()? {
                        out.push(decode(row)?);
                    }
                    Ok(out)
                })
                .await;
        }
        let mut query = match sql {
            Cow::Borrowed(sql) => sqlx::query(sql),
            Cow::Owned(sql) => sqlx::query(sqlx::AssertSqlSafe(sql)),
        };
        for arg in args {
            query = match arg {
                Arg::Text(s) => query.bind(s),
                Arg::Int(v) => query.bind(v),
            };
        }
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| decode(row))
            .collect()
    }
}
