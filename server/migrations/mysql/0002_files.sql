-- Files people upload to post in messages. An upload in progress has
-- completed_at NULL; its bytes so far are parts in the file store under
-- uploads/ID/. room_id is the room it was first posted in: its members
-- may download it.
CREATE TABLE files (
    id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    site_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name VARCHAR(1024) NOT NULL,
    length BIGINT NOT NULL,
    received BIGINT NOT NULL DEFAULT 0,
    mime VARCHAR(255) CHARACTER SET ascii,
    width BIGINT,
    height BIGINT,
    thumb BIGINT NOT NULL DEFAULT 0,
    room_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT,
    KEY files_by_user (site_id, user_id, created_at),
    KEY files_open (completed_at, updated_at),
    FOREIGN KEY (site_id) REFERENCES sites(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A message's attachments, as JSON (the protocol's shape).
ALTER TABLE events ADD COLUMN files MEDIUMTEXT;

-- A site's own allow-list of file types (comma-separated); NULL: the
-- server's default.
ALTER TABLE sites ADD COLUMN file_types TEXT;
