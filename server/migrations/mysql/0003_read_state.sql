-- Each member's read marker: the highest seq they have seen in the room.
-- It only moves forward; markers are written in batches, not per frame.
ALTER TABLE members ADD COLUMN read_seq BIGINT NOT NULL DEFAULT 0;

-- What a site shows its people: read receipts of others, per kind of
-- room, and who is online. 1: shown, 0: not.
ALTER TABLE sites ADD COLUMN receipts_dialog BIGINT NOT NULL DEFAULT 1;
ALTER TABLE sites ADD COLUMN receipts_group BIGINT NOT NULL DEFAULT 1;
ALTER TABLE sites ADD COLUMN presence BIGINT NOT NULL DEFAULT 1;

-- When a user's last connection closed (milliseconds), for "last seen".
ALTER TABLE users ADD COLUMN last_seen BIGINT;
