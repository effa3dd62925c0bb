-- Connection slots (serversync.ConnectionSlotStore): one row per connection a host
-- holds against a MaxConcurrentConnections budget, so every process sharing the
-- database counts its connections together, and one row, with a NULL slot, per
-- request waiting in line for one. A row is deleted when its holder releases it,
-- or when another acquisition of its budget finds it expired; a request served
-- turns its place into its slot. seq orders the line.
CREATE TABLE IF NOT EXISTS connection_slots (
    seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id         text NOT NULL UNIQUE, -- ConnectionSlot.ID, set by the requester
    budget     text NOT NULL,        -- ConnectionSlot.Key
    slot       integer,              -- NULL: waiting in line
    host       text NOT NULL,
    expires_at timestamptz NOT NULL,
    UNIQUE (budget, slot)
);

-- One acquisition in one statement and one round trip. Two hosts counting a
-- budget's slots at once could both see room; the advisory lock per budget, held
-- until the transaction ends, puts them in line, and each statement after it reads
-- a fresh snapshot (READ COMMITTED, in a volatile function), so the second counts
-- the first's slot. Returns the slot number granted, or -1 with the request's
-- place in line kept until p_wait_expires.
CREATE OR REPLACE FUNCTION serversync_acquire_connection_slot(
    p_id text, p_budget text, p_limit integer, p_host text, p_now timestamptz,
    p_expires timestamptz, p_wait_expires timestamptz)
RETURNS integer
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_mine   connection_slots%ROWTYPE;
    v_held   integer;
    v_ahead  integer;
    v_slot   integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('serversync.connections.' || current_schema() || '.' || p_budget, 0));
    -- Holders and waiters that stopped renewing or asking (they died or stalled).
    DELETE FROM connection_slots c WHERE c.budget = p_budget AND c.expires_at <= p_now;
    SELECT * INTO v_mine FROM connection_slots c WHERE c.id = p_id AND c.budget = p_budget AND c.host = p_host;
    IF v_mine.slot IS NOT NULL THEN -- granted before; the reply was lost
        UPDATE connection_slots c SET expires_at = p_expires WHERE c.id = p_id;
        RETURN v_mine.slot;
    END IF;
    SELECT count(*) INTO v_held FROM connection_slots c WHERE c.budget = p_budget AND c.slot IS NOT NULL;
    SELECT count(*) INTO v_ahead FROM connection_slots c
        WHERE c.budget = p_budget AND c.slot IS NULL AND (v_mine.seq IS NULL OR c.seq < v_mine.seq);
    IF v_held + v_ahead >= p_limit THEN
        IF v_mine.seq IS NULL THEN
            INSERT INTO connection_slots (id, budget, slot, host, expires_at) VALUES (p_id, p_budget, NULL, p_host, p_wait_expires);
        ELSE
            UPDATE connection_slots c SET expires_at = p_wait_expires WHERE c.id = p_id;
        END IF;
        RETURN -1;
    END IF;
    -- Fewer than the limit are held, so one of 0..limit-1 is free. Slots held at or
    -- above a limit that was lowered still count.
    SELECT min(n) INTO v_slot FROM generate_series(0, p_limit - 1) AS n
        WHERE n NOT IN (SELECT c.slot FROM connection_slots c WHERE c.budget = p_budget AND c.slot IS NOT NULL);
    IF v_mine.seq IS NULL THEN
        INSERT INTO connection_slots (id, budget, slot, host, expires_at) VALUES (p_id, p_budget, v_slot, p_host, p_expires);
    ELSE
        UPDATE connection_slots c SET slot = v_slot, expires_at = p_expires WHERE c.id = p_id;
    END IF;
    RETURN v_slot;
END
$$;
