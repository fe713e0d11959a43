-- A member the site muted in a room may read but not post until
-- muted_until (ms since the Unix epoch). Leaving the room ends it.
ALTER TABLE members ADD COLUMN muted_until BIGINT;
