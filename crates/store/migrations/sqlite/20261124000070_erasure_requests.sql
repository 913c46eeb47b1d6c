-- Erasure on request, within a window: each request is recorded (who asked, when, when it
-- is due by), executed at once or after the organisation's delay (so it can be cancelled
-- meanwhile), and kept with its outcome. The organisation's window and delay are settings.
CREATE TABLE erasure_settings (
    org_id        BLOB PRIMARY KEY REFERENCES organisations(id) ON DELETE CASCADE,
    window_days   INTEGER NOT NULL CHECK (window_days BETWEEN 1 AND 90),
    delay_hours   INTEGER NOT NULL CHECK (delay_hours >= 0),
    updated_at    TEXT NOT NULL,
    CHECK (delay_hours <= window_days * 24)
) STRICT;

CREATE TABLE erasure_requests (
    org_id        BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id            BLOB NOT NULL,
    contact_id    BLOB NOT NULL,
    requested_by  TEXT NOT NULL,
    requested_at  TEXT NOT NULL,
    execute_at    TEXT NOT NULL,
    due_by        TEXT NOT NULL,
    state         TEXT NOT NULL CHECK (state IN ('pending', 'done', 'cancelled')),
    finished_at   TEXT,
    cancelled_by  TEXT,
    report        TEXT,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, contact_id) REFERENCES contacts (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE UNIQUE INDEX erasure_requests_one_pending ON erasure_requests (org_id, contact_id) WHERE state = 'pending';
CREATE INDEX erasure_requests_due ON erasure_requests (org_id, execute_at) WHERE state = 'pending';

-- The blob store's garbage collector asks which hashes any media row still names.
CREATE INDEX media_by_blob ON media (blob_sha256) WHERE blob_sha256 IS NOT NULL;
