-- People who run the chat through /admin. `sites` lists the site ids
-- (space-separated) an admin may manage; NULL: every site.
CREATE TABLE admins (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    sites TEXT,
    created_at INTEGER NOT NULL
);

-- Signed-in admins: the SHA-256 of the session cookie, until when it holds.
CREATE TABLE admin_sessions (
    token_hash TEXT PRIMARY KEY NOT NULL,
    admin_id INTEGER NOT NULL REFERENCES admins(id),
    expires_at INTEGER NOT NULL
);
CREATE INDEX admin_sessions_expiry ON admin_sessions (expires_at);

-- Each running node's latest live numbers, written every 10 s, so the
-- panel shows every node's whichever one it is served by.
CREATE TABLE node_stats (
    id TEXT PRIMARY KEY NOT NULL,
    label TEXT NOT NULL,
    connections INTEGER NOT NULL,
    per_minute INTEGER NOT NULL,
    seen_at INTEGER NOT NULL
);
