-- A counter per user that each batch of read marks raises, read in the same statement as
-- the sidebar's unread counts: it tells a cached count which of the user's reads it already
-- reflects (see src/unread.rs).
CREATE TABLE conversation_read_seq (
    org_id   BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    user_id  BLOB NOT NULL,
    seq      INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
) STRICT;
