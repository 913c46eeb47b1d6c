-- Contact export requests: made by a member with contacts.export, approved (or refused) by
-- another person with contacts.approve_export, downloaded by the requester only.
CREATE TABLE contact_exports (
    org_id         UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id             UUID NOT NULL,
    requested_by   TEXT NOT NULL,
    segment_id     UUID,
    status         TEXT NOT NULL CHECK (status IN ('requested', 'approved', 'refused')),
    decided_by     TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    decided_at     TIMESTAMPTZ,
    downloads      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, id)
);

ALTER TABLE contact_exports ENABLE ROW LEVEL SECURITY;
ALTER TABLE contact_exports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON contact_exports
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

GRANT SELECT, INSERT, UPDATE, DELETE ON contact_exports TO frontdesk_app;
