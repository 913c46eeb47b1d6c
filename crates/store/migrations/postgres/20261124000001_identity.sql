-- Identity: users, sessions and sign-in tokens (global: a person signs in before an
-- organisation is chosen, and may belong to several), and per-organisation roles,
-- memberships, teams, invitations and API keys (tenant tables under row-level security).

-- The user of the current transaction, for a user's own memberships (organisation picker).
CREATE FUNCTION frontdesk_current_user() RETURNS uuid
    LANGUAGE sql STABLE
    AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

-- The SHA-256 of a token the client presented (invitation, API key), hex in app.token_hash:
-- exactly the row that token names becomes readable, before its organisation is known.
CREATE FUNCTION frontdesk_presented_token() RETURNS bytea
    LANGUAGE sql STABLE
    AS $$ SELECT decode(nullif(current_setting('app.token_hash', true), ''), 'hex') $$;

CREATE TABLE users (
    id              UUID PRIMARY KEY,
    email           TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- argon2id PHC string (or an imported bcrypt hash, upgraded at the next sign-in)
    password_hash   TEXT,
    -- TOTP secret sealed with the installation's data key
    totp_secret     BYTEA,
    totp_enabled    BOOLEAN NOT NULL DEFAULT false,
    totp_last_step  BIGINT,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email);

-- The installation's own data key (for values that belong to no organisation, such as
-- users' TOTP secrets and the SMTP password), wrapped by the master key like org keys.
CREATE TABLE system_data_keys (
    key_id          INTEGER PRIMARY KEY CHECK (key_id > 0),
    master_version  INTEGER NOT NULL CHECK (master_version > 0),
    wrapped         BYTEA NOT NULL,
    active          BOOLEAN NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX system_data_keys_one_active ON system_data_keys (active) WHERE active;

-- Installation settings (outgoing mail); a secret value is sealed with the system key.
CREATE TABLE system_settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    secret      BYTEA,
    updated_at  TIMESTAMPTZ NOT NULL
);

ALTER TABLE organisations ADD COLUMN require_2fa BOOLEAN NOT NULL DEFAULT false;

CREATE TABLE roles (
    org_id       UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id           UUID NOT NULL,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 60),
    -- admin / manager / agent: permissions come from the code, not from this row
    builtin      TEXT CHECK (builtin IN ('admin', 'manager', 'agent')),
    permissions  TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
);

CREATE TABLE memberships (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id     UUID NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id),
    FOREIGN KEY (org_id, role_id) REFERENCES roles (org_id, id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE teams (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          UUID NOT NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
);

CREATE TABLE team_members (
    org_id   UUID NOT NULL,
    team_id  UUID NOT NULL,
    user_id  UUID NOT NULL,
    PRIMARY KEY (org_id, team_id, user_id),
    FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);

CREATE TABLE invitations (
    org_id       UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id           UUID NOT NULL,
    email        TEXT NOT NULL,
    role_id      UUID NOT NULL,
    token_hash   BYTEA NOT NULL,
    invited_by   UUID,
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ NOT NULL,
    accepted_at  TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, token_hash),
    FOREIGN KEY (org_id, role_id) REFERENCES roles (org_id, id) ON DELETE CASCADE
);
CREATE INDEX invitations_by_token ON invitations (token_hash);

CREATE TABLE api_keys (
    org_id        UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id            UUID NOT NULL,
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix        TEXT NOT NULL,
    key_hash      BYTEA NOT NULL,
    scopes        TEXT NOT NULL,
    created_by    UUID,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, key_hash)
);
CREATE INDEX api_keys_by_hash ON api_keys (key_hash);

-- A sign-in of a user: a browser (cookie) or an API client (access + refresh tokens).
CREATE TABLE sessions (
    id              UUID PRIMARY KEY,
    -- web: SHA-256 of the cookie value; API: NULL (the access token names the session)
    token_hash      BYTEA UNIQUE,
    user_id         UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- the organisation the session works in; the membership is checked on every request
    active_org_id   UUID REFERENCES organisations(id) ON DELETE SET NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('web', 'api')),
    csrf_token      TEXT NOT NULL,
    mfa_pending     BOOLEAN NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    last_seen_at    TIMESTAMPTZ NOT NULL,
    expires_at      TIMESTAMPTZ NOT NULL,
    ip              TEXT,
    user_agent      TEXT,
    revoked_at      TIMESTAMPTZ,
    revoked_reason  TEXT
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash  BYTEA PRIMARY KEY,
    session_id  UUID NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

-- One-time links by email: magic-link sign-in and password reset. Only hashes are kept.
CREATE TABLE email_tokens (
    token_hash  BYTEA PRIMARY KEY,
    purpose     TEXT NOT NULL CHECK (purpose IN ('magic_link', 'password_reset')),
    user_id     UUID NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ
);

-- Failed sign-ins per account and per client address (keys are hashed).
CREATE TABLE auth_throttle (
    scope         TEXT NOT NULL CHECK (scope IN ('account', 'ip')),
    key           TEXT NOT NULL,
    window_start  TIMESTAMPTZ NOT NULL,
    failures      INTEGER NOT NULL,
    locked_until  TIMESTAMPTZ,
    PRIMARY KEY (scope, key)
);

-- Row-level security on the new tenant tables.
ALTER TABLE roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE roles FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON roles
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE memberships FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON memberships
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
-- A user lists the organisations they belong to (their own rows only).
CREATE POLICY own_memberships ON memberships FOR SELECT
    USING (user_id = frontdesk_current_user());

-- ... and sees those organisations' names.
CREATE POLICY member_listing ON organisations FOR SELECT
    USING (id IN (SELECT m.org_id FROM memberships m WHERE m.user_id = frontdesk_current_user()));

ALTER TABLE teams ENABLE ROW LEVEL SECURITY;
ALTER TABLE teams FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON teams
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

ALTER TABLE team_members ENABLE ROW LEVEL SECURITY;
ALTER TABLE team_members FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON team_members
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

ALTER TABLE invitations ENABLE ROW LEVEL SECURITY;
ALTER TABLE invitations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON invitations
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
CREATE POLICY invitation_by_token ON invitations FOR SELECT
    USING (token_hash = frontdesk_presented_token());

ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE api_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON api_keys
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
CREATE POLICY api_key_by_token ON api_keys FOR SELECT
    USING (key_hash = frontdesk_presented_token());

GRANT SELECT, INSERT, UPDATE, DELETE ON roles, memberships, teams, team_members, invitations, api_keys TO frontdesk_app;
GRANT SELECT, INSERT, UPDATE ON users, system_data_keys, system_settings TO frontdesk_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON sessions, refresh_tokens, email_tokens, auth_throttle TO frontdesk_app;
