-- WhatsApp channels (connected numbers) and the durable inbox every webhook lands in
-- before it is acknowledged.

CREATE TABLE channels (
    org_id              UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id                  UUID NOT NULL,
    name                TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    provider            TEXT NOT NULL CHECK (provider IN ('cloud', 'whapi')),
    -- Cloud API: the phone number id and business account id; Whapi: its channel id
    phone_number_id     TEXT NOT NULL CHECK (length(phone_number_id) BETWEEN 1 AND 64),
    waba_id             TEXT NOT NULL DEFAULT '',
    display_number      TEXT NOT NULL DEFAULT '',
    api_base_url        TEXT NOT NULL,
    api_version         TEXT NOT NULL DEFAULT '',
    simulated           BOOLEAN NOT NULL DEFAULT false,
    -- Secrets, each sealed with the organisation's data key; last four characters for display
    access_token        BYTEA NOT NULL,
    access_token_last4  TEXT,
    app_secret          BYTEA,
    verify_token        BYTEA,
    -- The random key in the webhook URL: sealed (to show the URL again) and hashed (to look
    -- the channel up before its organisation is known)
    webhook_key         BYTEA NOT NULL,
    webhook_key_hash    BYTEA NOT NULL,
    -- Number health, from the provider's webhooks and API
    quality_rating      TEXT,
    messaging_limit     TEXT,
    throughput_mps      INTEGER NOT NULL DEFAULT 80 CHECK (throughput_mps BETWEEN 1 AND 1000),
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, provider, phone_number_id),
    UNIQUE (org_id, webhook_key_hash)
);
CREATE INDEX channels_by_webhook_key ON channels (webhook_key_hash);

-- Raw webhook bodies, stored and committed before the webhook is answered 200; a worker
-- turns them into contacts, messages and statuses. Identical bodies (provider retries) are
-- stored once.
CREATE TABLE webhook_inbox (
    org_id        UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id            UUID NOT NULL,
    channel_id    UUID NOT NULL,
    received_at   TIMESTAMPTZ NOT NULL,
    body          BYTEA NOT NULL,
    body_sha256   BYTEA NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'processed', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    processed_at  TIMESTAMPTZ,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, channel_id, body_sha256),
    FOREIGN KEY (org_id, channel_id) REFERENCES channels (org_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_inbox_pending ON webhook_inbox (received_at) WHERE status = 'pending';

ALTER TABLE channels ENABLE ROW LEVEL SECURITY;
ALTER TABLE channels FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON channels
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
-- A webhook names its channel by the key in its URL, before its organisation is known.
CREATE POLICY channel_by_webhook_key ON channels FOR SELECT
    USING (webhook_key_hash = frontdesk_presented_token());

ALTER TABLE webhook_inbox ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_inbox FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON webhook_inbox
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

GRANT SELECT, INSERT, UPDATE, DELETE ON channels, webhook_inbox TO frontdesk_app;
