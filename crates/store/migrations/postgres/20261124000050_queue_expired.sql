-- Tokens still live when their local day is over are ended by the worker as `expired`.
ALTER TABLE queue_tokens DROP CONSTRAINT queue_tokens_state_check;
ALTER TABLE queue_tokens ADD CONSTRAINT queue_tokens_state_check
    CHECK (state IN ('waiting', 'called', 'serving', 'complete', 'no_show', 'cancelled', 'skipped', 'expired'));

-- The day's-end sweep looks for live tokens of past days.
CREATE INDEX queue_tokens_live_by_day ON queue_tokens (org_id, day)
    WHERE state IN ('waiting', 'called', 'serving');
