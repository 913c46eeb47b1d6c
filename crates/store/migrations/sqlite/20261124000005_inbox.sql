-- The team inbox: one inbox per number (its settings: which teams serve it, automatic
-- assignment), agents' availability, conversation assignment and snoozing, labels, per-user
-- read state, internal notes, notifications and quick replies; and the search indexes.

-- An inbox is a number's conversations seen as a queue of work. Created with the first
-- read or change of its settings (defaults: no team, no automatic assignment).
-- rr_last_user_id is the round-robin pointer: the agent who got the last conversation.
CREATE TABLE inboxes (
    org_id            BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    channel_id        BLOB NOT NULL,
    auto_assign       TEXT NOT NULL DEFAULT 'off' CHECK (auto_assign IN ('off', 'round_robin')),
    assign_team_id    BLOB,
    rr_last_user_id   BLOB,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    PRIMARY KEY (org_id, channel_id),
    FOREIGN KEY (org_id, channel_id) REFERENCES channels (org_id, id) ON DELETE CASCADE
) STRICT;

-- The teams that serve an inbox: their members see its conversations.
CREATE TABLE inbox_teams (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    channel_id  BLOB NOT NULL,
    team_id     BLOB NOT NULL,
    PRIMARY KEY (org_id, channel_id, team_id),
    FOREIGN KEY (org_id, channel_id) REFERENCES inboxes (org_id, channel_id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX inbox_teams_by_team ON inbox_teams (org_id, team_id);

-- An agent's availability in an organisation; "online" counts only while last_seen_at is
-- recent (see the store's PRESENCE_TTL).
CREATE TABLE agent_presence (
    org_id        BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    user_id       BLOB NOT NULL,
    availability  TEXT NOT NULL CHECK (availability IN ('online', 'away', 'offline')),
    last_seen_at  TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
) STRICT;

-- Who handles a conversation, until when it sleeps, and how many customer messages it has
-- had (per-user unread = inbound_count - the count that user last read).
ALTER TABLE conversations ADD COLUMN assignee_id BLOB;
ALTER TABLE conversations ADD COLUMN team_id BLOB;
ALTER TABLE conversations ADD COLUMN snoozed_until TEXT;
ALTER TABLE conversations ADD COLUMN inbound_count INTEGER NOT NULL DEFAULT 0;
UPDATE conversations SET inbound_count = unread;

DROP INDEX conversations_recent;
-- The list's filters each walk one index in (last_message_at, id) order.
CREATE INDEX conversations_page ON conversations (org_id, last_message_at DESC, id DESC);
CREATE INDEX conversations_by_assignee ON conversations (org_id, assignee_id, last_message_at DESC, id DESC);
CREATE INDEX conversations_by_channel ON conversations (org_id, channel_id, last_message_at DESC, id DESC);
CREATE INDEX conversations_by_team ON conversations (org_id, team_id, last_message_at DESC, id DESC);
CREATE INDEX conversations_by_status ON conversations (org_id, status, last_message_at DESC, id DESC);
CREATE INDEX conversations_snoozed ON conversations (snoozed_until) WHERE status = 'snoozed';

-- The organisation's label catalogue and the labels on conversations.
CREATE TABLE labels (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 50),
    color       TEXT NOT NULL CHECK (length(color) = 7 AND color GLOB '#[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]'),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE conversation_labels (
    org_id           BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    conversation_id  BLOB NOT NULL,
    label_id         BLOB NOT NULL,
    created_at       TEXT NOT NULL,
    PRIMARY KEY (org_id, conversation_id, label_id),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, label_id) REFERENCES labels (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX conversation_labels_by_label ON conversation_labels (org_id, label_id);

-- How far each user has read each conversation (in customer messages).
CREATE TABLE conversation_reads (
    org_id           BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    conversation_id  BLOB NOT NULL,
    user_id          BLOB NOT NULL,
    read_count       INTEGER NOT NULL,
    read_at          TEXT NOT NULL,
    PRIMARY KEY (org_id, user_id, conversation_id),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE
) STRICT;

-- Internal notes: seen by the team, never sent to WhatsApp. mentions is a JSON array of
-- user ids.
CREATE TABLE notes (
    org_id           BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id               BLOB NOT NULL,
    conversation_id  BLOB NOT NULL,
    author_id        BLOB,
    body             TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 4096),
    mentions         TEXT NOT NULL DEFAULT '[]',
    created_at       TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX notes_by_conversation ON notes (org_id, conversation_id, created_at);

-- A user's notifications (a mention in a note).
CREATE TABLE notifications (
    org_id           BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id               BLOB NOT NULL,
    user_id          BLOB NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('mention')),
    conversation_id  BLOB NOT NULL,
    note_id          BLOB,
    actor_id         BLOB,
    created_at       TEXT NOT NULL,
    read_at          TEXT,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
) STRICT;
CREATE INDEX notifications_of_user ON notifications (org_id, user_id, created_at DESC);

-- Canned answers, organisation-wide, with {{contact.first_name}}-style variables.
CREATE TABLE quick_replies (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    shortcut    TEXT NOT NULL CHECK (length(shortcut) BETWEEN 1 AND 32 AND shortcut NOT GLOB '*[^a-z0-9_-]*'),
    body        TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 4096),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, shortcut)
) STRICT;

-- Search: FTS5 with the trigram tokenizer (substring matching, like PostgreSQL's trigram
-- indexes), as external-content tables kept current by triggers.
CREATE VIRTUAL TABLE messages_fts USING fts5(preview, content='messages', content_rowid='rowid', tokenize='trigram');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, preview) VALUES (new.rowid, new.preview);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, preview) VALUES ('delete', old.rowid, old.preview);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF preview ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, preview) VALUES ('delete', old.rowid, old.preview);
    INSERT INTO messages_fts (rowid, preview) VALUES (new.rowid, new.preview);
END;
INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');

CREATE VIRTUAL TABLE contacts_fts USING fts5(profile_name, username, phone, content='contacts', content_rowid='rowid', tokenize='trigram');
CREATE TRIGGER contacts_fts_insert AFTER INSERT ON contacts BEGIN
    INSERT INTO contacts_fts (rowid, profile_name, username, phone) VALUES (new.rowid, new.profile_name, new.username, new.phone);
END;
CREATE TRIGGER contacts_fts_delete AFTER DELETE ON contacts BEGIN
    INSERT INTO contacts_fts (contacts_fts, rowid, profile_name, username, phone) VALUES ('delete', old.rowid, old.profile_name, old.username, old.phone);
END;
CREATE TRIGGER contacts_fts_update AFTER UPDATE OF profile_name, username, phone ON contacts BEGIN
    INSERT INTO contacts_fts (contacts_fts, rowid, profile_name, username, phone) VALUES ('delete', old.rowid, old.profile_name, old.username, old.phone);
    INSERT INTO contacts_fts (rowid, profile_name, username, phone) VALUES (new.rowid, new.profile_name, new.username, new.phone);
END;
INSERT INTO contacts_fts (contacts_fts) VALUES ('rebuild');
