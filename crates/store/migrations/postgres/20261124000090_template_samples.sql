-- Media header samples for templates. A Cloud channel may name its Meta app (the Resumable
-- Upload API is app-scoped: `POST /{app-id}/uploads`); not a secret, validated as digits.
-- The simulator keeps Meta's upload sessions: the declared file, the bytes received so far
-- (`file_offset`), and, once complete, the handle a template's `header_handle` names.
ALTER TABLE channels ADD COLUMN app_id TEXT CHECK (app_id IS NULL OR app_id ~ '^[0-9]{1,32}$');

CREATE TABLE sim_uploads (
    org_id       UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id           TEXT NOT NULL,
    channel_id   UUID NOT NULL,
    sig          TEXT NOT NULL,
    file_name    TEXT NOT NULL,
    file_type    TEXT NOT NULL,
    file_length  BIGINT NOT NULL CHECK (file_length > 0),
    file_offset  BIGINT NOT NULL DEFAULT 0 CHECK (file_offset >= 0 AND file_offset <= file_length),
    bytes        BYTEA NOT NULL,
    handle       TEXT,
    created_ms   BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, channel_id) REFERENCES sim_numbers (org_id, channel_id) ON DELETE CASCADE
);
CREATE UNIQUE INDEX sim_uploads_by_handle ON sim_uploads (org_id, handle) WHERE handle IS NOT NULL;

ALTER TABLE sim_uploads ENABLE ROW LEVEL SECURITY;
ALTER TABLE sim_uploads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sim_uploads
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
GRANT SELECT, INSERT, UPDATE, DELETE ON sim_uploads TO frontdesk_app;
