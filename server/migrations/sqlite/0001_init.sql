-- Sites (tenants). The API key is stored only as a SHA-256 hash.
CREATE TABLE sites (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    token_secret TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE site_origins (
    site_id TEXT NOT NULL REFERENCES sites(id),
    origin TEXT NOT NULL,
    PRIMARY KEY (site_id, origin)
);

CREATE TABLE users (
    site_id TEXT NOT NULL REFERENCES sites(id),
    id TEXT NOT NULL,
    name TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (site_id, id)
);

-- last_seq is the room's sequence counter: a writer bumps it inside the
-- transaction that inserts the event, so seqs commit in order, gap-free.
CREATE TABLE rooms (
    id TEXT PRIMARY KEY NOT NULL,
    site_id TEXT NOT NULL REFERENCES sites(id),
    kind TEXT NOT NULL,
    title TEXT,
    dialog_key TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (site_id, dialog_key)
);

CREATE TABLE members (
    room_id TEXT NOT NULL REFERENCES rooms(id),
    site_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX members_by_user ON members (site_id, user_id);

-- Every change in a room. (room_id, sender, client_id) makes sends idempotent.
CREATE TABLE events (
    room_id TEXT NOT NULL REFERENCES rooms(id),
    seq INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    sender TEXT,
    client_id TEXT,
    body TEXT,
    subject TEXT,
    PRIMARY KEY (room_id, seq),
    UNIQUE (room_id, sender, client_id)
);
