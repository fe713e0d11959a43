-- What was done to a site's chat on its behalf (deletions, bans, mutes,
-- report dismissals, webhook and settings changes): who, what, when.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT,
    at INTEGER NOT NULL
);
CREATE INDEX audit_log_site ON audit_log (site_id, id);
