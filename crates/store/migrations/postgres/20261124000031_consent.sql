-- The marketing consent ledger: append-only opt-in and opt-out events; a contact's current
-- state is its latest event. And the organisation's consent keywords and confirmations.

CREATE TABLE consent_events (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    contact_id  UUID NOT NULL,
    id          UUID NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('opt_in', 'opt_out')),
    source      TEXT NOT NULL CHECK (source IN ('form', 'keyword', 'import', 'agent', 'api')),
    evidence    TEXT NOT NULL CHECK (length(evidence) <= 1000),
    actor       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    -- the contact is part of the key: merging two contacts copies the ledger across
    PRIMARY KEY (org_id, contact_id, id),
    FOREIGN KEY (org_id, contact_id) REFERENCES contacts (org_id, id) ON DELETE CASCADE
);
CREATE INDEX consent_events_latest ON consent_events (org_id, contact_id, created_at DESC, id DESC);

-- Events are never changed. The application role may only read and append; rows go only
-- with their contact, by the foreign key's cascade (run as the table owner).
CREATE FUNCTION consent_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'consent_events is append-only';
END;
$$;
CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
    FOR EACH ROW EXECUTE FUNCTION consent_events_append_only();

-- Keywords (JSON arrays of upper-case words) and the confirmations sent back.
CREATE TABLE audience_settings (
    org_id             UUID PRIMARY KEY REFERENCES organisations(id) ON DELETE CASCADE,
    opt_out_keywords   TEXT NOT NULL,
    opt_in_keywords    TEXT NOT NULL,
    opt_out_reply      TEXT NOT NULL CHECK (length(opt_out_reply) BETWEEN 1 AND 1000),
    opt_in_reply       TEXT NOT NULL CHECK (length(opt_in_reply) BETWEEN 1 AND 1000),
    updated_at         TIMESTAMPTZ NOT NULL
);

ALTER TABLE consent_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE consent_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON consent_events
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
ALTER TABLE audience_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE audience_settings FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audience_settings
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

GRANT SELECT, INSERT ON consent_events TO frontdesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON audience_settings TO frontdesk_app;
