-- Read-only links to a queue's waiting-room screen, for a TV that holds no member session.
-- Only the SHA-256 of a link's token is stored; a revoked link stops working at once. The
-- public screen route finds its link by that hash (token scope), and reads nothing else
-- outside the link's organisation.
CREATE TABLE queue_screen_links (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          UUID NOT NULL,
    queue_id    UUID NOT NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    token_hash  BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ,
    PRIMARY KEY (org_id, id),
    -- Unique keys lead with org_id (uniqueness checks ignore RLS); 256 random bits do not collide.
    UNIQUE (org_id, token_hash),
    FOREIGN KEY (org_id, queue_id) REFERENCES queues (org_id, id) ON DELETE CASCADE
);
CREATE INDEX queue_screen_links_by_queue ON queue_screen_links (org_id, queue_id);
CREATE INDEX queue_screen_links_by_token ON queue_screen_links (token_hash);

ALTER TABLE queue_screen_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE queue_screen_links FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON queue_screen_links
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
CREATE POLICY screen_link_by_token ON queue_screen_links FOR SELECT
    USING (token_hash = frontdesk_presented_token());

GRANT SELECT, INSERT, UPDATE, DELETE ON queue_screen_links TO frontdesk_app;
