-- Contacts, conversations and messages, the statuses the provider reports, message
-- templates' provider state, media, and the two work queues (webhook processing, sends).

-- A customer: known by a phone number, a business-scoped user id (BSUID), or both.
CREATE TABLE contacts (
    org_id           BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id               BLOB NOT NULL,
    phone            TEXT CHECK (phone GLOB '+[1-9]*' AND length(phone) BETWEEN 8 AND 16),
    bsuid            TEXT CHECK (length(bsuid) BETWEEN 3 AND 128),
    parent_bsuid     TEXT,
    username         TEXT,
    profile_name     TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    CHECK (phone IS NOT NULL OR bsuid IS NOT NULL),
    PRIMARY KEY (org_id, id)
) STRICT;
CREATE UNIQUE INDEX contacts_by_phone ON contacts (org_id, phone) WHERE phone IS NOT NULL;
CREATE UNIQUE INDEX contacts_by_bsuid ON contacts (org_id, bsuid) WHERE bsuid IS NOT NULL;

-- One conversation per contact and number; resolving and a new message reopen it.
-- last_inbound_at opens the 24-hour customer-service window.
CREATE TABLE conversations (
    org_id            BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id                BLOB NOT NULL,
    channel_id        BLOB NOT NULL,
    contact_id        BLOB NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('open', 'pending', 'snoozed', 'resolved')),
    last_message_at   TEXT NOT NULL,
    last_inbound_at   TEXT,
    last_preview      TEXT NOT NULL DEFAULT '',
    unread            INTEGER NOT NULL DEFAULT 0,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, channel_id, contact_id),
    FOREIGN KEY (org_id, channel_id) REFERENCES channels (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, contact_id) REFERENCES contacts (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX conversations_recent ON conversations (org_id, last_message_at DESC);

-- Media of messages: provider id, what the provider said about it, and where its bytes are
-- (the blob store, content-addressed by SHA-256).
CREATE TABLE media (
    org_id             BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id                 BLOB NOT NULL,
    channel_id         BLOB NOT NULL,
    provider_media_id  TEXT,
    mime_type          TEXT,
    filename           TEXT,
    expected_sha256    TEXT,
    blob_sha256        TEXT,
    size_bytes         INTEGER,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'stored', 'failed')),
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    TEXT,
    error              TEXT,
    created_at         TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, channel_id) REFERENCES channels (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX media_pending ON media (next_attempt_at) WHERE status = 'pending';

-- Every message, both directions. provider_message_id (wamid) is unique per number, which
-- makes webhook processing idempotent.
CREATE TABLE messages (
    org_id               BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id                   BLOB NOT NULL,
    conversation_id      BLOB NOT NULL,
    channel_id           BLOB NOT NULL,
    contact_id           BLOB NOT NULL,
    direction            TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    provider_message_id  TEXT,
    kind                 TEXT NOT NULL,
    content              TEXT NOT NULL,
    preview              TEXT NOT NULL DEFAULT '',
    reply_to             TEXT,
    media_id             BLOB,
    status               TEXT NOT NULL CHECK (status IN ('received', 'queued', 'accepted', 'sent', 'delivered', 'read', 'failed')),
    error_code           INTEGER,
    error_title          TEXT,
    pricing_category     TEXT,
    pricing_model        TEXT,
    billable             INTEGER,
    author_id            BLOB,
    attempts             INTEGER NOT NULL DEFAULT 0,
    sent_at              TEXT,
    provider_at          TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, channel_id) REFERENCES channels (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE UNIQUE INDEX messages_by_provider_id ON messages (org_id, channel_id, provider_message_id) WHERE provider_message_id IS NOT NULL;
CREATE INDEX messages_by_conversation ON messages (org_id, conversation_id, created_at);

-- Every status the provider reported, once each: the history of a message, and a buffer for
-- statuses that arrive before the send's answer recorded the message's provider id.
CREATE TABLE message_statuses (
    org_id               BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    channel_id           BLOB NOT NULL,
    provider_message_id  TEXT NOT NULL,
    status               TEXT NOT NULL CHECK (status IN ('sent', 'delivered', 'read', 'failed', 'played', 'deleted')),
    provider_at          TEXT NOT NULL,
    error_code           INTEGER,
    error_title          TEXT,
    pricing_category     TEXT,
    pricing_model        TEXT,
    billable             INTEGER,
    received_at          TEXT NOT NULL,
    PRIMARY KEY (org_id, channel_id, provider_message_id, status),
    FOREIGN KEY (org_id, channel_id) REFERENCES channels (org_id, id) ON DELETE CASCADE
) STRICT;

-- Message templates as the provider knows them (status, quality), keyed by business account,
-- name and language.
CREATE TABLE templates (
    org_id                BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id                    BLOB NOT NULL,
    waba_id               TEXT NOT NULL,
    name                  TEXT NOT NULL,
    language              TEXT NOT NULL,
    category              TEXT,
    provider_template_id  TEXT,
    status                TEXT NOT NULL,
    reason                TEXT,
    updated_at            TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, waba_id, name, language)
) STRICT;

-- Work queues. They carry ids only (never content), so they are global: a worker claims work
-- across organisations, then reads and writes the content in that organisation's context.
CREATE TABLE inbox_queue (
    inbox_id       BLOB PRIMARY KEY,
    org_id         BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    received_at    TEXT NOT NULL,
    lease_until    TEXT
) STRICT;
CREATE INDEX inbox_queue_order ON inbox_queue (received_at);

CREATE TABLE outbox (
    id               BLOB PRIMARY KEY,
    org_id           BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    channel_id       BLOB NOT NULL,
    -- the message to send or mark read, or the media to fetch
    target_id        BLOB NOT NULL,
    action           TEXT NOT NULL CHECK (action IN ('send', 'mark_read', 'fetch_media')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TEXT NOT NULL,
    lease_until      TEXT,
    created_at       TEXT NOT NULL
) STRICT;
CREATE INDEX outbox_due ON outbox (next_attempt_at);

-- A pending inbox row is queued for the worker by the database itself, whichever code
-- stores or requeues it.
CREATE TRIGGER webhook_inbox_queued_insert AFTER INSERT ON webhook_inbox
    FOR EACH ROW WHEN NEW.status = 'pending'
BEGIN
    INSERT INTO inbox_queue (inbox_id, org_id, received_at)
    VALUES (NEW.id, NEW.org_id, NEW.received_at) ON CONFLICT (inbox_id) DO NOTHING;
END;
CREATE TRIGGER webhook_inbox_queued_update AFTER UPDATE OF status ON webhook_inbox
    FOR EACH ROW WHEN NEW.status = 'pending'
BEGIN
    INSERT INTO inbox_queue (inbox_id, org_id, received_at)
    VALUES (NEW.id, NEW.org_id, NEW.received_at) ON CONFLICT (inbox_id) DO NOTHING;
END;

