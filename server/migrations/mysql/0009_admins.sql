-- People who run the chat through /admin. `sites` lists the site ids
-- (space-separated) an admin may manage; NULL: every site.
CREATE TABLE admins (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    email VARCHAR(255) NOT NULL,
    password_hash VARCHAR(255) CHARACTER SET ascii NOT NULL,
    sites TEXT CHARACTER SET ascii,
    created_at BIGINT NOT NULL,
    UNIQUE KEY admins_email (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Signed-in admins: the SHA-256 of the session cookie, until when it holds.
CREATE TABLE admin_sessions (
    token_hash VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    admin_id BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    KEY admin_sessions_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Each running node's latest live numbers, written every 10 s, so the
-- panel shows every node's whichever one it is served by.
CREATE TABLE node_stats (
    id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    label VARCHAR(255) NOT NULL,
    connections BIGINT NOT NULL,
    per_minute BIGINT NOT NULL,
    seen_at BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
