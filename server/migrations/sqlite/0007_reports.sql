-- Messages members reported to the site's moderators, one report per
-- member and message.
CREATE TABLE reports (
    id TEXT PRIMARY KEY NOT NULL,
    site_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    reporter TEXT NOT NULL,
    note TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (room_id, seq, reporter)
);
CREATE INDEX reports_site ON reports (site_id, id);

-- A `message.reported` webhook names its report.
ALTER TABLE webhook_outbox ADD COLUMN report_id TEXT;
