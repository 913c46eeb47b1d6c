-- The team inbox: one inbox per number (its settings: which teams serve it, automatic
-- assignment), agents' availability, conversation assignment and snoozing, labels, per-user
-- read state, internal notes, notifications and quick replies; and the search indexes.

-- An inbox is a number's conversations seen as a queue of work. Created with the first
-- read or change of its settings (defaults: no team, no automatic assignment).
-- rr_last_user_id is the round-robin pointer: the agent who got the last conversation.
CREATE TABLE inboxes (
    org_id            UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    channel_id        UUID NOT NULL,
    auto_assign       TEXT NOT NULL DEFAULT 'off' CHECK (auto_assign IN ('off', 'round_robin')),
    assign_team_id    UUID,
    rr_last_user_id   UUID,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, channel_id),
    FOREIGN KEY (org_id, channel_id) REFERENCES channels (org_id, id) ON DELETE CASCADE
);

-- The teams that serve an inbox: their members see its conversations.
CREATE TABLE inbox_teams (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    channel_id  UUID NOT NULL,
    team_id     UUID NOT NULL,
    PRIMARY KEY (org_id, channel_id, team_id),
    FOREIGN KEY (org_id, channel_id) REFERENCES inboxes (org_id, channel_id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, team_id) REFERENCES teams (org_id, id) ON DELETE CASCADE
);
CREATE INDEX inbox_teams_by_team ON inbox_teams (org_id, team_id);

-- An agent's availability in an organisation; "online" counts only while last_seen_at is
-- recent (see the store's PRESENCE_TTL).
CREATE TABLE agent_presence (
    org_id        UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    user_id       UUID NOT NULL,
    availability  TEXT NOT NULL CHECK (availability IN ('online', 'away', 'offline')),
    last_seen_at  TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);

-- Who handles a conversation, until when it sleeps, and how many customer messages it has
-- had (per-user unread = inbound_count - the count that user last read).
ALTER TABLE conversations ADD COLUMN assignee_id UUID;
ALTER TABLE conversations ADD COLUMN team_id UUID;
ALTER TABLE conversations ADD COLUMN snoozed_until TIMESTAMPTZ;
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
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          UUID NOT NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 50),
    color       TEXT NOT NULL CHECK (color ~ '^#[0-9a-f]{6}$'),
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
);

CREATE TABLE conversation_labels (
    org_id           UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    conversation_id  UUID NOT NULL,
    label_id         UUID NOT NULL,
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, conversation_id, label_id),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, label_id) REFERENCES labels (org_id, id) ON DELETE CASCADE
);
CREATE INDEX conversation_labels_by_label ON conversation_labels (org_id, label_id);

-- How far each user has read each conversation (in customer messages).
CREATE TABLE conversation_reads (
    org_id           UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    conversation_id  UUID NOT NULL,
    user_id          UUID NOT NULL,
    read_count       INTEGER NOT NULL,
    read_at          TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id, conversation_id),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE
);

-- Internal notes: seen by the team, never sent to WhatsApp. mentions is a JSON array of
-- user ids.
CREATE TABLE notes (
    org_id           UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id               UUID NOT NULL,
    conversation_id  UUID NOT NULL,
    author_id        UUID,
    body             TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 4096),
    mentions         TEXT NOT NULL DEFAULT '[]',
    created_at       TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE
);
CREATE INDEX notes_by_conversation ON notes (org_id, conversation_id, created_at);

-- A user's notifications (a mention in a note).
CREATE TABLE notifications (
    org_id           UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id               UUID NOT NULL,
    user_id          UUID NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('mention')),
    conversation_id  UUID NOT NULL,
    note_id          UUID,
    actor_id         UUID,
    created_at       TIMESTAMPTZ NOT NULL,
    read_at          TIMESTAMPTZ,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, conversation_id) REFERENCES conversations (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX notifications_of_user ON notifications (org_id, user_id, created_at DESC);

-- Canned answers, organisation-wide, with {{contact.first_name}}-style variables.
CREATE TABLE quick_replies (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          UUID NOT NULL,
    shortcut    TEXT NOT NULL CHECK (shortcut ~ '^[a-z0-9_-]{1,32}$'),
    body        TEXT NOT NULL CHECK (length(body) BETWEEN 1 AND 4096),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, shortcut)
);

-- Search: substring matching (ILIKE) served by trigram indexes, on message previews and
-- contacts' names, usernames and numbers.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX messages_preview_trgm ON messages USING gin (preview gin_trgm_ops);
CREATE INDEX contacts_name_trgm ON contacts USING gin (profile_name gin_trgm_ops);
CREATE INDEX contacts_username_trgm ON contacts USING gin (username gin_trgm_ops);
CREATE INDEX contacts_phone_trgm ON contacts USING gin (phone gin_trgm_ops);

ALTER TABLE inboxes ENABLE ROW LEVEL SECURITY;
ALTER TABLE inboxes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON inboxes
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
ALTER TABLE inbox_teams ENABLE ROW LEVEL SECURITY;
ALTER TABLE inbox_teams FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON inbox_teams
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
ALTER TABLE agent_presence ENABLE ROW LEVEL SECURITY;
ALTER TABLE agent_presence FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON agent_presence
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
ALTER TABLE labels ENABLE ROW LEVEL SECURITY;
ALTER TABLE labels FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON labels
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
ALTER TABLE conversation_labels ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversation_labels FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON conversation_labels
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
ALTER TABLE conversation_reads ENABLE ROW LEVEL SECURITY;
ALTER TABLE conversation_reads FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON conversation_reads
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
ALTER TABLE notes ENABLE ROW LEVEL SECURITY;
ALTER TABLE notes FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notes
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
ALTER TABLE notifications FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON notifications
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
ALTER TABLE quick_replies ENABLE ROW LEVEL SECURITY;
ALTER TABLE quick_replies FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON quick_replies
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());

GRANT SELECT, INSERT, UPDATE, DELETE ON inboxes, inbox_teams, agent_presence, labels, conversation_labels, conversation_reads, notes, notifications, quick_replies TO frontdesk_app;
