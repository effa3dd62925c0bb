-- ACT records (serversync.ACTStore): the host-side copy of each appointment,
-- contact and task, which is also the queue of host changes to push (pending),
-- and the conflicts met. The cursors of ACT change tracking are in cursors
-- (folder "act:<kind>"), so that a batch of server changes and its cursor are
-- stored in one transaction.
CREATE TABLE IF NOT EXISTS act_records (
    id         TEXT PRIMARY KEY,
    mailbox_id TEXT NOT NULL,
    kind       TEXT NOT NULL,
    server_id  TEXT NOT NULL,  -- '' until the item is on the server
    uid        TEXT NOT NULL,
    pending    INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    data       BLOB NOT NULL   -- the ACTRecord as JSON
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS act_records_mailbox ON act_records (mailbox_id, kind, id);
CREATE INDEX IF NOT EXISTS act_records_server ON act_records (mailbox_id, server_id) WHERE server_id <> '';
CREATE INDEX IF NOT EXISTS act_records_uid ON act_records (mailbox_id, uid);
CREATE INDEX IF NOT EXISTS act_records_pending ON act_records (mailbox_id, kind, id) WHERE pending = 1;

CREATE TABLE IF NOT EXISTS act_conflicts (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    mailbox_id TEXT NOT NULL,
    data       BLOB NOT NULL   -- the ACTConflict as JSON
);
CREATE INDEX IF NOT EXISTS act_conflicts_mailbox ON act_conflicts (mailbox_id, seq);
