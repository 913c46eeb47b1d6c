-- The messaging-limit count kept per business account between campaign steps (docs/campaigns.md,
-- "What counts against the tier"): `used` is never below the past day's unique recipients
-- counted against the tier as of `counted_at`; it is an exact count taken at `checked_at` plus
-- what campaign steps and other template sends added since. The row is also the lock that
-- makes campaign steps on one business account take its room one after the other.
CREATE TABLE tier_counts (
    org_id      UUID NOT NULL REFERENCES organisations(id) ON DELETE CASCADE,
    waba_id     TEXT NOT NULL,
    used        BIGINT NOT NULL,
    checked_at  TIMESTAMPTZ,
    counted_at  TIMESTAMPTZ,
    PRIMARY KEY (org_id, waba_id)
);

ALTER TABLE tier_counts ENABLE ROW LEVEL SECURITY;
ALTER TABLE tier_counts FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON tier_counts
    USING (org_id = frontdesk_current_org()) WITH CHECK (org_id = frontdesk_current_org());
GRANT SELECT, INSERT, UPDATE, DELETE ON tier_counts TO frontdesk_app;
