-- Where a campaign's enqueue steps read on from: the last recipient (contact id) the previous
-- step took. NULL: from the first.
ALTER TABLE campaigns ADD COLUMN enqueue_after BLOB;
