//! The widget's views. Each takes signals and plain data from the app and
//! knows nothing of the socket; text from the network is only ever put in
//! the DOM as text nodes, never as markup.

mod composer;
mod keyed;
mod messages;
mod rooms;
mod status;

pub use composer::{Composer, Draft, attach};
pub use messages::{MessageList, Reporting, clock};
pub use rooms::RoomList;
pub use status::{ConnectionStatus, Status};
