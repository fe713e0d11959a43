//! WebSocket close codes: the standard ones the server uses, and Natter's
//! own in the private range (4000–4999). Both sides read them from here.

/// Heartbeat timeout: nothing heard for two intervals.
pub const HEARTBEAT: u16 = 4000;
/// Authentication refused; the close reason is the error code.
pub const AUTH: u16 = 4001;
/// No `auth` frame in time.
pub const AUTH_TIMEOUT: u16 = 4002;
/// Too many connections for this user; the close reason is the error code.
pub const TOO_MANY: u16 = 4003;
/// Normal closure (standard): the client said goodbye.
pub const NORMAL: u16 = 1000;
/// Server going away (standard): shutting down.
pub const GOING_AWAY: u16 = 1001;
/// Protocol error (standard).
pub const PROTOCOL: u16 = 1002;
/// Invalid data (standard): a text message that is not UTF-8.
pub const INVALID_DATA: u16 = 1007;
/// Message too big (standard): a frame over the size limit.
pub const TOO_BIG: u16 = 1009;
/// Internal error (standard): the server could not serve the connection.
pub const INTERNAL: u16 = 1011;
