-- Templates as a product: what the organisation wrote (components, in Frontdesk's written
-- form), the number it belongs to, its quality, and when it was created and submitted. The
-- provider's status stays in `status` (DRAFT until submitted). Rows made by a status webhook
-- or a sync for a template written elsewhere have no channel until a sync finds one.
ALTER TABLE templates ADD COLUMN channel_id UUID;
ALTER TABLE templates ADD COLUMN content TEXT;
ALTER TABLE templates ADD COLUMN quality TEXT;
ALTER TABLE templates ADD COLUMN created_at TIMESTAMPTZ;
ALTER TABLE templates ADD COLUMN submitted_at TIMESTAMPTZ;
CREATE INDEX templates_by_channel ON templates (org_id, channel_id);

-- Tracked URL buttons: one link per message and button, behind our own redirect /r/{code}.
-- Only the SHA-256 of the code is stored; the destination is the template's URL as it was
-- when the message was queued, so the redirect never leads anywhere else. The public
-- redirect finds a link by that hash alone (token scope), then counts the click in the
-- link's organisation.
CREATE TABLE template_links (
    org_id            UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id                UUID NOT NULL,
    template_id       UUID NOT NULL,
    message_id        UUID,
    contact_id        UUID,
    card_index        INTEGER,
    button_index      INTEGER NOT NULL CHECK (button_index BETWEEN 0 AND 9),
    code_hash         BYTEA NOT NULL,
    destination       TEXT NOT NULL CHECK (length(destination) BETWEEN 8 AND 2600),
    clicks            BIGINT NOT NULL DEFAULT 0,
    first_clicked_at  TIMESTAMPTZ,
    last_clicked_at   TIMESTAMPTZ,
    created_at        TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, id),
    -- Unique keys lead with org_id (uniqueness checks ignore RLS); 128 random bits do not collide.
    UNIQUE (org_id, code_hash),
    FOREIGN KEY (org_id, template_id) REFERENCES templates (org_id, id) ON DELETE CASCADE
);
CREATE INDEX template_links_by_code ON template_links (code_hash);
CREATE INDEX template_links_by_template ON template_links (org_id, template_id);
CREATE INDEX template_links_by_message ON template_links (org_id, message_id);

ALTER TABLE template_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE template_links FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON template_links
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
CREATE POLICY template_link_by_code ON template_links FOR SELECT
    USING (code_hash = frontdesk_presented_token());

GRANT SELECT, INSERT, UPDATE, DELETE ON template_links TO frontdesk_app;
