-- An activity's bodies (text, HTML, raw message, attachment contents) move out of
-- its JSON into a column of their own, as bytes and compressed (see
-- storekit.EncodeActivity): no base64 or JSON escaping on the hot path, and rows a
-- third to a tenth the size. Rows stored before keep a NULL body and everything in
-- data; they read as before.
--
-- Numbered 0005, not 0004: a gap left for migrations written alongside on another
-- branch. Migrations apply in name order and are counted, not named.
ALTER TABLE activities ADD COLUMN body BLOB;
