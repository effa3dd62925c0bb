-- An activity's bodies (text, HTML, raw message, attachment contents) move out of
-- its JSON into a column of their own, as bytes and compressed with zstd by the
-- store (see storekit.EncodeActivity): no base64 or JSON escaping on the hot path.
-- Rows stored before keep a NULL body and everything in data; they read as before.
-- The body is compressed already: EXTERNAL keeps it out of line when large without
-- PostgreSQL compressing it a second time.
--
-- Numbered 0006, not 0005: a gap left for migrations written alongside on another
-- branch. Migrations apply in name order and are counted, not named.
ALTER TABLE activities ADD COLUMN IF NOT EXISTS body bytea;
ALTER TABLE activities ALTER COLUMN body SET STORAGE EXTERNAL;
