-- The memberships begun lately, for the nodes' sweep: a room whose
-- announcement between nodes was lost still reaches its members.
CREATE INDEX members_by_time ON members (joined_at);
