//! The hash maps looked up on every frame: the hub's, a connection's and
//! the read markers'. They hash with foldhash, several times faster than
//! the standard library's SipHash on short ids, seeded at random per
//! process. Their keys are ids the server already accepted (connections,
//! rooms a member follows, users a site signed for), never a string a
//! client may pick freely.

/// A hash map with the fast hasher.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// A hash set with the fast hasher.
pub type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
