//! End-to-end tests: the real `natter` server on a free port, with a
//! fresh SQLite file or a fresh MariaDB database, spoken to over real
//! WebSockets and HTTP. One binary; a file per area.

/// Runs each named `async fn(Db)` of a module once on SQLite and once on
/// MariaDB, as `MODULE::sqlite::NAME` and `MODULE::mariadb::NAME`.
/// Defined before the modules, so each of them can use it.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(Db::Sqlite).await } )*
        }
        mod mariadb {
            use super::*;
            $( #[tokio::test] async fn $name() { super::$name(Db::MariaDb).await } )*
        }
    };
}

mod abuse;
mod admin;
mod api;
mod auth;
mod chat;
mod commits;
mod demo;
mod files;
mod isolation;
mod moderation;
mod nodes;
mod openapi;
mod people;
mod robustness;
mod s3;
mod store;
mod webhooks;
mod widget;

/// Fails the test if anything in the process panicked.
pub fn assert_no_panics() {
    assert_eq!(
        natter_tests::panics(),
        0,
        "a panic happened somewhere in the server"
    );
}
