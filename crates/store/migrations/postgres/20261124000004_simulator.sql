-- The built-in WhatsApp simulator: the numbers it plays Meta for, their fake customers, the
-- messages both ways, uploaded media and submitted templates. Tenant tables like any other:
-- a simulated number belongs to the organisation that connected it.
--
-- Times are unix milliseconds (BIGINT): the simulator compares and orders them (send rate,
-- 24-hour window, chat order), and integers compare the same on both backends.

CREATE TABLE sim_numbers (
    org_id             UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    channel_id         UUID NOT NULL,
    phone_number_id    TEXT NOT NULL CHECK (length(phone_number_id) BETWEEN 1 AND 64),
    waba_id            TEXT NOT NULL,
    display_number     TEXT NOT NULL,
    verified_name      TEXT NOT NULL,
    -- SHA-256 of the access token Frontdesk's client presents; never the token itself
    access_token_hash  BYTEA NOT NULL,
    -- Messages per second the fake Graph API accepts before answering 130429; NULL: no limit
    send_rate_limit    INTEGER CHECK (send_rate_limit BETWEEN 1 AND 1000),
    created_ms         BIGINT NOT NULL,
    PRIMARY KEY (org_id, channel_id),
    UNIQUE (org_id, phone_number_id),
    UNIQUE (org_id, access_token_hash),
    FOREIGN KEY (org_id, channel_id) REFERENCES channels (org_id, id) ON DELETE CASCADE
);
CREATE INDEX sim_numbers_by_token ON sim_numbers (access_token_hash);

CREATE TABLE sim_customers (
    org_id           UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id               UUID NOT NULL,
    channel_id       UUID NOT NULL,
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- digits without '+'; NULL for a customer known only by username and BSUID
    phone            TEXT,
    bsuid            TEXT NOT NULL,
    username         TEXT,
    last_inbound_ms  BIGINT,
    created_ms       BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, channel_id, bsuid),
    UNIQUE (org_id, channel_id, phone),
    FOREIGN KEY (org_id, channel_id) REFERENCES sim_numbers (org_id, channel_id) ON DELETE CASCADE
);

CREATE TABLE sim_messages (
    org_id       UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id           UUID NOT NULL,
    channel_id   UUID NOT NULL,
    -- NULL for a send to a number that is no customer of the simulator (undeliverable)
    customer_id  UUID,
    wamid        TEXT NOT NULL,
    direction    TEXT NOT NULL CHECK (direction IN ('in', 'out')),
    msg_type     TEXT NOT NULL,
    -- the message object as sent (out) or as posted in the webhook (in), JSON text
    payload      TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('received', 'accepted', 'sent', 'delivered', 'read', 'failed')),
    error_code   INTEGER,
    created_ms   BIGINT NOT NULL,
    updated_ms   BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, wamid),
    FOREIGN KEY (org_id, channel_id) REFERENCES sim_numbers (org_id, channel_id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, customer_id) REFERENCES sim_customers (org_id, id) ON DELETE CASCADE
);
CREATE INDEX sim_messages_sends ON sim_messages (org_id, channel_id, direction, created_ms);
CREATE INDEX sim_messages_chat ON sim_messages (org_id, customer_id, created_ms);

CREATE TABLE sim_media (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    channel_id  UUID NOT NULL,
    mime_type   TEXT NOT NULL,
    -- base64 SHA-256 of the bytes, as Meta reports it
    sha256      TEXT NOT NULL,
    file_size   BIGINT NOT NULL,
    filename    TEXT,
    bytes       BYTEA NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, channel_id) REFERENCES sim_numbers (org_id, channel_id) ON DELETE CASCADE
);

CREATE TABLE sim_templates (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    channel_id  UUID NOT NULL,
    name        TEXT NOT NULL,
    language    TEXT NOT NULL,
    category    TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('PENDING', 'APPROVED', 'REJECTED')),
    reason      TEXT,
    components  TEXT NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, channel_id, name, language),
    FOREIGN KEY (org_id, channel_id) REFERENCES sim_numbers (org_id, channel_id) ON DELETE CASCADE
);

ALTER TABLE sim_numbers ENABLE ROW LEVEL SECURITY;
ALTER TABLE sim_numbers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sim_numbers
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
-- The fake Graph API names its number by the Bearer token, before the organisation is known.
CREATE POLICY sim_number_by_token ON sim_numbers FOR SELECT
    USING (access_token_hash = frontdesk_presented_token());

ALTER TABLE sim_customers ENABLE ROW LEVEL SECURITY;
ALTER TABLE sim_customers FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sim_customers
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

ALTER TABLE sim_messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE sim_messages FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sim_messages
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

ALTER TABLE sim_media ENABLE ROW LEVEL SECURITY;
ALTER TABLE sim_media FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sim_media
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

ALTER TABLE sim_templates ENABLE ROW LEVEL SECURITY;
ALTER TABLE sim_templates FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON sim_templates
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

GRANT SELECT, INSERT, UPDATE, DELETE ON sim_numbers, sim_customers, sim_messages, sim_media, sim_templates TO frontdesk_app;
