-- A rotated token secret keeps working until previous_until (seconds
-- since the Unix epoch), so people signed in with tokens of the old one
-- are not thrown out at once.
ALTER TABLE sites ADD COLUMN previous_secret TEXT;
ALTER TABLE sites ADD COLUMN previous_until INTEGER;

-- A user the site banned (1): their connections close, their tokens no
-- longer connect, until the ban is lifted.
ALTER TABLE users ADD COLUMN banned INTEGER NOT NULL DEFAULT 0;
