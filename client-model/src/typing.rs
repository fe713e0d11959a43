//! Typing indicators as plain data: when this tab says the person is
//! typing, who is shown typing where, and when that goes stale. Typing is
//! ephemeral: never stored, never queued while offline. Time is passed in
//! (milliseconds since the Unix epoch), so the rules are unit-tested
//! natively.

use natter_shared::{RoomId, UserId};

/// How long a `typing` frame shows; clients repeat it while typing.
pub const SHOWN_MS: i64 = 5_000;
/// How often this client says it is typing, at most.
const SAY_EVERY_MS: i64 = 3_000;

/// Who types where, as this tab knows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Typing {
    /// Where and when this tab last said the person is typing.
    said: Option<(RoomId, i64)>,
    /// Others typing, each with when we last heard it.
    heard: Vec<Typist>,
}

/// Someone typing in a room.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Typist {
    room: RoomId,
    user: UserId,
    since: i64,
}

impl Typing {
    /// The person typed in `room`: true when the others should be told
    /// now (the first keystroke, another room, or a few seconds since it
    /// was last said).
    pub fn should_say(&mut self, room: &RoomId, now: i64) -> bool {
        let recent = self
            .said
            .as_ref()
            .is_some_and(|(r, at)| r == room && now - at < SAY_EVERY_MS);
        if !recent {
            self.said = Some((room.clone(), now));
        }
        !recent
    }

    /// A `typing` frame: `user` types in `room`.
    pub fn heard(&mut self, room: RoomId, user: UserId, now: i64) {
        self.heard.retain(|t| !(t.room == room && t.user == user));
        self.heard.push(Typist {
            room,
            user,
            since: now,
        });
    }

    /// `user` wrote in `room`, which ends their typing. True when they
    /// were shown typing.
    pub fn wrote(&mut self, room: &RoomId, user: &UserId) -> bool {
        let before = self.heard.len();
        self.heard.retain(|t| !(t.room == *room && t.user == *user));
        self.heard.len() != before
    }

    /// Forgets whoever was not heard for [`SHOWN_MS`]. True when someone
    /// was forgotten.
    pub fn expire(&mut self, now: i64) -> bool {
        let before = self.heard.len();
        self.heard.retain(|t| now - t.since < SHOWN_MS);
        self.heard.len() != before
    }

    /// Who is shown typing in `room` at `now`, in the order they started,
    /// leaving out the signed-in user.
    pub fn in_room(&self, room: &RoomId, me: Option<&UserId>, now: i64) -> Vec<UserId> {
        self.heard
            .iter()
            .filter(|t| t.room == *room && Some(&t.user) != me)
            .filter(|t| now - t.since < SHOWN_MS)
            .map(|t| t.user.clone())
            .collect()
    }
}

/// "Bob is typing…" for the names shown typing; `None` for nobody.
pub fn sentence(names: &[String]) -> Option<String> {
    match names {
        [] => None,
        [one] => Some(format!("{one} is typing…")),
        [first, second] => Some(format!("{first} and {second} are typing…")),
        [first, ..] => Some(format!(
            "{first} and {} others are typing…",
            names.len() - 1
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(id: &str) -> RoomId {
        RoomId::parse(id).unwrap()
    }

    fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }

    #[test]
    fn typing_is_said_at_most_every_few_seconds_per_room() {
        let mut typing = Typing::default();
        assert!(typing.should_say(&room("r_a"), 0));
        assert!(!typing.should_say(&room("r_a"), 1_000));
        assert!(!typing.should_say(&room("r_a"), SAY_EVERY_MS - 1));
        assert!(typing.should_say(&room("r_a"), SAY_EVERY_MS));
        assert!(
            typing.should_say(&room("r_b"), SAY_EVERY_MS + 1),
            "another room is news"
        );
        assert!(
            typing.should_say(&room("r_a"), SAY_EVERY_MS + 2),
            "and so is coming back"
        );
    }

    #[test]
    fn others_typing_show_in_their_room_until_stale() {
        let mut typing = Typing::default();
        typing.heard(room("r_a"), user("bob"), 0);
        typing.heard(room("r_b"), user("carol"), 0);
        assert_eq!(typing.in_room(&room("r_a"), None, 1), [user("bob")]);
        assert!(typing.in_room(&room("r_a"), None, SHOWN_MS).is_empty());
        assert!(!typing.expire(SHOWN_MS - 1));
        assert!(typing.expire(SHOWN_MS));
        assert!(typing.in_room(&room("r_b"), None, 0).is_empty());
    }

    #[test]
    fn hearing_again_keeps_one_entry_and_restarts_its_time() {
        let mut typing = Typing::default();
        typing.heard(room("r_a"), user("bob"), 0);
        typing.heard(room("r_a"), user("bob"), 4_000);
        assert_eq!(typing.in_room(&room("r_a"), None, 6_000), [user("bob")]);
        assert!(!typing.expire(6_000));
    }

    #[test]
    fn a_message_ends_its_authors_typing() {
        let mut typing = Typing::default();
        typing.heard(room("r_a"), user("bob"), 0);
        typing.heard(room("r_a"), user("carol"), 0);
        assert!(!typing.wrote(&room("r_b"), &user("bob")), "another room");
        assert!(typing.wrote(&room("r_a"), &user("bob")));
        assert_eq!(typing.in_room(&room("r_a"), None, 1), [user("carol")]);
    }

    #[test]
    fn the_signed_in_user_is_never_shown_typing() {
        let mut typing = Typing::default();
        typing.heard(room("r_a"), user("alice"), 0);
        typing.heard(room("r_a"), user("bob"), 0);
        let alice = user("alice");
        assert_eq!(typing.in_room(&room("r_a"), Some(&alice), 1), [user("bob")]);
    }

    #[test]
    fn the_sentence_names_one_or_two_and_counts_more() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(sentence(&[]), None);
        assert_eq!(
            sentence(&names(&["Bob"])).as_deref(),
            Some("Bob is typing…")
        );
        assert_eq!(
            sentence(&names(&["Bob", "Carol"])).as_deref(),
            Some("Bob and Carol are typing…")
        );
        assert_eq!(
            sentence(&names(&["Bob", "Carol", "Dan"])).as_deref(),
            Some("Bob and 2 others are typing…")
        );
    }
}
