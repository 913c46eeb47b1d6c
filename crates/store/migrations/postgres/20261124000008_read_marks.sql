-- A counter per user that each batch of read marks raises, read in the same statement as
-- the sidebar's unread counts: it tells a cached count which of the user's reads it already
-- reflects (see src/unread.rs).
CREATE TABLE conversation_read_seq (
    org_id   UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    user_id  UUID NOT NULL,
    seq      BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
ALTER TABLE conversation_read_seq ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversation_read_seq FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON conversation_read_seq
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
GRANT SELECT, INSERT, UPDATE, DELETE ON conversation_read_seq TO frontdesk_app;
