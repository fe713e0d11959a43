-- What was done to a site's chat on its behalf (deletions, bans, mutes,
-- report dismissals, webhook and settings changes): who, what, when.
CREATE TABLE audit_log (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    site_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    actor VARCHAR(255) NOT NULL,
    action VARCHAR(64) CHARACTER SET ascii NOT NULL,
    subject VARCHAR(255) NOT NULL,
    detail TEXT,
    at BIGINT NOT NULL,
    KEY audit_log_site (site_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
