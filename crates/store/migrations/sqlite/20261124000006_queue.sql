-- Clinic queues: configuration, join keywords, assigned doctors, the per-day token counter
-- and the tokens themselves. A token's history is its audit events (target `queue_token`).

-- Queue hours are in the organisation's time zone (an IANA name).
ALTER TABLE organisations ADD COLUMN time_zone TEXT NOT NULL DEFAULT 'UTC' CHECK (length(time_zone) BETWEEN 1 AND 64);

CREATE TABLE queues (
    org_id           BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id               BLOB NOT NULL,
    channel_id       BLOB NOT NULL,
    name             TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    token_prefix     TEXT NOT NULL CHECK (length(token_prefix) BETWEEN 1 AND 4 AND token_prefix NOT GLOB '*[^A-Z]*'),
    daily_cap        INTEGER NOT NULL CHECK (daily_cap BETWEEN 1 AND 9999),
    position_step    INTEGER NOT NULL CHECK (position_step BETWEEN 0 AND 100),
    -- JSON: weekly hours (null: always open), holiday dates, texts per language, templates
    hours            TEXT,
    holidays         TEXT NOT NULL DEFAULT '[]',
    texts            TEXT NOT NULL DEFAULT '{}',
    templates        TEXT NOT NULL DEFAULT '{}',
    paused           INTEGER NOT NULL DEFAULT 0,
    pause_message    TEXT NOT NULL DEFAULT '',
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name),
    FOREIGN KEY (org_id, channel_id) REFERENCES channels (org_id, id) ON DELETE CASCADE
) STRICT;

-- A keyword joins one queue per number: matched normalised (upper case, single spaces).
CREATE TABLE queue_keywords (
    org_id       BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    channel_id   BLOB NOT NULL,
    keyword      TEXT NOT NULL CHECK (length(keyword) BETWEEN 1 AND 40),
    queue_id     BLOB NOT NULL,
    PRIMARY KEY (org_id, channel_id, keyword),
    FOREIGN KEY (org_id, queue_id) REFERENCES queues (org_id, id) ON DELETE CASCADE
) STRICT;

CREATE TABLE queue_doctors (
    org_id       BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    queue_id     BLOB NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (org_id, queue_id, user_id),
    FOREIGN KEY (org_id, queue_id) REFERENCES queues (org_id, id) ON DELETE CASCADE
) STRICT;

-- The last token number issued per queue and local day. Issuing is one upsert on this row,
-- which also serialises concurrent joins of the same queue.
CREATE TABLE queue_days (
    org_id       BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    queue_id     BLOB NOT NULL,
    day          TEXT NOT NULL CHECK (day GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'),
    last_number  INTEGER NOT NULL,
    PRIMARY KEY (org_id, queue_id, day),
    FOREIGN KEY (org_id, queue_id) REFERENCES queues (org_id, id) ON DELETE CASCADE
) STRICT;

CREATE TABLE queue_tokens (
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
    state            TEXT NOT NULL CHECK (state IN ('waiting', 'called', 'serving', 'complete', 'no_show', 'cancelled', 'skipped')),
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
-- A patient holds at most one live token per queue, whatever races.
CREATE UNIQUE INDEX queue_tokens_one_live ON queue_tokens (org_id, queue_id, contact_id)
    WHERE contact_id IS NOT NULL AND state IN ('waiting', 'called', 'serving');
CREATE INDEX queue_tokens_line ON queue_tokens (org_id, queue_id, state, position);
CREATE INDEX queue_tokens_by_day ON queue_tokens (org_id, queue_id, day);

