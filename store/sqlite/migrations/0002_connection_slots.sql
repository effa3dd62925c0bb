-- Connection slots (serversync.ConnectionSlotStore): one row per connection a host
-- holds against a MaxConcurrentConnections budget, so processes sharing the
-- database count their connections together. A row is deleted when its holder
-- releases it, or when another acquisition of its budget finds it expired. The
-- rowid is the slot's token: AUTOINCREMENT never hands one out twice, so a stale
-- holder's renew or release never matches a later holder's row.
CREATE TABLE IF NOT EXISTS connection_slots (
    token      INTEGER PRIMARY KEY AUTOINCREMENT,
    budget     TEXT NOT NULL,    -- ConnectionSlot.Key
    slot       INTEGER NOT NULL,
    host       TEXT NOT NULL,
    expires_at INTEGER NOT NULL, -- Unix microseconds
    UNIQUE (budget, slot)
);
