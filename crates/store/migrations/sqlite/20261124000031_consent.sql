-- The marketing consent ledger: append-only opt-in and opt-out events; a contact's current
-- state is its latest event. And the organisation's consent keywords and confirmations.

CREATE TABLE consent_events (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    contact_id  BLOB NOT NULL,
    id          BLOB NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('opt_in', 'opt_out')),
    source      TEXT NOT NULL CHECK (source IN ('form', 'keyword', 'import', 'agent', 'api')),
    evidence    TEXT NOT NULL CHECK (length(evidence) <= 1000),
    actor       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    -- the contact is part of the key: merging two contacts copies the ledger across
    PRIMARY KEY (org_id, contact_id, id),
    FOREIGN KEY (org_id, contact_id) REFERENCES contacts (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX consent_events_latest ON consent_events (org_id, contact_id, created_at DESC, id DESC);

-- Events are never changed; they go only with their contact (erasure, merge).
CREATE TRIGGER consent_events_no_update BEFORE UPDATE ON consent_events
BEGIN
    SELECT RAISE(ABORT, 'consent_events is append-only');
END;
CREATE TRIGGER consent_events_no_delete BEFORE DELETE ON consent_events
    WHEN EXISTS (SELECT 1 FROM contacts WHERE org_id = OLD.org_id AND id = OLD.contact_id)
BEGIN
    SELECT RAISE(ABORT, 'consent_events is append-only');
END;

-- Keywords (JSON arrays of upper-case words) and the confirmations sent back.
CREATE TABLE audience_settings (
    org_id             BLOB PRIMARY KEY REFERENCES organisations(id) ON DELETE CASCADE,
    opt_out_keywords   TEXT NOT NULL,
    opt_in_keywords    TEXT NOT NULL,
    opt_out_reply      TEXT NOT NULL CHECK (length(opt_out_reply) BETWEEN 1 AND 1000),
    opt_in_reply       TEXT NOT NULL CHECK (length(opt_in_reply) BETWEEN 1 AND 1000),
    updated_at         TEXT NOT NULL
) STRICT;
