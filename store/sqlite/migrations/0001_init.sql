-- Records are stored whole as a blob (JSON; profiles and mailboxes with their
-- secrets sealed); the columns beside it are derived on every write and exist only
-- to be searched, ordered and made unique. Times are Unix microseconds, 0 = zero time.

CREATE TABLE profiles (
    id       TEXT PRIMARY KEY,
    name_key TEXT NOT NULL UNIQUE, -- lower(name): names are unique case-insensitively
    data     BLOB NOT NULL
);

CREATE TABLE mailboxes (
    id               TEXT PRIMARY KEY,
    email_key        TEXT NOT NULL UNIQUE, -- lower(email address)
    regarding_id     TEXT NOT NULL,
    profile_id       TEXT NOT NULL,
    approval         TEXT NOT NULL,
    status           TEXT NOT NULL,
    any_enabled      INTEGER NOT NULL,
    test_pending     INTEGER NOT NULL,
    -- Lease state: the source of truth for the Mailbox lease fields.
    next_sync_at     INTEGER NOT NULL DEFAULT 0,
    lease_host       TEXT NOT NULL DEFAULT '',
    lease_expires_at INTEGER NOT NULL DEFAULT 0,
    lease_token      INTEGER NOT NULL DEFAULT 0,
    forced_unlocks   INTEGER NOT NULL DEFAULT 0,
    data             BLOB NOT NULL
);
CREATE UNIQUE INDEX mailboxes_regarding ON mailboxes (regarding_id) WHERE regarding_id <> '';
CREATE INDEX mailboxes_profile ON mailboxes (profile_id);
CREATE INDEX mailboxes_due ON mailboxes (next_sync_at, id) WHERE next_sync_at <> 0;

CREATE TABLE settings (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    data BLOB NOT NULL
);

CREATE TABLE cursors (
    mailbox_id TEXT NOT NULL,
    folder     TEXT NOT NULL,
    data       BLOB,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (mailbox_id, folder)
) WITHOUT ROWID;

CREATE TABLE activities (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT, -- storing order
    id                TEXT NOT NULL UNIQUE,
    mailbox_id        TEXT NOT NULL,
    message_key       TEXT NOT NULL,
    direction         TEXT NOT NULL,
    status            TEXT NOT NULL,
    message_id        TEXT NOT NULL,
    tracking_token    TEXT NOT NULL,
    conversation_hash TEXT NOT NULL,
    next_attempt_at   INTEGER NOT NULL,
    claim_expires_at  INTEGER NOT NULL,
    data              BLOB NOT NULL,
    UNIQUE (mailbox_id, message_key) -- what makes tracking exactly-once
);
CREATE INDEX activities_message_id ON activities (message_id) WHERE message_id <> '';
CREATE INDEX activities_tracking_token ON activities (tracking_token) WHERE tracking_token <> '';
CREATE INDEX activities_conversation ON activities (conversation_hash) WHERE conversation_hash <> '';
CREATE INDEX activities_outbox ON activities (status, next_attempt_at, claim_expires_at)
    WHERE status IN ('PendingSend', 'Sending');

CREATE TABLE alerts (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE,
    recipient  TEXT NOT NULL,
    mailbox_id TEXT NOT NULL,
    profile_id TEXT NOT NULL,
    level      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    data       BLOB NOT NULL
);
CREATE INDEX alerts_recipient ON alerts (recipient);
CREATE INDEX alerts_mailbox ON alerts (mailbox_id);
