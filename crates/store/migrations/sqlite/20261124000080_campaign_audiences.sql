-- Campaign audiences from a CSV file, and drafts that can be edited.
--
-- An import records the contacts its rows became (with the row's line, so a campaign can
-- read that row's other columns as values). A campaign's audience is a segment or an
-- import: exactly one of segment_id and import_id. SQLite cannot drop a NOT NULL in place,
-- so campaigns is rebuilt with its columns, keys and indexes; campaign_recipients, which
-- references it, is rebuilt first under a new name (so dropping the old campaigns cascades
-- into nothing) and both are renamed back (SQLite rewrites the reference on rename).

CREATE TABLE contact_import_contacts (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    import_id   BLOB NOT NULL,
    contact_id  BLOB NOT NULL,
    -- the row's line in the file (the header is line 1)
    line        INTEGER NOT NULL CHECK (line >= 2),
    PRIMARY KEY (org_id, import_id, contact_id),
    FOREIGN KEY (org_id, import_id) REFERENCES contact_imports (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, contact_id) REFERENCES contacts (org_id, id) ON DELETE CASCADE
) STRICT;

CREATE TABLE campaigns_new (
    org_id             BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id                 BLOB NOT NULL,
    name               TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    channel_id         BLOB NOT NULL,
    -- the audience: a segment, or the contacts of a CSV import
    segment_id         BLOB,
    import_id          BLOB,
    -- the segment's rule as it was at launch (the audience is snapshotted from it)
    rule               TEXT CHECK (length(rule) <= 20000),
    template_name      TEXT NOT NULL CHECK (length(template_name) BETWEEN 1 AND 512),
    template_language  TEXT NOT NULL CHECK (length(template_language) BETWEEN 2 AND 15),
    mapping            TEXT NOT NULL CHECK (length(mapping) <= 20000),
    consent            TEXT NOT NULL CHECK (consent IN ('opt_in', 'not_opted_out')),
    status             TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled')),
    scheduled_at       TEXT,
    started_at         TEXT,
    finished_at        TEXT,
    -- audience snapshot: done, or the last contact taken so far
    audience_built     INTEGER NOT NULL DEFAULT 0,
    build_after        BLOB,
    excluded_opted_out INTEGER NOT NULL DEFAULT 0,
    excluded_no_opt_in INTEGER NOT NULL DEFAULT 0,
    -- why a running campaign waits (daily_limit), and until when
    waiting            TEXT,
    waiting_until      TEXT,
    created_by         TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    CHECK ((segment_id IS NULL) <> (import_id IS NULL)),
    FOREIGN KEY (org_id, channel_id) REFERENCES channels (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, import_id) REFERENCES contact_imports (org_id, id)
) STRICT;
INSERT INTO campaigns_new (org_id, id, name, channel_id, segment_id, import_id, rule, template_name, template_language, mapping, consent, status, scheduled_at, started_at, finished_at, audience_built, build_after, excluded_opted_out, excluded_no_opt_in, waiting, waiting_until, created_by, created_at, updated_at)
    SELECT org_id, id, name, channel_id, segment_id, NULL, rule, template_name, template_language, mapping, consent, status, scheduled_at, started_at, finished_at, audience_built, build_after, excluded_opted_out, excluded_no_opt_in, waiting, waiting_until, created_by, created_at, updated_at FROM campaigns;

CREATE TABLE campaign_recipients_new (
    org_id       BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    campaign_id  BLOB NOT NULL,
    contact_id   BLOB NOT NULL,
    language     TEXT NOT NULL,
    fill         TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'excluded', 'queued', 'failed', 'cancelled')),
    reason       TEXT CHECK (length(reason) <= 500),
    message_id   BLOB,
    queued_at    TEXT,
    PRIMARY KEY (org_id, campaign_id, contact_id),
    FOREIGN KEY (org_id, campaign_id) REFERENCES campaigns_new (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, contact_id) REFERENCES contacts (org_id, id) ON DELETE CASCADE
) STRICT;
INSERT INTO campaign_recipients_new (org_id, campaign_id, contact_id, language, fill, state, reason, message_id, queued_at)
    SELECT org_id, campaign_id, contact_id, language, fill, state, reason, message_id, queued_at FROM campaign_recipients;

DROP TABLE campaign_recipients;
DROP TABLE campaigns;
ALTER TABLE campaigns_new RENAME TO campaigns;
ALTER TABLE campaign_recipients_new RENAME TO campaign_recipients;
CREATE INDEX campaigns_page ON campaigns (org_id, created_at DESC, id DESC);
CREATE INDEX campaign_recipients_state ON campaign_recipients (org_id, campaign_id, state, contact_id);
CREATE UNIQUE INDEX campaign_recipients_message ON campaign_recipients (org_id, message_id) WHERE message_id IS NOT NULL;
