-- The Syncer looks for mailboxes waiting for their first sync or for Test & Enable
-- (next_sync_at IS NULL) every ScanInterval: with this index it reads the few it
-- finds, in ListMailboxes' order, instead of the whole table.
CREATE INDEX IF NOT EXISTS mailboxes_unscheduled ON mailboxes (email_key) WHERE next_sync_at IS NULL;
