//! Default limits. The server makes each configurable and tells every
//! client the ones in force in its `hello` frame ([`crate::Limits`]).

/// Largest WebSocket message the server accepts, in bytes. Larger ones
/// close the connection with code 1009 (message too big).
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Largest message body, in bytes of UTF-8.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Events per catch-up or history page.
pub const PAGE_SIZE: u32 = 200;

/// Catch-up pages per room in one `sync`, and pages one `history`
/// request is answered with (`--max-catch-up-pages`).
pub const HISTORY_PAGES: u32 = 10;
/// Most cursors one `sync` frame may carry.
pub const MAX_CURSORS: usize = 10_000;
/// Longest room title, in bytes.
pub const MAX_TITLE_BYTES: usize = 200;
/// Longest display name, in bytes.
pub const MAX_NAME_BYTES: usize = 100;
/// Most members one room may have.
pub const MAX_MEMBERS: usize = 10_000;
/// Members a room's `RoomInfo` lists; the rest are read page by page
/// (`members`).
pub const MEMBERS_LISTED: u32 = 100;
/// Most members one `members` answer (or API page) holds.
pub const MEMBERS_PAGE: u32 = 500;
/// Largest file, in bytes.
pub const MAX_FILE_BYTES: u64 = 25 * 1024 * 1024;
/// Most files one message may carry.
pub const MAX_FILES_PER_MESSAGE: usize = 10;
/// File types a site takes unless it sets its own list (comma-separated
/// MIME types and families).
pub const DEFAULT_FILE_TYPES: &str = "image/jpeg,image/png,image/gif,image/webp,audio/*,video/*,\
application/pdf,text/plain,application/zip,application/msword,\
application/vnd.openxmlformats-officedocument.wordprocessingml.document,\
application/vnd.openxmlformats-officedocument.spreadsheetml.sheet,\
application/vnd.openxmlformats-officedocument.presentationml.presentation,\
application/vnd.oasis.opendocument.text,application/vnd.oasis.opendocument.spreadsheet";
