-- Files agents upload to send (POST /api/v1/media): who uploaded them, and when the
-- provider received a copy (its media ids expire, so an old one is uploaded again).
ALTER TABLE media ADD COLUMN uploaded_by BLOB;
ALTER TABLE media ADD COLUMN provider_uploaded_at TEXT;
