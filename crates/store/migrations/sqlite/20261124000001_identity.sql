-- Identity: users, sessions and sign-in tokens (global), and per-organisation roles,
-- memberships, teams, invitations and API keys (scoped by the store's tenant context).

CREATE TABLE users (
    id              BLOB PRIMARY KEY NOT NULL,
    email           TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
    name            TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    password_hash   TEXT,
    totp_secret     BLOB,
    totp_enabled    INTEGER NOT NULL DEFAULT 0 CHECK (totp_enabled IN (0, 1)),
    totp_last_step  INTEGER,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE system_data_keys (
    key_id          INTEGER PRIMARY KEY CHECK (key_id > 0),
    master_version  INTEGER NOT NULL CHECK (master_version > 0),
    wrapped         BLOB NOT NULL,
    active          INTEGER NOT NULL CHECK (active IN (0, 1)),
    created_at      TEXT NOT NULL
) STRICT;
CREATE UNIQUE INDEX system_data_keys_one_active ON system_data_keys (active) WHERE active = 1;

CREATE TABLE system_settings (
    key         TEXT PRIMARY KEY NOT NULL,
    value       TEXT NOT NULL,
    secret      BLOB,
    updated_at  TEXT NOT NULL
) STRICT;

ALTER TABLE organisations ADD COLUMN require_2fa INTEGER NOT NULL DEFAULT 0 CHECK (require_2fa IN (0, 1));

CREATE TABLE roles (
    org_id       BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id           BLOB NOT NULL,
    name         TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 60),
    builtin      TEXT CHECK (builtin IN ('admin', 'manager', 'agent')),
    permissions  TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE memberships (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role_id     BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id),
    FOREIGN KEY (org_id, role_id) REFERENCES roles (org_id, id)
) STRICT;
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE teams (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE team_members (
    org_id   BLOB NOT NULL,
    team_id  BLOB NOT NULL,
    user_id  BLOB NOT NULL,
    PRIMARY KEY (org_id, team_id, user_id),
    FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
) STRICT;

CREATE TABLE invitations (
    org_id       BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id           BLOB NOT NULL,
    email        TEXT NOT NULL,
    role_id      BLOB NOT NULL,
    token_hash   BLOB NOT NULL,
    invited_by   BLOB,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    accepted_at  TEXT,
    revoked_at   TEXT,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, token_hash),
    FOREIGN KEY (org_id, role_id) REFERENCES roles (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX invitations_by_token ON invitations (token_hash);

CREATE TABLE api_keys (
    org_id        BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id            BLOB NOT NULL,
    name          TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix        TEXT NOT NULL,
    key_hash      BLOB NOT NULL,
    scopes        TEXT NOT NULL,
    created_by    BLOB,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT,
    expires_at    TEXT,
    revoked_at    TEXT,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, key_hash)
) STRICT;
CREATE INDEX api_keys_by_hash ON api_keys (key_hash);

CREATE TABLE sessions (
    id              BLOB PRIMARY KEY NOT NULL,
    token_hash      BLOB UNIQUE,
    user_id         BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    active_org_id   BLOB REFERENCES organisations(id) ON DELETE SET NULL,
    kind            TEXT NOT NULL CHECK (kind IN ('web', 'api')),
    csrf_token      TEXT NOT NULL,
    mfa_pending     INTEGER NOT NULL CHECK (mfa_pending IN (0, 1)),
    created_at      TEXT NOT NULL,
    last_seen_at    TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    ip              TEXT,
    user_agent      TEXT,
    revoked_at      TEXT,
    revoked_reason  TEXT
) STRICT;
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    session_id  BLOB NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
) STRICT;
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE email_tokens (
    token_hash  BLOB PRIMARY KEY NOT NULL,
    purpose     TEXT NOT NULL CHECK (purpose IN ('magic_link', 'password_reset')),
    user_id     BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT
) STRICT;

CREATE TABLE auth_throttle (
    scope         TEXT NOT NULL CHECK (scope IN ('account', 'ip')),
    key           TEXT NOT NULL,
    window_start  TEXT NOT NULL,
    failures      INTEGER NOT NULL,
    locked_until  TEXT,
    PRIMARY KEY (scope, key)
) STRICT;
