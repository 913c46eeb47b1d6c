-- Security core: tenant isolation (row-level security), the secret vault's data keys and
-- secrets, and the append-only, hash-chained audit log.

-- The role the application runs as. It owns nothing and cannot bypass row-level security.
-- Login roles for the server are made members of it (or the server SETs ROLE to it).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'frontdesk_app') THEN
        CREATE ROLE frontdesk_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END
$$;

GRANT USAGE ON SCHEMA public TO frontdesk_app;

-- The tenant of the current transaction, or NULL outside any (so policies match nothing).
-- Set per transaction with set_config('app.org_id', $1, true); never with a session SET.
CREATE FUNCTION frontdesk_current_org() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('app.org_id', true), '')::uuid $$;

-- Organisations: a tenant sees its own row. Operator commands (audit verify, key rotation)
-- list organisation ids in a transaction marked app.scope = 'system'; that scope opens
-- this table for reading and nothing else.
ALTER TABLE organisations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organisations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organisations
    USING (id = frontdesk_current_org())
    WITH CHECK (id = frontdesk_current_org());
CREATE POLICY system_listing ON organisations FOR SELECT
    USING (current_setting('app.scope', true) = 'system');
GRANT SELECT, INSERT, UPDATE, DELETE ON organisations TO frontdesk_app;

-- Per-organisation data keys, wrapped by a version of the master key.
CREATE TABLE org_data_keys (
    org_id          UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    key_id          INTEGER NOT NULL CHECK (key_id > 0),
    master_version  INTEGER NOT NULL CHECK (master_version > 0),
    wrapped         BYTEA NOT NULL,
    active          BOOLEAN NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, key_id)
);
CREATE UNIQUE INDEX org_data_keys_one_active ON org_data_keys (org_id) WHERE active;

-- Named secrets of an organisation (SMTP password, provider tokens, ...), sealed with the
-- organisation's data key; the associated data binds org, table, column and row id.
CREATE TABLE org_secrets (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          UUID NOT NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    ciphertext  BYTEA NOT NULL,
    last4       TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
);

-- Head of each organisation's audit chain; its row lock serialises appends.
CREATE TABLE audit_heads (
    org_id      UUID PRIMARY KEY REFERENCES organisations(id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    hash        BYTEA NOT NULL
);

CREATE TABLE audit_events (
    org_id       UUID NOT NULL REFERENCES organisations(id),
    seq          BIGINT NOT NULL CHECK (seq > 0),
    occurred_at  TIMESTAMPTZ NOT NULL,
    actor_type   TEXT NOT NULL,
    actor_id     TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT NOT NULL,
    -- canonical JSON text, hashed byte for byte (jsonb would reorder it)
    data         TEXT NOT NULL,
    prev_hash    BYTEA NOT NULL,
    hash         BYTEA NOT NULL,
    PRIMARY KEY (org_id, seq)
);
CREATE INDEX audit_events_by_time ON audit_events (org_id, occurred_at);
CREATE INDEX audit_events_by_action ON audit_events (org_id, action, seq);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$;
CREATE TRIGGER audit_events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- Row-level security on every tenant table, enforced for the owner too.
ALTER TABLE org_data_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_data_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON org_data_keys
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

ALTER TABLE org_secrets ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_secrets FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON org_secrets
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

ALTER TABLE audit_heads ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_heads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_heads
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE audit_events FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON audit_events
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

GRANT SELECT, INSERT, UPDATE, DELETE ON org_data_keys, org_secrets, audit_heads TO frontdesk_app;
-- The application may add to the audit log and read it; never change it.
GRANT SELECT, INSERT ON audit_events TO frontdesk_app;

-- /readyz compares applied migrations with the binary's, as the application role.
GRANT SELECT ON _sqlx_migrations TO frontdesk_app;
