-- A file goes into one message: the client id of the message that holds
-- it, beside its room. Both are set in the transaction that stores the
-- message, so a refused send leaves its files free.
ALTER TABLE files ADD COLUMN client_id CHAR(36) CHARACTER SET ascii COLLATE ascii_bin;
