-- Messages members reported to the site's moderators, one report per
-- member and message.
CREATE TABLE reports (
    id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    site_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    room_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    seq BIGINT NOT NULL,
    reporter VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    note TEXT,
    created_at BIGINT NOT NULL,
    UNIQUE KEY reports_once (room_id, seq, reporter),
    KEY reports_site (site_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- A `message.reported` webhook names its report.
ALTER TABLE webhook_outbox ADD COLUMN report_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin;
