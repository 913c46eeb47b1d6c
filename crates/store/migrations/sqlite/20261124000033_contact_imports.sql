-- CSV imports of contacts: the uploaded file, its column mapping, progress and report. The
-- worker finds work through import_queue (ids only, like the other work queues) and takes
-- a chunk of rows per transaction, so a crash resumes where it stopped.
CREATE TABLE contact_imports (
    org_id          BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id              BLOB NOT NULL,
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
    created_at      TEXT NOT NULL,
    finished_at     TEXT,
    PRIMARY KEY (org_id, id)
) STRICT;

CREATE TABLE import_queue (
    import_id    BLOB PRIMARY KEY,
    org_id       BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    queued_at    TEXT NOT NULL,
    lease_until  TEXT
) STRICT;
