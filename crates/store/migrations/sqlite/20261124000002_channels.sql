-- WhatsApp channels (connected numbers) and the durable webhook inbox.

CREATE TABLE channels (
    org_id              BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id                  BLOB NOT NULL,
    name                TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    provider            TEXT NOT NULL CHECK (provider IN ('cloud', 'whapi')),
    phone_number_id     TEXT NOT NULL CHECK (length(phone_number_id) BETWEEN 1 AND 64),
    waba_id             TEXT NOT NULL DEFAULT '',
    display_number      TEXT NOT NULL DEFAULT '',
    api_base_url        TEXT NOT NULL,
    api_version         TEXT NOT NULL DEFAULT '',
    simulated           INTEGER NOT NULL DEFAULT 0 CHECK (simulated IN (0, 1)),
    access_token        BLOB NOT NULL,
    access_token_last4  TEXT,
    app_secret          BLOB,
    verify_token        BLOB,
    webhook_key         BLOB NOT NULL,
    webhook_key_hash    BLOB NOT NULL,
    quality_rating      TEXT,
    messaging_limit     TEXT,
    throughput_mps      INTEGER NOT NULL DEFAULT 80 CHECK (throughput_mps BETWEEN 1 AND 1000),
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, provider, phone_number_id),
    UNIQUE (org_id, webhook_key_hash)
) STRICT;
CREATE INDEX channels_by_webhook_key ON channels (webhook_key_hash);

CREATE TABLE webhook_inbox (
    org_id        BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id            BLOB NOT NULL,
    channel_id    BLOB NOT NULL,
    received_at   TEXT NOT NULL,
    body          BLOB NOT NULL,
    body_sha256   BLOB NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'processed', 'failed')),
    attempts      INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    processed_at  TEXT,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, channel_id, body_sha256),
    FOREIGN KEY (org_id, channel_id) REFERENCES channels (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX webhook_inbox_pending ON webhook_inbox (received_at) WHERE status = 'pending';
