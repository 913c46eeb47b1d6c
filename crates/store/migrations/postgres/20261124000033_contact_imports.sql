-- CSV imports of contacts: the uploaded file, its column mapping, progress and report. The
-- worker finds work through import_queue (ids only, like the other work queues) and takes
-- a chunk of rows per transaction, so a crash resumes where it stopped.
CREATE TABLE contact_imports (
    org_id          UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id              UUID NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('uploaded', 'queued', 'running', 'done', 'failed')),
    filename        TEXT NOT NULL CHECK (length(filename) <= 200),
    csv             TEXT NOT NULL CHECK (length(csv) <= 2097152),
    columns         TEXT NOT NULL,
    mapping         TEXT,
    total_rows      INTEGER NOT NULL,
    processed_rows  INTEGER NOT NULL DEFAULT 0,
    created_count   INTEGER NOT NULL DEFAULT 0,
    updated_count   INTEGER NOT NULL DEFAULT 0,
    rejected        TEXT NOT NULL DEFAULT '[]',
    dry_run         TEXT,
    created_by      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ,
    PRIMARY KEY (org_id, id)
);

CREATE TABLE import_queue (
    import_id    UUID PRIMARY KEY,
    org_id       UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    queued_at    TIMESTAMPTZ NOT NULL,
    lease_until  TIMESTAMPTZ
);

ALTER TABLE contact_imports ENABLE ROW LEVEL SECURITY;
ALTER TABLE contact_imports FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON contact_imports
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

GRANT SELECT, INSERT, UPDATE, DELETE ON contact_imports, import_queue TO frontdesk_app;
