-- Security core: the secret vault's data keys and secrets, and the append-only,
-- hash-chained audit log. SQLite has no row-level security: the store's typed tenant
-- context scopes every query (see docs/security.md).

CREATE TABLE org_data_keys (
    org_id          BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    key_id          INTEGER NOT NULL CHECK (key_id > 0),
    master_version  INTEGER NOT NULL CHECK (master_version > 0),
    wrapped         BLOB NOT NULL,
    active          INTEGER NOT NULL CHECK (active IN (0, 1)),
    created_at      TEXT NOT NULL,
    PRIMARY KEY (org_id, key_id)
) STRICT;
CREATE UNIQUE INDEX org_data_keys_one_active ON org_data_keys (org_id) WHERE active = 1;

CREATE TABLE org_secrets (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    ciphertext  BLOB NOT NULL,
    last4       TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE audit_heads (
    org_id      BLOB PRIMARY KEY NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    hash        BLOB NOT NULL
) STRICT;

CREATE TABLE audit_events (
    org_id       BLOB NOT NULL REFERENCES organisations(id),
    seq          INTEGER NOT NULL CHECK (seq > 0),
    occurred_at  TEXT NOT NULL,
    actor_type   TEXT NOT NULL,
    actor_id     TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    data         TEXT NOT NULL,
    prev_hash    BLOB NOT NULL,
    hash         BLOB NOT NULL,
    PRIMARY KEY (org_id, seq)
) STRICT;
CREATE INDEX audit_events_by_time ON audit_events (org_id, occurred_at);
CREATE INDEX audit_events_by_action ON audit_events (org_id, action, seq);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;
