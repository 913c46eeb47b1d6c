-- Saved audience rules (segments): a typed JSON rule tree the store compiles to SQL with
-- bound parameters only.
CREATE TABLE segments (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    rule        TEXT NOT NULL CHECK (length(rule) <= 20000),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
) STRICT;
