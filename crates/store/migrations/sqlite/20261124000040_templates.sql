-- Templates as a product: what the organisation wrote (components, in Frontdesk's written
-- form), the number it belongs to, its quality, and when it was created and submitted. The
-- provider's status stays in `status` (DRAFT until submitted). Rows made by a status webhook
-- or a sync for a template written elsewhere have no channel until a sync finds one.
ALTER TABLE templates ADD COLUMN channel_id BLOB;
ALTER TABLE templates ADD COLUMN content TEXT;
ALTER TABLE templates ADD COLUMN quality TEXT;
ALTER TABLE templates ADD COLUMN created_at TEXT;
ALTER TABLE templates ADD COLUMN submitted_at TEXT;
CREATE INDEX templates_by_channel ON templates (org_id, channel_id);

-- Tracked URL buttons: one link per message and button, behind our own redirect /r/{code}.
-- Only the SHA-256 of the code is stored; the destination is the template's URL as it was
-- when the message was queued, so the redirect never leads anywhere else.
CREATE TABLE template_links (
    org_id            BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id                BLOB NOT NULL,
    template_id       BLOB NOT NULL,
    message_id        BLOB,
    contact_id        BLOB,
    card_index        INTEGER,
    button_index      INTEGER NOT NULL CHECK (button_index BETWEEN 0 AND 9),
    code_hash         BLOB NOT NULL,
    destination       TEXT NOT NULL CHECK (length(destination) BETWEEN 8 AND 2600),
    clicks            INTEGER NOT NULL DEFAULT 0,
    first_clicked_at  TEXT,
    last_clicked_at   TEXT,
    created_at        TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, code_hash),
    FOREIGN KEY (org_id, template_id) REFERENCES templates (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX template_links_by_code ON template_links (code_hash);
CREATE INDEX template_links_by_template ON template_links (org_id, template_id);
CREATE INDEX template_links_by_message ON template_links (org_id, message_id);
