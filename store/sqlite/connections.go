package sqlite

import (
	"cmp"
	"context"
	"database/sql"
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
	if req.Limit < 1 || req.ID == "" {
		return serversync.ConnectionSlot{}, false, fmt.Errorf("sqlite: connection budget %q: a request needs an ID and a limit of at least 1 (ID %q, limit %d)", req.Key, req.ID, req.Limit)
	}
	waitTTL := cmp.Or(req.WaitTTL, req.TTL)
	var (
		slot serversync.ConnectionSlot
		ok   bool
	)
	err := s.write(ctx, func(tx *txn) error {
		slot, ok = serversync.ConnectionSlot{ID: req.ID, Key: req.Key, Host: req.Host}, false
		if _, err := tx.ExecContext(ctx, "DELETE FROM connection_slots WHERE budget = ? AND expires_at <= ?", req.Key, micros(req.Now)); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, "SELECT id, slot, host FROM connection_slots WHERE budget = ? ORDER BY slot, seq", req.Key)
		if err != nil {
			return err
		}
		// Held slots in slot order, the line (NULL slots) in arrival order.
		held, free, ahead := 0, 0, 0 // free: the lowest slot number not held
		granted, inLine := -1, false
		for rows.Next() {
			var (
				id, host string
				n        sql.NullInt64
			)
			if err := rows.Scan(&id, &n, &host); err != nil {
				rows.Close()
				return err
			}
			mine := id == req.ID && host == req.Host
			switch {
			case n.Valid:
				if int(n.Int64) == free {
					free++
				}
				if mine {
					granted = int(n.Int64)
				}
				held++
			case mine:
				inLine = true
			case !inLine:
				ahead++
			}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return err
		}
		switch {
		case granted >= 0: // granted before; the reply was lost
			slot.Slot, slot.ExpiresAt, ok = granted, req.Now.Add(req.TTL), true
			_, err := tx.ExecContext(ctx, "UPDATE connection_slots SET expires_at = ? WHERE id = ?", micros(slot.ExpiresAt), req.ID)
			return err
		case held+ahead >= req.Limit:
			slot.Slot, slot.ExpiresAt = -1, req.Now.Add(waitTTL)
			if inLine {
				_, err := tx.ExecContext(ctx, "UPDATE connection_slots SET expires_at = ? WHERE id = ?", micros(slot.ExpiresAt), req.ID)
				return err
			}
			_, err := tx.ExecContext(ctx, "INSERT INTO connection_slots (id, budget, slot, host, expires_at) VALUES (?, ?, NULL, ?, ?)",
				req.ID, req.Key, req.Host, micros(slot.ExpiresAt))
			return err
		}
		slot.Slot, slot.ExpiresAt, ok = free, req.Now.Add(req.TTL), true
		if inLine {
			_, err := tx.ExecContext(ctx, "UPDATE connection_slots SET slot = ?, expires_at = ? WHERE id = ?", free, micros(slot.ExpiresAt), req.ID)
			return err
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO connection_slots (id, budget, slot, host, expires_at) VALUES (?, ?, ?, ?, ?)",
			req.ID, req.Key, free, req.Host, micros(slot.ExpiresAt))
		return err
	})
	if err != nil {
		return serversync.ConnectionSlot{}, false, err
	}
	return slot, ok, nil
}

// slotHeld is the condition under which a slot, or a place in line, is still its
// holder's.
const slotHeld = "id = ? AND budget = ? AND host = ?"

func slotLost(slot serversync.ConnectionSlot) error {
	return fmt.Errorf("sqlite: connection slot %q of %q: %w", slot.ID, slot.Key, serversync.ErrLeaseLost)
}

// RenewConnectionSlot implements serversync.ConnectionSlotStore.
func (s *Store) RenewConnectionSlot(ctx context.Context, slot serversync.ConnectionSlot, now time.Time, ttl time.Duration) (serversync.ConnectionSlot, error) {
	expires := now.Add(ttl)
	err := s.write(ctx, func(tx *txn) error {
		r, err := tx.ExecContext(ctx, "UPDATE connection_slots SET expires_at = ? WHERE "+slotHeld,
			micros(expires), slot.ID, slot.Key, slot.Host)
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
		r, err := tx.ExecContext(ctx, "DELETE FROM connection_slots WHERE "+slotHeld, slot.ID, slot.Key, slot.Host)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n == 0 {
			return slotLost(slot)
		}
		return nil
	})
}
