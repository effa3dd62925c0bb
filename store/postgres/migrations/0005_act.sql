-- ACT records (serversync.ACTStore): the host-side copy of each appointment,
-- contact and task, which is also the queue of host changes to push (pending),
-- and the conflicts met. The cursors of ACT change tracking are in cursors
-- (folder 'act:<kind>'), so that a batch of server changes and its cursor are
-- stored in one transaction.
CREATE TABLE IF NOT EXISTS act_records (
    id         text PRIMARY KEY,
    mailbox_id text NOT NULL,
    kind       text NOT NULL,
    server_id  text NOT NULL,   -- '' until the item is on the server
    uid        text NOT NULL,
    pending    boolean NOT NULL,
    version    bigint NOT NULL,
    data       jsonb NOT NULL   -- the ACTRecord
);
CREATE INDEX IF NOT EXISTS act_records_mailbox ON act_records (mailbox_id, kind, id);
CREATE INDEX IF NOT EXISTS act_records_server ON act_records (mailbox_id, server_id) WHERE server_id <> '';
CREATE INDEX IF NOT EXISTS act_records_uid ON act_records (mailbox_id, uid);
CREATE INDEX IF NOT EXISTS act_records_pending ON act_records (mailbox_id, kind, id) WHERE pending;

CREATE TABLE IF NOT EXISTS act_conflicts (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         text NOT NULL,
    mailbox_id text NOT NULL,
    data       jsonb NOT NULL,  -- the ACTConflict
    CONSTRAINT act_conflicts_id_unique UNIQUE (id)
);
CREATE INDEX IF NOT EXISTS act_conflicts_mailbox ON act_conflicts (mailbox_id, seq);
