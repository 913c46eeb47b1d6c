-- Read-only links to a queue's waiting-room screen, for a TV that holds no member session.
-- Only the SHA-256 of a link's token is stored; a revoked link stops working at once.
CREATE TABLE queue_screen_links (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    queue_id    BLOB NOT NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    token_hash  BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT,
    PRIMARY KEY (org_id, id),
    -- Unique keys lead with org_id (uniqueness checks ignore RLS); 256 random bits do not collide.
    UNIQUE (org_id, token_hash),
    FOREIGN KEY (org_id, queue_id) REFERENCES queues (org_id, id) ON DELETE CASCADE
);
CREATE INDEX queue_screen_links_by_queue ON queue_screen_links (org_id, queue_id);
CREATE INDEX queue_screen_links_by_token ON queue_screen_links (token_hash);
