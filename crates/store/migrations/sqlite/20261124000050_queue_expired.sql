-- Tokens still live when their local day is over are ended by the worker as `expired`.
-- SQLite cannot change a CHECK constraint in place, so the table is rebuilt with the new
-- state allowed (same columns, keys and indexes; nothing references queue_tokens).

CREATE TABLE queue_tokens_new (
    org_id           BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id               BLOB NOT NULL,
    queue_id         BLOB NOT NULL,
    day              TEXT NOT NULL,
    number           INTEGER NOT NULL CHECK (number >= 1),
    label            TEXT NOT NULL,
    -- the patient: a WhatsApp contact, or a walk-in with a name (and maybe no phone)
    contact_id       BLOB,
    walk_in_name     TEXT CHECK (length(walk_in_name) <= 80),
    language         TEXT NOT NULL DEFAULT 'en',
    state            TEXT NOT NULL CHECK (state IN ('waiting', 'called', 'serving', 'complete', 'no_show', 'cancelled', 'skipped', 'expired')),
    -- the order of the waiting line: joins append, reordering puts a token between two
    position         INTEGER NOT NULL,
    joined_at        TEXT NOT NULL,
    called_at        TEXT,
    served_at        TEXT,
    ended_at         TEXT,
    called_by        BLOB,
    recalls          INTEGER NOT NULL DEFAULT 0,
    -- the position the patient was last told, and whether "you are next" went out
    told_position    INTEGER,
    told_next        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, queue_id, day, number),
    FOREIGN KEY (org_id, queue_id) REFERENCES queues (org_id, id) ON DELETE CASCADE,
    -- merging contacts moves tokens to the kept contact first (messaging.rs)
    FOREIGN KEY (org_id, contact_id) REFERENCES contacts (org_id, id)
) STRICT;

INSERT INTO queue_tokens_new (org_id, id, queue_id, day, number, label, contact_id, walk_in_name, language, state, position, joined_at, called_at, served_at, ended_at, called_by, recalls, told_position, told_next)
    SELECT org_id, id, queue_id, day, number, label, contact_id, walk_in_name, language, state, position, joined_at, called_at, served_at, ended_at, called_by, recalls, told_position, told_next FROM queue_tokens;
DROP TABLE queue_tokens;
ALTER TABLE queue_tokens_new RENAME TO queue_tokens;
-- A patient holds at most one live token per queue, whatever races.
CREATE UNIQUE INDEX queue_tokens_one_live ON queue_tokens (org_id, queue_id, contact_id)
    WHERE contact_id IS NOT NULL AND state IN ('waiting', 'called', 'serving');
CREATE INDEX queue_tokens_line ON queue_tokens (org_id, queue_id, state, position);
CREATE INDEX queue_tokens_by_day ON queue_tokens (org_id, queue_id, day);

-- The day's-end sweep looks for live tokens of past days.
CREATE INDEX queue_tokens_live_by_day ON queue_tokens (org_id, day)
    WHERE state IN ('waiting', 'called', 'serving');
