-- Erasure on request, within a window: each request is recorded (who asked, when, when it
-- is due by), executed at once or after the organisation's delay (so it can be cancelled
-- meanwhile), and kept with its outcome. The organisation's window and delay are settings.
CREATE TABLE erasure_settings (
    org_id        UUID PRIMARY KEY REFERENCES organisations(id) ON DELETE CASCADE,
    window_days   INTEGER NOT NULL CHECK (window_days BETWEEN 1 AND 90),
    delay_hours   INTEGER NOT NULL CHECK (delay_hours >= 0),
    updated_at    TIMESTAMPTZ NOT NULL,
    CHECK (delay_hours <= window_days * 24)
);

CREATE TABLE erasure_requests (
    org_id        UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id            UUID NOT NULL,
    contact_id    UUID NOT NULL,
    requested_by  TEXT NOT NULL,
    requested_at  TIMESTAMPTZ NOT NULL,
    execute_at    TIMESTAMPTZ NOT NULL,
    due_by        TIMESTAMPTZ NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'done', 'cancelled')),
    finished_at   TIMESTAMPTZ,
    cancelled_by  TEXT,
    report        TEXT,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, contact_id) REFERENCES contacts (org_id, id) ON DELETE CASCADE,
    CHECK (execute_at <= due_by)
);
CREATE UNIQUE INDEX erasure_requests_one_pending ON erasure_requests (org_id, contact_id) WHERE state = 'pending';
CREATE INDEX erasure_requests_due ON erasure_requests (org_id, execute_at) WHERE state = 'pending';

ALTER TABLE erasure_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE erasure_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON erasure_settings
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
ALTER TABLE erasure_requests ENABLE ROW LEVEL SECURITY;
ALTER TABLE erasure_requests FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON erasure_requests
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
GRANT SELECT, INSERT, UPDATE, DELETE ON erasure_settings, erasure_requests TO frontdesk_app;

-- The blob store's garbage collector: blobs are content-addressed and may be shared by
-- organisations, so whether one is still referenced needs every organisation's media. The
-- application role sees one organisation at a time; this function, owned by the schema
-- owner, answers only which of the given hashes some media row still names (nothing else
-- leaves it), and only its owner is given a policy to read media across organisations.
CREATE INDEX media_by_blob ON media (blob_sha256) WHERE blob_sha256 IS NOT NULL;
CREATE POLICY blob_collector ON media FOR SELECT TO CURRENT_USER USING (true);
CREATE FUNCTION frontdesk_blobs_in_use(candidates TEXT[]) RETURNS SETOF TEXT
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public
    AS $$ SELECT DISTINCT m.blob_sha256 FROM public.media m WHERE m.blob_sha256 = ANY (candidates) $$;
REVOKE ALL ON FUNCTION frontdesk_blobs_in_use(TEXT[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION frontdesk_blobs_in_use(TEXT[]) TO frontdesk_app;
