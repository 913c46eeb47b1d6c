-- The messaging-limit count kept per business account between campaign steps (docs/campaigns.md,
-- "What counts against the tier"): `used` is never below the past day's unique recipients
-- counted against the tier as of `counted_at`; it is an exact count taken at `checked_at` plus
-- what campaign steps and other template sends added since.
CREATE TABLE tier_counts (
    org_id      BLOB NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    waba_id     TEXT NOT NULL,
    used        INTEGER NOT NULL,
    checked_at  TEXT,
    counted_at  TEXT,
    PRIMARY KEY (org_id, waba_id)
) STRICT;
