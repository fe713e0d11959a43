-- A site's webhook endpoints. `events` is a set of types as bits (see
-- natter_shared::webhooks::WebhookType::bit). One node at a time delivers
-- an endpoint's events: the one whose lease (lease_owner until
-- lease_until, ms) holds.
CREATE TABLE webhooks (
    id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL PRIMARY KEY,
    site_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    url VARCHAR(2048) NOT NULL,
    secret VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    events BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    paused_at BIGINT,
    lease_owner VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin,
    lease_until BIGINT NOT NULL DEFAULT 0,
    KEY webhooks_site (site_id),
    FOREIGN KEY (site_id) REFERENCES sites(id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- What waits to be delivered, written in the transaction of its event.
-- Per endpoint and room, rows go out in id order (which is seq order);
-- a delivered row is deleted.
CREATE TABLE webhook_outbox (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    webhook_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    room_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    seq BIGINT NOT NULL,
    type BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL DEFAULT 0,
    first_failed_at BIGINT,
    KEY webhook_outbox_room (webhook_id, room_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Every delivery attempt, newest kept.
CREATE TABLE webhook_attempts (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    webhook_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    message_id VARCHAR(128) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    type BIGINT NOT NULL,
    at BIGINT NOT NULL,
    status BIGINT,
    error VARCHAR(500),
    ok BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    KEY webhook_attempts_hook (webhook_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
