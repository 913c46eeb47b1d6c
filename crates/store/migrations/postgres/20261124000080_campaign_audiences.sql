-- Campaign audiences from a CSV file, and drafts that can be edited.
--
-- An import records the contacts its rows became (with the row's line, so a campaign can
-- read that row's other columns as values). A campaign's audience is a segment or an
-- import: exactly one of segment_id and import_id.

CREATE TABLE contact_import_contacts (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    import_id   UUID NOT NULL,
    contact_id  UUID NOT NULL,
    -- the row's line in the file (the header is line 1)
    line        INTEGER NOT NULL CHECK (line >= 2),
    PRIMARY KEY (org_id, import_id, contact_id),
    FOREIGN KEY (org_id, import_id) REFERENCES contact_imports (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, contact_id) REFERENCES contacts (org_id, id) ON DELETE CASCADE
);

ALTER TABLE campaigns ALTER COLUMN segment_id DROP NOT NULL;
ALTER TABLE campaigns ADD COLUMN import_id UUID;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_one_audience CHECK ((segment_id IS NULL) <> (import_id IS NULL));
ALTER TABLE campaigns ADD CONSTRAINT campaigns_import_fk FOREIGN KEY (org_id, import_id) REFERENCES contact_imports (org_id, id);

ALTER TABLE contact_import_contacts ENABLE ROW LEVEL SECURITY;
ALTER TABLE contact_import_contacts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON contact_import_contacts
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

GRANT SELECT, INSERT, UPDATE, DELETE ON contact_import_contacts TO frontdesk_app;
