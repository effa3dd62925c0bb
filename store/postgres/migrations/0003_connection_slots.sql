-- Connection slots (serversync.ConnectionSlotStore): one row per connection a host
-- holds against a MaxConcurrentConnections budget, so every process sharing the
-- database counts its connections together. A row is deleted when its holder
-- releases it, or when another acquisition of its budget finds it expired. The
-- token is the slot's identity: an identity column never hands one out twice, so a
-- stale holder's renew or release never matches a later holder's row.
CREATE TABLE IF NOT EXISTS connection_slots (
    token      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    budget     text NOT NULL,        -- ConnectionSlot.Key
    slot       integer NOT NULL,
    host       text NOT NULL,
    expires_at timestamptz NOT NULL,
    UNIQUE (budget, slot)
);
