-- The audience: contacts as a product (a name the business gives, email, language,
-- company), custom fields defined per organisation with a value per contact, and tags.

-- profile_name stays what WhatsApp reports; name is what the business calls the contact.
ALTER TABLE contacts ADD COLUMN name TEXT CHECK (length(name) BETWEEN 1 AND 200);
ALTER TABLE contacts ADD COLUMN email TEXT CHECK (length(email) BETWEEN 3 AND 254);
ALTER TABLE contacts ADD COLUMN language TEXT CHECK (length(language) BETWEEN 2 AND 12);
ALTER TABLE contacts ADD COLUMN company TEXT CHECK (length(company) BETWEEN 1 AND 200);
CREATE INDEX contacts_page ON contacts (org_id, created_at DESC, id DESC);

-- A custom field: its key (what imports, segments and templates name), label and type;
-- options lists a choice field's values (JSON array of strings).
CREATE TABLE contact_fields (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    key         TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 40 AND key NOT GLOB '*[^a-z0-9_]*'),
    label       TEXT NOT NULL CHECK (length(label) BETWEEN 1 AND 80),
    kind        TEXT NOT NULL CHECK (kind IN ('text', 'number', 'date', 'choice', 'boolean')),
    options     TEXT NOT NULL DEFAULT '[]',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, key)
) STRICT;

-- A contact's value of a field: numbers in value_number, everything else as text (dates
-- as YYYY-MM-DD, which orders like the dates; booleans as true/false).
CREATE TABLE contact_field_values (
    org_id        BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    contact_id    BLOB NOT NULL,
    field_id      BLOB NOT NULL,
    value_text    TEXT CHECK (length(value_text) <= 1000),
    value_number  REAL,
    updated_at    TEXT NOT NULL,
    PRIMARY KEY (org_id, contact_id, field_id),
    FOREIGN KEY (org_id, contact_id) REFERENCES contacts (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, field_id) REFERENCES contact_fields (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX contact_field_values_text ON contact_field_values (org_id, field_id, value_text);
CREATE INDEX contact_field_values_number ON contact_field_values (org_id, field_id, value_number);

-- The organisation's tag catalogue and the tags on contacts.
CREATE TABLE tags (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    id          BLOB NOT NULL,
    name        TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 50),
    created_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, id),
    UNIQUE (org_id, name)
) STRICT;

CREATE TABLE contact_tags (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    contact_id  BLOB NOT NULL,
    tag_id      BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (org_id, contact_id, tag_id),
    FOREIGN KEY (org_id, contact_id) REFERENCES contacts (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, tag_id) REFERENCES tags (org_id, id) ON DELETE CASCADE
) STRICT;
CREATE INDEX contact_tags_by_tag ON contact_tags (org_id, tag_id);
