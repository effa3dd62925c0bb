-- Connection slots (serversync.ConnectionSlotStore): one row per connection a host
-- holds against a MaxConcurrentConnections budget, so processes sharing the
-- database count their connections together, and one row, with a NULL slot, per
-- request waiting in line for one. A row is deleted when its holder releases it,
-- or when another acquisition of its budget finds it expired; a request served
-- turns its place into its slot. seq orders the line.
CREATE TABLE IF NOT EXISTS connection_slots (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL UNIQUE, -- ConnectionSlot.ID, set by the requester
    budget     TEXT NOT NULL,        -- ConnectionSlot.Key
    slot       INTEGER,              -- NULL: waiting in line
    host       TEXT NOT NULL,
    expires_at INTEGER NOT NULL,     -- Unix microseconds
    UNIQUE (budget, slot)
);
