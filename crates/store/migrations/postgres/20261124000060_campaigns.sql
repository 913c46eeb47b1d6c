-- Campaigns: one approved template sent to a segment's marketing audience through the
-- outbox, paced by the number's throughput and held under the messaging-limit tier.
CREATE TABLE campaigns (
    org_id             UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id                 UUID NOT NULL,
    name               TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 120),
    channel_id         UUID NOT NULL,
    segment_id         UUID NOT NULL,
    -- the segment's rule as it was at launch (the audience is snapshotted from it)
    rule               TEXT CHECK (length(rule) <= 20000),
    template_name      TEXT NOT NULL CHECK (length(template_name) BETWEEN 1 AND 512),
    template_language  TEXT NOT NULL CHECK (length(template_language) BETWEEN 2 AND 15),
    mapping            TEXT NOT NULL CHECK (length(mapping) <= 20000),
    consent            TEXT NOT NULL CHECK (consent IN ('opt_in', 'not_opted_out')),
    status             TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'running', 'paused', 'completed', 'cancelled')),
    scheduled_at       TIMESTAMPTZ,
    started_at         TIMESTAMPTZ,
    finished_at        TIMESTAMPTZ,
    -- audience snapshot: done, or the last contact taken so far
    audience_built     BOOLEAN NOT NULL DEFAULT FALSE,
    build_after        UUID,
    excluded_opted_out INTEGER NOT NULL DEFAULT 0,
    excluded_no_opt_in INTEGER NOT NULL DEFAULT 0,
    -- why a running campaign waits (daily_limit), and until when
    waiting            TEXT,
    waiting_until      TIMESTAMPTZ,
    created_by         TEXT NOT NULL,
    created_at         TIMESTAMPTZ NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, channel_id) REFERENCES channels (org_id, id) ON DELETE CASCADE
);
CREATE INDEX campaigns_page ON campaigns (org_id, created_at DESC, id DESC);

-- The audience as snapshotted at launch: one row per contact (so one message per contact
-- and campaign), its language and filled values, and what became of it.
CREATE TABLE campaign_recipients (
    org_id       UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    campaign_id  UUID NOT NULL,
    contact_id   UUID NOT NULL,
    language     TEXT NOT NULL,
    fill         TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('pending', 'excluded', 'queued', 'failed', 'cancelled')),
    reason       TEXT CHECK (length(reason) <= 500),
    message_id   UUID,
    queued_at    TIMESTAMPTZ,
    PRIMARY KEY (org_id, campaign_id, contact_id),
    FOREIGN KEY (org_id, campaign_id) REFERENCES campaigns (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, contact_id) REFERENCES contacts (org_id, id) ON DELETE CASCADE
);
CREATE INDEX campaign_recipients_state ON campaign_recipients (org_id, campaign_id, state, contact_id);
CREATE UNIQUE INDEX campaign_recipients_message ON campaign_recipients (org_id, message_id) WHERE message_id IS NOT NULL;

-- Campaigns the worker has to look at (scheduled or running), ids and times only.
CREATE TABLE campaign_queue (
    campaign_id  UUID PRIMARY KEY,
    org_id       UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    next_run_at  TIMESTAMPTZ NOT NULL,
    lease_until  TIMESTAMPTZ
);
CREATE INDEX campaign_queue_due ON campaign_queue (next_run_at);

-- The messaging-limit count: unique recipients of outgoing templates in the last 24 hours.
CREATE INDEX messages_out_recent ON messages (org_id, channel_id, created_at) WHERE direction = 'out';

ALTER TABLE campaigns ENABLE ROW LEVEL SECURITY;
ALTER TABLE campaigns FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON campaigns
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
ALTER TABLE campaign_recipients ENABLE ROW LEVEL SECURITY;
ALTER TABLE campaign_recipients FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON campaign_recipients
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

GRANT SELECT, INSERT, UPDATE, DELETE ON campaigns, campaign_recipients, campaign_queue TO frontdesk_app;
