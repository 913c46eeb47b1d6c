-- Organisations are the tenants: every tenant table refers to one.
CREATE TABLE organisations (
    id          UUID PRIMARY KEY,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug        TEXT NOT NULL UNIQUE CHECK (length(slug) BETWEEN 1 AND 64),
    created_at  TIMESTAMPTZ NOT NULL
);
