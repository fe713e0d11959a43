//! The promises of the design, in real headless Chromium (and the chat
//! opening without its server in Firefox and WebKitGTK too): a host site
//! embeds the widget with its script tag, people chat through the real
//! `natter` binary, and a TCP proxy per person cuts and restores their
//! link. Every scenario runs on SQLite and on MariaDB, and asserts both on
//! what the people see and on what the database holds.
//!
//! Run by `cargo xtask test` (it builds the widget and the server first);
//! by hand: `cargo test -p natter-tests --features browser --test browser`.

mod harness;

mod absence;
mod admin;
mod chat;
mod crash;
mod files;
mod history;
mod moderation;
mod offline;
mod reading;
mod safety;
mod screenshots;
mod shell;
mod tabs;
mod trust;

/// Runs each scenario once per database, as `SCENARIO::browser_on_DB`
/// (`cargo xtask test --quick` skips them by that name).
macro_rules! on_both_databases {
    ($($module:ident :: $scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                use natter_tests::Db;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn browser_on_sqlite() {
                    crate::$module::$scenario(Db::Sqlite).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn browser_on_mariadb() {
                    crate::$module::$scenario(Db::MariaDb).await;
                }
            }
        )*
    };
}

on_both_databases!(
    admin::an_admin_signs_in_and_moderates_from_the_panel,
    admin::a_site_created_in_the_panel_chats_until_its_secret_is_rotated,
    chat::two_people_chat_in_a_dialog,
    moderation::a_deleted_message_goes_from_every_screen_and_cache,
    moderation::a_member_reports_a_message_from_the_widget,
    offline::messages_written_offline_arrive_once_in_order,
    offline::a_reload_or_a_new_tab_keeps_the_offline_messages,
    offline::a_connection_lost_without_a_word_is_replaced,
    history::cached_history_shows_before_any_server_reply,
    absence::a_long_absence_ends_complete_and_in_order,
    tabs::two_tabs_share_one_connection_and_hand_it_over,
    tabs::logout_wipes_the_user_and_signs_out_every_tab,
    trust::a_token_the_server_never_took_shows_nothing_of_the_cache,
    crash::a_server_killed_mid_burst_loses_and_doubles_nothing,
    safety::the_host_page_is_safe_from_the_chat,
    screenshots::the_readme_screenshots,
    shell::the_chat_opens_from_the_cache_with_the_server_down,
    shell::a_new_build_is_picked_up_on_the_next_load,
    shell::a_self_hosted_loader_is_pinned_by_its_hash,
    files::files_show_in_the_conversation,
    files::files_attached_offline_are_sent_after_a_reload,
    files::an_upload_cut_halfway_continues,
    files::files_shown_once_open_offline,
    files::hostile_files_never_run,
    files::refused_files_say_why,
    files::an_upload_can_be_cancelled,
    reading::read_state_is_the_servers_and_shown,
    reading::a_room_restored_from_a_backup_is_rebuilt,
    reading::what_was_read_offline_counts_after_a_reload,
    reading::a_group_shows_its_members_and_who_is_online,
);

/// Runs a scenario that takes an engine in Firefox and in WebKitGTK, on
/// each database, as `SCENARIO::firefox_browser_on_DB` and
/// `SCENARIO::webkit_browser_on_DB`.
macro_rules! in_other_engines {
    ($($module:ident :: $scenario:ident => $name:ident),* $(,)?) => {
        $(
            mod $name {
                use crate::harness::Engine;
                use natter_tests::Db;

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn firefox_browser_on_sqlite() {
                    crate::$module::$scenario(Db::Sqlite, Engine::Firefox).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn firefox_browser_on_mariadb() {
                    crate::$module::$scenario(Db::MariaDb, Engine::Firefox).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn webkit_browser_on_sqlite() {
                    crate::$module::$scenario(Db::Sqlite, Engine::WebKit).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn webkit_browser_on_mariadb() {
                    crate::$module::$scenario(Db::MariaDb, Engine::WebKit).await;
                }
            }
        )*
    };
}

in_other_engines!(
    shell::the_chat_opens_from_the_cache_in => the_chat_opens_from_the_cache_with_the_server_down_in,
);
