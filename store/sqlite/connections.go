package sqlite

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/serversync/serversync"
)

var _ serversync.ConnectionSlotStore = (*Store)(nil)

// AcquireConnectionSlot implements serversync.ConnectionSlotStore: the lowest free
// slot number is taken. The count and the insert share one write transaction, and
// SQLite runs one writer at a time, whichever process it is in.
func (s *Store) AcquireConnectionSlot(ctx context.Context, req serversync.ConnectionSlotRequest) (serversync.ConnectionSlot, bool, error) {
	if req.Limit < 1 {
		return serversync.ConnectionSlot{}, false, fmt.Errorf("sqlite: connection budget %q: limit %d is less than 1", req.Key, req.Limit)
	}
	slot := serversync.ConnectionSlot{Key: req.Key, Host: req.Host, ExpiresAt: req.Now.Add(req.TTL)}
	ok := false
	err := s.write(ctx, func(tx *txn) error {
		ok = false
		if _, err := tx.ExecContext(ctx, "DELETE FROM connection_slots WHERE budget = ? AND expires_at <= ?", req.Key, micros(req.Now)); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, "SELECT slot FROM connection_slots WHERE budget = ? ORDER BY slot", req.Key)
		if err != nil {
			return err
		}
		held, free := 0, 0 // free: the lowest slot number not held
		for rows.Next() {
			var n int
			if err := rows.Scan(&n); err != nil {
				rows.Close()
				return err
			}
			if n == free {
				free++
			}
			held++
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		if held >= req.Limit {
			return nil
		}
		slot.Slot = free
		ok = true
		return tx.QueryRowContext(ctx, "INSERT INTO connection_slots (budget, slot, host, expires_at) VALUES (?, ?, ?, ?) RETURNING token",
			req.Key, free, req.Host, micros(slot.ExpiresAt)).Scan(&slot.Token)
	})
	if err != nil || !ok {
		return serversync.ConnectionSlot{}, false, err
	}
	return slot, true, nil
}

// slotHeld is the condition under which a slot is still its holder's.
const slotHeld = "token = ? AND budget = ? AND slot = ? AND host = ?"

func slotLost(slot serversync.ConnectionSlot) error {
	return fmt.Errorf("sqlite: connection slot %d of %q (token %d): %w", slot.Slot, slot.Key, slot.Token, serversync.ErrLeaseLost)
}

// RenewConnectionSlot implements serversync.ConnectionSlotStore.
func (s *Store) RenewConnectionSlot(ctx context.Context, slot serversync.ConnectionSlot, now time.Time, ttl time.Duration) (serversync.ConnectionSlot, error) {
	expires := now.Add(ttl)
	err := s.write(ctx, func(tx *txn) error {
		r, err := tx.ExecContext(ctx, "UPDATE connection_slots SET expires_at = ? WHERE "+slotHeld,
			micros(expires), slot.Token, slot.Key, slot.Slot, slot.Host)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return slotLost(slot)
		}
		return nil
	})
	if err != nil {
		return serversync.ConnectionSlot{}, err
	}
	slot.ExpiresAt = expires
	return slot, nil
}

// ReleaseConnectionSlot implements serversync.ConnectionSlotStore.
func (s *Store) ReleaseConnectionSlot(ctx context.Context, slot serversync.ConnectionSlot) error {
	return s.write(ctx, func(tx *txn) error {
		r, err := tx.ExecContext(ctx, "DELETE FROM connection_slots WHERE "+slotHeld, slot.Token, slot.Key, slot.Slot, slot.Host)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return slotLost(slot)
		}
		return nil
	})
}
