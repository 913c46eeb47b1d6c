-- Erasure on request: the contact row stays as a tombstone (its id keeps conversations and
-- messages linked), with every personal value removed and the time it was erased.
ALTER TABLE contacts ADD COLUMN erased_at TEXT;
