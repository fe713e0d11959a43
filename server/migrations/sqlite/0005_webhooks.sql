-- A site's webhook endpoints. `events` is a set of types as bits (see
-- natter_shared::webhooks::WebhookType::bit). One node at a time delivers
-- an endpoint's events: the one whose lease (lease_owner until
-- lease_until, ms) holds.
CREATE TABLE webhooks (
    id TEXT PRIMARY KEY NOT NULL,
    site_id TEXT NOT NULL REFERENCES sites(id),
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    events INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    paused_at INTEGER,
    lease_owner TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhooks_site ON webhooks (site_id);

-- What waits to be delivered, written in the transaction of its event.
-- Per endpoint and room, rows go out in id order (which is seq order);
-- a delivered row is deleted.
CREATE TABLE webhook_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL,
    room_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL DEFAULT 0,
    first_failed_at INTEGER
);
CREATE INDEX webhook_outbox_room ON webhook_outbox (webhook_id, room_id, id);

-- Every delivery attempt, newest kept.
CREATE TABLE webhook_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    webhook_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    type INTEGER NOT NULL,
    at INTEGER NOT NULL,
    status INTEGER,
    error TEXT,
    ok INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL
);
CREATE INDEX webhook_attempts_hook ON webhook_attempts (webhook_id, id);
