-- Files people upload to post in messages. An upload in progress has
-- completed_at NULL; its bytes so far are parts in the file store under
-- uploads/ID/. room_id is the room it was first posted in: its members
-- may download it.
CREATE TABLE files (
    id TEXT PRIMARY KEY NOT NULL,
    site_id TEXT NOT NULL REFERENCES sites(id),
    user_id TEXT NOT NULL,
    name TEXT NOT NULL,
    length INTEGER NOT NULL,
    received INTEGER NOT NULL DEFAULT 0,
    mime TEXT,
    width INTEGER,
    height INTEGER,
    thumb INTEGER NOT NULL DEFAULT 0,
    room_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    completed_at INTEGER
);
CREATE INDEX files_by_user ON files (site_id, user_id, created_at);
CREATE INDEX files_open ON files (completed_at, updated_at);

-- A message's attachments, as JSON (the protocol's shape).
ALTER TABLE events ADD COLUMN files TEXT;

-- A site's own allow-list of file types (comma-separated); NULL: the
-- server's default.
ALTER TABLE sites ADD COLUMN file_types TEXT;
