-- Contact export requests: made by a member with contacts.export, approved (or refused) by
-- another person with contacts.approve_export, downloaded by the requester only.
CREATE TABLE contact_exports (
    org_id         BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id             BLOB NOT NULL,
    requested_by   TEXT NOT NULL,
    segment_id     BLOB,
    status         TEXT NOT NULL CHECK (status IN ('requested', 'approved', 'refused')),
    decided_by     TEXT,
    created_at     TEXT NOT NULL,
    decided_at     TEXT,
    downloads      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, id)
) STRICT;
