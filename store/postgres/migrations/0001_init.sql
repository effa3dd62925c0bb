-- Records are stored whole as bytea (JSON; profiles and mailboxes with their secrets
-- sealed); the columns beside them are derived on every write and exist only to be
-- searched, ordered, made unique and leased. A NULL time is the zero time.
-- Constraints are named: the store maps a violated one to the record field it guards.

CREATE TABLE profiles (
    id       text PRIMARY KEY,
    name_key text NOT NULL CONSTRAINT profiles_name_unique UNIQUE, -- lower(name): unique case-insensitively
    data     bytea NOT NULL
);

CREATE TABLE mailboxes (
    id               text PRIMARY KEY,
    email_key        text NOT NULL CONSTRAINT mailboxes_email_unique UNIQUE, -- lower(email address)
    regarding_id     text NOT NULL,
    -- NULL when the mailbox has no profile. The key makes "profile in use" and
    -- "no such profile" atomic with the writes that could break them.
    profile_id       text CONSTRAINT mailboxes_profile_fk REFERENCES profiles (id),
    approval         text NOT NULL,
    status           text NOT NULL,
    any_enabled      boolean NOT NULL,
    test_pending     boolean NOT NULL,
    -- Lease state: the source of truth for the Mailbox lease fields.
    next_sync_at     timestamptz,               -- NULL: not scheduled
    lease_host       text NOT NULL DEFAULT '',  -- '': not leased
    lease_expires_at timestamptz,
    lease_token      bigint NOT NULL DEFAULT 0, -- incremented by every acquisition
    forced_unlocks   integer NOT NULL DEFAULT 0,
    data             bytea NOT NULL
);
CREATE UNIQUE INDEX mailboxes_regarding_unique ON mailboxes (regarding_id) WHERE regarding_id <> '';
CREATE INDEX mailboxes_profile ON mailboxes (profile_id);
-- AcquireLeases walks this index, most overdue first.
CREATE INDEX mailboxes_due ON mailboxes (next_sync_at, id) WHERE next_sync_at IS NOT NULL;

-- One row, there from the start so that concurrent first updates lock it instead of
-- racing to insert it. data is NULL until settings are first stored.
CREATE TABLE settings (
    id   integer PRIMARY KEY CHECK (id = 1),
    data bytea
);
INSERT INTO settings (id) VALUES (1);

CREATE TABLE cursors (
    mailbox_id text NOT NULL,
    folder     text NOT NULL,
    data       bytea,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (mailbox_id, folder)
);

CREATE TABLE activities (
    seq               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, -- storing order
    id                text NOT NULL CONSTRAINT activities_id_unique UNIQUE,
    mailbox_id        text NOT NULL,
    message_key       text NOT NULL,
    direction         text NOT NULL,
    status            text NOT NULL,
    message_id        text NOT NULL,
    tracking_token    text NOT NULL,
    conversation_hash text NOT NULL,
    -- When the outbox may claim the activity: NextAttemptAt while PendingSend
    -- (-infinity for "send now"), ClaimExpiresAt while Sending, NULL otherwise.
    outbox_due_at     timestamptz,
    data              bytea NOT NULL,
    -- What makes tracking exactly-once.
    CONSTRAINT activities_message_unique UNIQUE (mailbox_id, message_key)
);
CREATE INDEX activities_message_id ON activities (message_id) WHERE message_id <> '';
CREATE INDEX activities_tracking_token ON activities (tracking_token) WHERE tracking_token <> '';
CREATE INDEX activities_conversation ON activities (conversation_hash) WHERE conversation_hash <> '';
CREATE INDEX activities_outbox ON activities (outbox_due_at, seq) WHERE outbox_due_at IS NOT NULL;
-- Message bodies are most of what is written. lz4 compresses them nearly as well as
-- the default pglz for a fraction of the CPU (about 40% more activities stored per
-- second); servers built without it (or older than PostgreSQL 14) keep pglz.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals)) THEN
        ALTER TABLE activities ALTER COLUMN data SET COMPRESSION lz4;
    END IF;
END
$$;

CREATE TABLE alerts (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         text NOT NULL CONSTRAINT alerts_id_unique UNIQUE,
    recipient  text NOT NULL,
    mailbox_id text NOT NULL,
    profile_id text NOT NULL,
    level      text NOT NULL,
    created_at timestamptz NOT NULL,
    data       bytea NOT NULL
);
CREATE INDEX alerts_recipient ON alerts (recipient);
CREATE INDEX alerts_mailbox ON alerts (mailbox_id);
