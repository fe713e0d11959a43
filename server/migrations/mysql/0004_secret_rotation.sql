-- A rotated token secret keeps working until previous_until (seconds
-- since the Unix epoch), so people signed in with tokens of the old one
-- are not thrown out at once.
ALTER TABLE sites ADD COLUMN previous_secret VARCHAR(255);
ALTER TABLE sites ADD COLUMN previous_until BIGINT;
