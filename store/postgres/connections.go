package postgres

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/serversync/serversync"
)

var _ serversync.ConnectionSlotStore = (*Store)(nil)

// AcquireConnectionSlot implements serversync.ConnectionSlotStore: the lowest free
// slot number is taken. The work is one database function (migration 0003), so an
// acquisition is one statement and one round trip whatever it finds.
func (s *Store) AcquireConnectionSlot(ctx context.Context, req serversync.ConnectionSlotRequest) (serversync.ConnectionSlot, bool, error) {
	if err := s.check(ctx); err != nil {
		return serversync.ConnectionSlot{}, false, err
	}
	if req.Limit < 1 || req.ID == "" {
		return serversync.ConnectionSlot{}, false, fmt.Errorf("postgres: connection budget %q: a request needs an ID and a limit of at least 1 (ID %q, limit %d)", req.Key, req.ID, req.Limit)
	}
	expires, waitExpires := req.Now.Add(req.TTL), req.Now.Add(cmp.Or(req.WaitTTL, req.TTL))
	slot := serversync.ConnectionSlot{ID: req.ID, Key: req.Key, Host: req.Host}
	err := s.pool.QueryRow(ctx, "SELECT serversync_acquire_connection_slot($1, $2, $3, $4, $5, $6, $7)",
		req.ID, req.Key, req.Limit, req.Host, req.Now, expires, waitExpires).Scan(&slot.Slot)
	if err != nil {
		return serversync.ConnectionSlot{}, false, dbError(err)
	}
	if slot.Slot < 0 {
		slot.ExpiresAt = waitExpires
		return slot, false, nil
	}
	slot.ExpiresAt = expires
	return slot, true, nil
}

// slotHeld is the condition under which a slot, or a place in line, is still its
// holder's.
const slotHeld = "id = $1 AND budget = $2 AND host = $3"

func slotLost(slot serversync.ConnectionSlot) error {
	return fmt.Errorf("postgres: connection slot %q of %q: %w", slot.ID, slot.Key, serversync.ErrLeaseLost)
}

// RenewConnectionSlot implements serversync.ConnectionSlotStore.
func (s *Store) RenewConnectionSlot(ctx context.Context, slot serversync.ConnectionSlot, now time.Time, ttl time.Duration) (serversync.ConnectionSlot, error) {
	if err := s.check(ctx); err != nil {
		return serversync.ConnectionSlot{}, err
	}
	expires := now.Add(ttl)
	tag, err := s.pool.Exec(ctx, "UPDATE connection_slots SET expires_at = $4 WHERE "+slotHeld, slot.ID, slot.Key, slot.Host, expires)
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
	tag, err := s.pool.Exec(ctx, releaseSlotSQL, slot.ID, slot.Key, slot.Host)
	if err != nil {
		return dbError(err)
	}
	if tag.RowsAffected() == 0 {
		return slotLost(slot)
	}
	return nil
}
