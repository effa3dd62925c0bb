package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serversync/serversync"
)

var _ serversync.ConnectionSlotStore = (*Store)(nil)

// Acquiring a connection slot counts the budget's held slots and inserts one more,
// which two hosts doing at once could both see room for. An advisory lock per
// budget, held until the transaction ends, puts them in line; the statements after
// it each read a fresh snapshot (READ COMMITTED), so the second host counts the
// first one's slot. The three statements go as one batch: one round trip, one
// implicit transaction.
const (
	lockBudgetSQL = `SELECT pg_advisory_xact_lock(hashtextextended('serversync.connections.' || current_schema() || '.' || $1, 0))`
	// Slots whose holders stopped renewing (they died or stalled) are freed.
	freeExpiredSlotsSQL = `DELETE FROM connection_slots WHERE budget = $1 AND expires_at <= $2`
	// The lowest free slot number, if fewer than the limit are held. Slots held at
	// or above a limit that was lowered still count.
	takeSlotSQL = `INSERT INTO connection_slots (budget, slot, host, expires_at)
SELECT $1, free.n, $2, $3 FROM (
	SELECT n FROM generate_series(0, $4::integer - 1) AS n
	WHERE n NOT IN (SELECT slot FROM connection_slots WHERE budget = $1)
	ORDER BY n LIMIT 1
) AS free
WHERE (SELECT count(*) FROM connection_slots WHERE budget = $1) < $4::integer
RETURNING slot, token`
)

// AcquireConnectionSlot implements serversync.ConnectionSlotStore: the lowest free
// slot number is taken.
func (s *Store) AcquireConnectionSlot(ctx context.Context, req serversync.ConnectionSlotRequest) (serversync.ConnectionSlot, bool, error) {
	if err := s.check(ctx); err != nil {
		return serversync.ConnectionSlot{}, false, err
	}
	if req.Limit < 1 {
		return serversync.ConnectionSlot{}, false, fmt.Errorf("postgres: connection budget %q: limit %d is less than 1", req.Key, req.Limit)
	}
	slot := serversync.ConnectionSlot{Key: req.Key, Host: req.Host, ExpiresAt: req.Now.Add(req.TTL)}
	var batch pgx.Batch
	batch.Queue(lockBudgetSQL, req.Key)
	batch.Queue(freeExpiredSlotsSQL, req.Key, req.Now)
	batch.Queue(takeSlotSQL, req.Key, req.Host, slot.ExpiresAt, req.Limit)
	results := s.pool.SendBatch(ctx, &batch)
	_, err := results.Exec()
	if err == nil {
		_, err = results.Exec()
	}
	if err == nil {
		err = results.QueryRow().Scan(&slot.Slot, &slot.Token)
	}
	if err = errors.Join(err, results.Close()); errors.Is(err, pgx.ErrNoRows) {
		return serversync.ConnectionSlot{}, false, nil // every slot held
	}
	if err != nil {
		return serversync.ConnectionSlot{}, false, dbError(err)
	}
	return slot, true, nil
}

// slotHeld is the condition under which a slot is still its holder's.
const slotHeld = "token = $1 AND budget = $2 AND slot = $3 AND host = $4"

func slotLost(slot serversync.ConnectionSlot) error {
	return fmt.Errorf("postgres: connection slot %d of %q (token %d): %w", slot.Slot, slot.Key, slot.Token, serversync.ErrLeaseLost)
}

// RenewConnectionSlot implements serversync.ConnectionSlotStore.
func (s *Store) RenewConnectionSlot(ctx context.Context, slot serversync.ConnectionSlot, now time.Time, ttl time.Duration) (serversync.ConnectionSlot, error) {
	if err := s.check(ctx); err != nil {
		return serversync.ConnectionSlot{}, err
	}
	expires := now.Add(ttl)
	tag, err := s.pool.Exec(ctx, "UPDATE connection_slots SET expires_at = $5 WHERE "+slotHeld,
		slot.Token, slot.Key, slot.Slot, slot.Host, expires)
	if err != nil {
		return serversync.ConnectionSlot{}, dbError(err)
	}
	if tag.RowsAffected() == 0 {
		return serversync.ConnectionSlot{}, slotLost(slot)
	}
	slot.ExpiresAt = expires
	return slot, nil
}

// releaseSlotSQL commits without waiting for the disk, for the reasons given at
// releaseSQL: a release lost in a database crash leaves the slot held until it
// expires, which errs on the side of fewer connections.
const releaseSlotSQL = `DELETE FROM connection_slots
USING (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit
WHERE ` + slotHeld

// ReleaseConnectionSlot implements serversync.ConnectionSlotStore.
func (s *Store) ReleaseConnectionSlot(ctx context.Context, slot serversync.ConnectionSlot) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, releaseSlotSQL, slot.Token, slot.Key, slot.Slot, slot.Host)
	if err != nil {
		return dbError(err)
	}
	if tag.RowsAffected() == 0 {
		return slotLost(slot)
	}
	return nil
}
