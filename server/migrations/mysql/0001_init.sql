-- Identifiers are ASCII and compared byte for byte (ascii_bin): "Alice"
-- and "alice" are different users.
CREATE TABLE sites (
    id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    name VARCHAR(200) NOT NULL,
    token_secret VARCHAR(200) NOT NULL,
    api_key_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE site_origins (
    site_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    origin VARCHAR(255) NOT NULL,
    PRIMARY KEY (site_id, origin),
    FOREIGN KEY (site_id) REFERENCES sites(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE users (
    site_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    name VARCHAR(200),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (site_id, id),
    FOREIGN KEY (site_id) REFERENCES sites(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- last_seq is the room's sequence counter, bumped under the row lock in
-- the transaction that inserts the event: seqs commit in order, gap-free.
CREATE TABLE rooms (
    id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    site_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    kind VARCHAR(16) CHARACTER SET ascii NOT NULL,
    title VARCHAR(200),
    dialog_key VARCHAR(260) CHARACTER SET ascii COLLATE ascii_bin,
    last_seq BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    UNIQUE KEY rooms_dialog (site_id, dialog_key),
    FOREIGN KEY (site_id) REFERENCES sites(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE members (
    room_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    site_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    user_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    joined_at BIGINT NOT NULL,
    PRIMARY KEY (room_id, user_id),
    KEY members_by_user (site_id, user_id),
    FOREIGN KEY (room_id) REFERENCES rooms(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE events (
    room_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    seq BIGINT NOT NULL,
    ts BIGINT NOT NULL,
    kind VARCHAR(32) CHARACTER SET ascii NOT NULL,
    sender VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin,
    client_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin,
    body MEDIUMTEXT,
    subject VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin,
    PRIMARY KEY (room_id, seq),
    UNIQUE KEY events_idempotent (room_id, sender, client_id),
    FOREIGN KEY (room_id) REFERENCES rooms(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
