-- Imports of up to 100,000 rows: the file's rows are kept one per row at upload (the worker
-- reads a chunk by line instead of parsing the whole file per chunk; a campaign reads its
-- batch's rows by line), the number or user id of every row seen so far (duplicates are found
-- by key instead of by re-reading every earlier row), and the rejected rows of the last dry
-- run and of the import (appended per chunk instead of rewriting one list). An import
-- uploaded before this keeps its file in contact_imports.csv and is read from there.
CREATE TABLE contact_import_rows (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    import_id   UUID NOT NULL,
    -- the row's line in the file (the header is line 1)
    line        INTEGER NOT NULL CHECK (line >= 2),
    -- the row's values, a JSON array as long as the header
    cells       TEXT NOT NULL,
    PRIMARY KEY (org_id, import_id, line),
    FOREIGN KEY (org_id, import_id) REFERENCES contact_imports (org_id, id) ON DELETE CASCADE
);

CREATE TABLE contact_import_keys (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    import_id   UUID NOT NULL,
    key         TEXT NOT NULL,
    line        INTEGER NOT NULL,
    PRIMARY KEY (org_id, import_id, key),
    FOREIGN KEY (org_id, import_id) REFERENCES contact_imports (org_id, id) ON DELETE CASCADE
);

CREATE TABLE contact_import_rejections (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    import_id   UUID NOT NULL,
    phase       TEXT NOT NULL CHECK (phase IN ('dry_run', 'import')),
    line        INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (org_id, import_id, phase, line),
    FOREIGN KEY (org_id, import_id) REFERENCES contact_imports (org_id, id) ON DELETE CASCADE
);

ALTER TABLE contact_import_rows ENABLE ROW LEVEL SECURITY;
ALTER TABLE contact_import_rows FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON contact_import_rows
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
ALTER TABLE contact_import_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE contact_import_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON contact_import_keys
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
ALTER TABLE contact_import_rejections ENABLE ROW LEVEL SECURITY;
ALTER TABLE contact_import_rejections FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON contact_import_rejections
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

GRANT SELECT, INSERT, UPDATE, DELETE ON contact_import_rows, contact_import_keys, contact_import_rejections TO frontdesk_app;
